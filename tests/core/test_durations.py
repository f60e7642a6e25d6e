from datetime import timedelta

import pytest

from gpubot.core.durations import format_duration, is_duration, looks_like_duration, parse_duration
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
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("45min", timedelta(minutes=45)),
        ("45mins", timedelta(minutes=45)),
        ("90m", timedelta(minutes=90)),
        ("1 hour", timedelta(hours=1)),
        ("2 hours", timedelta(hours=2)),
        ("2hrs", timedelta(hours=2)),
        ("90 minutes", timedelta(minutes=90)),
        ("30 sec", timedelta(seconds=30)),
        ("2 days", timedelta(days=2)),
    ],
)
def test_parses_units_and_compounds(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2", "h", "2x", "-1h", "+1h", "1e9h", "1.5.h", ".h", "two hours", "0m", "0h0m", "0.0001s", "400d", "2 weeks"],
)
def test_rejects_what_is_not_a_positive_duration(text):
    with pytest.raises(CommandError, match=r"duration|unit|year"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["١h", "１h", "²h", "٣٠m", "1０m"])
def test_only_ascii_digits_are_numbers(text):
    # float() and int() read these; nobody types them meaning a duration.
    with pytest.raises(CommandError, match="not a duration"):
        parse_duration(text)


def test_a_bare_number_is_refused_with_a_unit_to_add():
    with pytest.raises(CommandError, match=r"`90` has no unit; write e\.g\. `90m` or `90h`"):
        parse_duration("90")


def test_a_refusal_names_the_accepted_forms_and_shortens_what_was_typed():
    with pytest.raises(CommandError) as refused:
        parse_duration("9" * 5000 + "h")
    assert "`1h 30m`" in refused.value.message and len(refused.value.message) < 200


def test_looks_like_duration_is_about_shape_only():
    assert looks_like_duration("0m")
    assert looks_like_duration("3H")
    assert looks_like_duration("3")
    assert looks_like_duration("-1h")
    assert looks_like_duration("1e9h")
    assert looks_like_duration("2 weeks")
    assert looks_like_duration("١h")
    assert not looks_like_duration("llama")
    assert not looks_like_duration("7b")
    assert not looks_like_duration("3d-unet")
    assert not looks_like_duration("...")


def test_is_duration_is_the_valid_shape():
    assert is_duration("1h 30m") and is_duration("0m")
    assert not is_duration("90") and not is_duration("-1h")


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
