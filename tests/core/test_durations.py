from datetime import timedelta

import pytest

from gpubot.core.durations import format_duration, looks_like_duration, parse_duration
from gpubot.core.errors import CommandError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1d", timedelta(days=1)),
        ("1D2H", timedelta(days=1, hours=2)),
        (" 45m ", timedelta(minutes=45)),
        ("1h1h", timedelta(hours=2)),
    ],
)
def test_parses_units_and_compounds(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "1.5h", "-1h", "1h 30m", "two hours", "0m", "0h0m", "400d"])
def test_rejects_what_is_not_a_positive_duration(text):
    with pytest.raises(CommandError):
        parse_duration(text)


def test_looks_like_duration_is_about_shape_only():
    assert looks_like_duration("0m")
    assert looks_like_duration("3H")
    assert not looks_like_duration("llama")
    assert not looks_like_duration("3")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "1h 30m"),
        (timedelta(hours=2, seconds=13), "2h"),
        (timedelta(days=1, hours=2, minutes=3), "1d 2h"),
        (timedelta(seconds=-5), "0m"),
        (timedelta(hours=2) - timedelta(milliseconds=3), "2h"),
        (timedelta(minutes=89, seconds=31), "1h 30m"),
    ],
)
def test_formats_compactly(delta, text):
    assert format_duration(delta) == text
