"""Block Kit primitives: the blocks and elements every Slack message and view is built of.

Each stays within Block Kit's limits. Pure; the messages are in `slack.messages`, the Home tab and the claim form in
`slack.views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpubot.slack.mrkdwn import truncate

Block = dict[str, Any]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SELECT_OPTIONS = 100
MAX_PLAIN_TEXT_CHARS = 75  # button labels, option texts, placeholders
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_CONTEXT_ELEMENTS = 10


@dataclass(frozen=True)
class Message:
    """A Slack message: `text` is the plain notification fallback, `blocks` what people see."""

    text: str
    blocks: list[Block]


def button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    """A button element; `style` is Slack's "primary" or "danger", or None for the plain one."""
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def option(text: str, value: str) -> Block:
    """One choice of a select menu."""
    return {"text": plain(text), "value": value}


def plain(text: str) -> Block:
    """A plain_text object (emoji shortcodes rendered), cut to Slack's limit."""
    return {"type": "plain_text", "text": truncate(text, MAX_PLAIN_TEXT_CHARS), "emoji": True}


def pack_lines(lines: Sequence[str], max_blocks: int, noun: str) -> list[Block]:
    """One section per line while they fit; otherwise several lines per section, then "and N more"."""
    if len(lines) <= max_blocks:
        return [section(line) for line in lines]
    blocks: list[Block] = []
    chunk: list[str] = []
    # The length of "\n".join(chunk), kept as lines are added: joining the chunk anew for every line made
    # this quadratic in the lines per section.
    chunk_chars = 0
    shown = 0
    for line in lines:
        if chunk and chunk_chars + 1 + len(line) > MAX_SECTION_CHARS:
            if len(blocks) == max_blocks - 1:
                break
            blocks.append(section("\n".join(chunk)))
            chunk, chunk_chars = [], 0
        chunk_chars += len(line) + (1 if chunk else 0)
        chunk.append(line)
        shown += 1
    if chunk and len(blocks) < max_blocks - 1:
        blocks.append(section("\n".join(chunk)))
    else:
        shown -= len(chunk)
    if shown < len(lines):
        blocks.append(context(f"…and {len(lines) - shown} more {noun}"))
    return blocks


def header(text: str) -> Block:
    """A header block, cut to Slack's limit."""
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, MAX_HEADER_CHARS), "emoji": True},
    }


def section(text: str) -> Block:
    """A section of mrkdwn `text`, cut to Slack's limit."""
    # verbatim: Slack must not auto-link or auto-mention anything inside text a user typed.
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS), "verbatim": True},
    }


def context(*texts: str) -> Block:
    """A context block (small grey text), one mrkdwn element per text up to Slack's limit."""
    elements = [{"type": "mrkdwn", "text": truncate(text, MAX_SECTION_CHARS), "verbatim": True} for text in texts]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def input_block(block_id: str, label: str, element: Block) -> Block:
    """A labelled form field of a modal; its value comes back under `block_id` on submit."""
    return {"type": "input", "block_id": block_id, "label": plain(label), "element": element}
