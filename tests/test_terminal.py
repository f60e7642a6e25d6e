"""Terminal renderings: Block Kit and mrkdwn as a person reads them, and aligned tables."""

from __future__ import annotations

from gpubot.demo.block_text import mrkdwn_to_text, render_blocks
from gpubot.host.terminal import printable, table
from gpubot.slack import blocks


def test_mrkdwn_loses_its_markup_but_keeps_its_meaning():
    text = (
        "*GPU 0* held by <@U0ALICE> until <!date^1700000000^{date_short_pretty} {time}|Tue 14 Nov 23:13 CET>"
        " _soon_ ~maybe~ <https://example.org|the docs> <!here> <#C0GPULAB|gpu-lab> `CUDA_VISIBLE_DEVICES=0`"
        " &lt;!channel&gt; &amp; co"
    )
    assert mrkdwn_to_text(text, {"U0ALICE": "alice"}) == (
        "GPU 0 held by @alice until Tue 14 Nov 23:13 CET soon maybe the docs @here #gpu-lab"
        " CUDA_VISIBLE_DEVICES=0 <!channel> & co"
    )


def test_unknown_users_show_their_id_and_code_is_left_as_typed():
    assert mrkdwn_to_text("<@U0BOB> ran `*not bold*`") == "@U0BOB ran *not bold*"
    assert mrkdwn_to_text("2*3*4 and snake_case_name") == "2*3*4 and snake_case_name"
    assert mrkdwn_to_text("```line 1\nline 2```") == "\n    line 1\n    line 2\n"


def test_blocks_render_as_lines_with_buttons_in_brackets():
    view = [
        blocks.header("GPUs on gpu-box-1"),
        blocks.section("*2 of 4 GPUs free*"),
        {"type": "divider"},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "GPU 0 free"},
            "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Claim"}, "action_id": "c"},
        },
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Extend +1h"}, "action_id": "e"},
                {
                    "type": "static_select",
                    "placeholder": {"type": "plain_text", "text": "Extend by…"},
                    "action_id": "s",
                },
            ],
        },
        blocks.context("a `hint`", "b"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Left*"}, {"type": "plain_text", "text": "2h"}]},
        {"type": "rich_text"},
    ]
    assert render_blocks(view).splitlines() == [
        "GPUs on gpu-box-1",
        "─────────────────",
        "2 of 4 GPUs free",
        "─" * 40,
        "GPU 0 free  [Claim]",
        "[Extend +1h] [Extend by… ▾]",
        "  a hint · b",
        "Left",
        "2h",
        "[rich_text block]",
    ]


def test_tables_align_by_display_width():
    rows = table(["GPU", "LOAD"], [["🔥 0", "high"], ["10", "idle"]])
    assert rows == ["GPU   LOAD", "🔥 0  high", "10    idle"]


def test_control_characters_cannot_reach_the_terminal():
    assert printable("a\x1b[31mred\x07\r\nb\tc") == "a?[31mred?? b c"


def test_errors_print_people_by_name_and_id_and_the_host_commands_hint():
    from gpubot.core.errors import NoDatabase, NotHolder
    from gpubot.host.terminal import error_text

    assert (
        error_text(NotHolder("1", "U0ALICE"), {"U0ALICE": "alice"})
        == "GPU 1 is claimed by alice (U0ALICE), not by you."
    )
    assert error_text(NotHolder("1", "U0BOB")) == "GPU 1 is claimed by U0BOB, not by you."
    assert error_text(NoDatabase("/var/lib/gpubot/gpubot.db")).endswith("run `gpubot db upgrade` as its user")
