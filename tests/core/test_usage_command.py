"""`/gpu usage`'s words: a scope and a period in any order, and clear refusals."""

from __future__ import annotations

import pytest

from gpubot.core.commands import USAGE_DEFAULT_DAYS, UsageCommand, UsageScope, parse_usage
from gpubot.core.errors import CommandError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", UsageCommand(UsageScope("me"), USAGE_DEFAULT_DAYS)),
        ("30d", UsageCommand(UsageScope("me"), 30)),
        ("me 90D", UsageCommand(UsageScope("me"), 90)),
        ("team", UsageCommand(UsageScope("team"), USAGE_DEFAULT_DAYS)),
        ("90d TEAM", UsageCommand(UsageScope("team"), 90)),
        ("@alice 30d", UsageCommand(UsageScope("person", "alice"), 30)),
        ("<@U0ALICE> 7d", UsageCommand(UsageScope("person", "U0ALICE"), 7)),
        ("<@U0ALICE|alice smith>", UsageCommand(UsageScope("person", "U0ALICE"), USAGE_DEFAULT_DAYS)),
        ("box-2", UsageCommand(UsageScope("name", "box-2"), USAGE_DEFAULT_DAYS)),
        ("H100 80GB 30d", UsageCommand(UsageScope("name", "H100 80GB"), 30)),
        ("366d", UsageCommand(UsageScope("me"), 366)),
    ],
)
def test_scope_and_period_in_any_order(text, expected):
    assert parse_usage(text.split()) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("0d", "from 1 to 366"),
        ("367d", "from 1 to 366"),
        ("7d 30d", "one period"),
        ("@alice @bob", "one person"),
        ("@", "one person"),
        ("team me", "one of"),
        ("box-2 team", "one of"),
        ("x" * 101, "too long"),
    ],
)
def test_what_cannot_be_read_is_refused_with_what_would_be(text, fragment):
    with pytest.raises(CommandError) as refused:
        parse_usage(text.split())
    assert fragment in refused.value.message
