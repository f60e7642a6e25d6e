"""Block Kit as a person would read it, as plain text: the bot's replies, Home tab and DMs in `gpubot demo`.

Pure functions from blocks to strings; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gpubot.host.terminal import display_width

_RULE = "─"
_DATE_TOKEN = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CODE_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_EMPHASIS = [re.compile(rf"(?<![\w{mark}])\{mark}(?=\S)(.+?)(?<=\S)\{mark}(?![\w{mark}])") for mark in "*_~"]


def mrkdwn_to_text(text: str, names: Mapping[str, str] | None = None) -> str:
    """Slack mrkdwn as plain text: markup removed, date tokens as their fallback, mentions as @name.

    Args:
        text: mrkdwn, as in a section's text.
        names: Display names by user ID; a user without one shows as @U….

    Returns:
        The text a reader sees, without formatting.
    """
    names = names or {}
    protected: list[str] = []

    def protect(value: str) -> str:
        protected.append(value)
        return f"\0{len(protected) - 1}\0"

    # Code is shown as typed, so nothing inside it is markup.
    text = _CODE_BLOCK.sub(lambda m: protect("\n    " + m[1].strip("\n").replace("\n", "\n    ") + "\n"), text)
    text = _CODE.sub(lambda m: protect(m[1]), text)
    text = _DATE_TOKEN.sub(lambda m: protect(m[1]), text)
    text = _USER.sub(lambda m: protect("@" + (names.get(m[1]) or m[2] or m[1])), text)
    text = _CHANNEL.sub(lambda m: protect("#" + (m[2] or m[1])), text)
    text = _SPECIAL.sub(lambda m: protect("@" + m[1]), text)
    text = _LINK.sub(lambda m: protect(m[2] or m[1]), text)
    for emphasis in _EMPHASIS:
        text = emphasis.sub(lambda m: m[1], text)
    text = re.sub("\0(\\d+)\0", lambda m: protected[int(m[1])], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_blocks(blocks: Sequence[Mapping[str, Any]], names: Mapping[str, str] | None = None) -> str:
    """A message's or view's blocks as the lines a person reads; buttons show as [Button]."""
    lines: list[str] = []
    for block in blocks:
        lines.extend(_block_lines(block, names or {}))
    return "\n".join(line.rstrip() for line in lines)


def _text(obj: Any, names: Mapping[str, str]) -> str:
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text", ""))
    return mrkdwn_to_text(text, names) if obj.get("type") == "mrkdwn" else text


def _element(element: Mapping[str, Any], names: Mapping[str, str]) -> str:
    kind = element.get("type")
    if kind == "button":
        return f"[{_text(element.get('text'), names)}]"
    if kind in ("static_select", "multi_static_select", "users_select", "conversations_select"):
        initial = element.get("initial_option")
        label = _text(initial.get("text"), names) if isinstance(initial, Mapping) else ""
        return f"[{label or _text(element.get('placeholder'), names) or 'choose'} ▾]"
    if kind == "overflow":
        return "[⋯]"
    if kind in ("mrkdwn", "plain_text"):
        return _text(element, names)
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    return f"[{kind}]"


def _block_lines(block: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text(block.get("text"), names)
        return [title, _RULE * max(display_width(title), 3)]
    if kind == "section":
        lines = _text(block.get("text"), names).splitlines() if block.get("text") else []
        lines += [_text(field, names) for field in block.get("fields") or []]
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            if lines:
                lines[-1] = f"{lines[-1]}  {_element(accessory, names)}"
            else:
                lines = [_element(accessory, names)]
        return lines
    if kind == "context":
        return ["  " + " · ".join(_element(element, names) for element in block.get("elements") or [])]
    if kind == "actions":
        return [" ".join(_element(element, names) for element in block.get("elements") or [])]
    if kind == "divider":
        return [_RULE * 40]
    if kind == "input":
        return [f"{_text(block.get('label'), names)}: {_element(block.get('element') or {}, names)}"]
    if kind == "image":
        return [f"[image: {block.get('alt_text', '')}]"]
    return [f"[{kind} block]"]
