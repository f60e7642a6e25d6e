from datetime import timedelta

import pytest

from gpubot.core.commands import (
    SUBCOMMANDS,
    ClaimCommand,
    ClaimDialogCommand,
    ExtendCommand,
    HelpCommand,
    RealtimeCommand,
    ReleaseCommand,
    StatusCommand,
    parse_command,
)
from gpubot.core.errors import CommandError
from gpubot.core.policy import PURPOSE_MAX_CHARS
from gpubot.core.selection import GpuSelection
from gpubot.slack.messages import USAGES


@pytest.mark.parametrize("text", ["", "   ", "status", "STATUS"])
def test_status(text):
    assert parse_command(text) == StatusCommand()


def test_help_and_realtime():
    assert parse_command("help") == HelpCommand()
    assert parse_command("realtime") == RealtimeCommand()


def test_claim_with_duration_as_last_word():
    assert parse_command("claim 0 fine-tune llama 3h") == ClaimCommand(
        GpuSelection(labels=("0",)), "fine-tune llama", timedelta(hours=3)
    )


def test_claim_without_duration_keeps_every_word_as_purpose():
    assert parse_command("claim 1 train for 3 epochs") == ClaimCommand(
        GpuSelection(labels=("1",)), "train for 3 epochs", None
    )


@pytest.mark.parametrize(
    ("spec", "labels"),
    [
        ("0,2", ("0", "2")),
        ("0-3", ("0", "1", "2", "3")),
        ("0,4-5,0", ("0", "4", "5")),
        ("7", ("7",)),
        # MIG slices are CARD.SLICE, alone, in lists, beside cards; leading zeros read as people write them.
        ("0.2", ("0.2",)),
        ("0.1,0.3", ("0.1", "0.3")),
        ("1,0.2", ("1", "0.2")),
        ("00.02,0.2", ("0.2",)),
    ],
)
def test_gpu_lists_and_ranges(spec, labels):
    command = parse_command(f"claim {spec} eval")
    assert command == ClaimCommand(GpuSelection(labels=labels), "eval", None)


@pytest.mark.parametrize("spec", ["0.1-0.3", "0-0.3", "0.1-2"])
def test_a_range_of_slices_is_refused_with_a_hint(spec):
    with pytest.raises(CommandError, match=r"ranges name whole cards .*`0\.1,0\.2`"):
        parse_command(f"claim {spec} eval")


@pytest.mark.parametrize("spec", ["0.", ".2", "0..2", "0.2.1", "0.²", "０.1", "0.1."])
def test_malformed_slices_are_refused(spec):
    with pytest.raises(CommandError):
        parse_command(f"claim {spec} eval")


def test_any():
    assert parse_command("claim any eval 1h").selection == GpuSelection(any_free=True)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("frobnicate", "don't know"),
        ("claim 0", "what the GPU is for"),
        ("claim 0 2h", "what the GPU is for"),
        ("claim x eval", "is not a GPU"),
        ("claim 3-1 eval", "backwards"),
        ("claim 0-100000 eval", "too many"),
        ("claim 0 eval 0m", "longer than zero"),
        ("release", "which GPU"),
        ("release any", "only works with claim"),
        ("release 0 1", "which GPU"),
        ("extend 0", "how long"),
        ("extend 0 soon", "not a duration"),
        ("extend 0 90", "has no unit"),
        ("claim ² x 1h", "is not a GPU"),
        ("claim ١ x", "is not a GPU"),
        ("claim １ x", "is not a GPU"),
        ("claim 0,٢ x", "is not a GPU"),
        ("claim ١-٣ x", "is not a GPU"),
        ("release ٣", "is not a GPU"),
        ("claim " + "9" * 5000 + " x", "is not a GPU"),
        ("claim 0 x ١h", "not a duration"),
        ("claim 0 x 90", "has no unit"),
        ("claim 0 1 2 3", "put the duration after it"),
        ("claim 0 x -1h", "`1h 30m`"),
        ("claim 0 x 1e9h", "`1h 30m`"),
        ("claim 0 x 1.5.h", "`1h 30m`"),
        ("claim 0 x 2 weeks", "`1h 30m`"),
        ("claim 0 x -1 h", "`1h 30m`"),
        ("claim 0 x 0h", "longer than zero"),
        ("claim 0 1h 30m", "what the GPU is for"),
        ("claim 0 \u200b", "what the GPU is for"),
        ("claim 0 \u200d\ufeff \u00ad", "what the GPU is for"),
        ("claim 0 \u3164 2h", "what the GPU is for"),
    ],
)
def test_bad_input_says_what_was_wrong_and_gives_the_syntax(text, fragment):
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert fragment in raised.value.message
    assert raised.value.usage


@pytest.mark.parametrize(
    ("text", "purpose", "duration"),
    [
        ("claim 2 job 1h 30m", "job", timedelta(minutes=90)),
        ("claim 2 job 1.5h", "job", timedelta(minutes=90)),
        ("claim 2 job 45min", "job", timedelta(minutes=45)),
        ("claim 2 job 90m", "job", timedelta(minutes=90)),
        ("claim 2 job 1 hour", "job", timedelta(hours=1)),
        ("claim 2 job 2 hours", "job", timedelta(hours=2)),
        ("claim 2 train 3 2h", "train 3", timedelta(hours=2)),
        ("claim 2 llama 7b 2h", "llama 7b", timedelta(hours=2)),
        ("claim 2 3d-unet", "3d-unet", None),
        ("claim 2 wait ...", "wait ...", None),
    ],
)
def test_claim_reads_the_durations_people_type(text, purpose, duration):
    command = parse_command(text)
    assert isinstance(command, ClaimCommand)
    assert (command.purpose, command.duration) == (purpose, duration)


def test_extend_reads_a_two_word_duration():
    assert parse_command("extend 2 1h 30m") == ExtendCommand(GpuSelection(labels=("2",)), timedelta(minutes=90))


def test_a_bad_argument_names_its_subcommand_and_an_unknown_verb_names_them_all():
    with pytest.raises(CommandError) as raised:
        parse_command("extend 0 soon")
    assert raised.value.usage == ("extend",)
    with pytest.raises(CommandError) as raised:
        parse_command("frobnicate")
    assert raised.value.usage == SUBCOMMANDS


def test_purpose_length_cap():
    assert parse_command("claim 0 " + "a" * PURPOSE_MAX_CHARS).purpose == "a" * PURPOSE_MAX_CHARS
    with pytest.raises(CommandError, match="keep it within"):
        parse_command("claim 0 " + "a" * (PURPOSE_MAX_CHARS + 1))


def test_claim_alone_opens_the_form():
    assert parse_command("claim") == ClaimDialogCommand()


def test_release_all_and_extend():
    assert parse_command("release all") == ReleaseCommand(selection=None)
    assert parse_command("release 0,1") == ReleaseCommand(GpuSelection(labels=("0", "1")))
    assert parse_command("extend 2 1h30m") == ExtendCommand(GpuSelection(labels=("2",)), timedelta(minutes=90))


def test_every_subcommand_has_usage_and_an_example_that_parses():
    assert list(USAGES) == list(SUBCOMMANDS)
    for name, usage in USAGES.items():
        assert usage.summary
        example = usage.example.removeprefix("/gpu").strip()
        parse_command(example)  # must not raise
        assert usage.syntax.startswith(f"/gpu {name}") or name == "status"
