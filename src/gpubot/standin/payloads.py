"""Slack payload builders: what Slack sends to an app, copied in shape from recorded payloads.

Every builder is a pure function with deterministic ids, so tests, the demo and the benchmarks
produce the same payloads run after run. The shapes follow the fixtures the project keeps from
Slack's SDKs and docs (slash commands and `events_api` envelopes from python-slack-sdk's mock
server, `block_actions` from java-slack-sdk, `view_submission` from bolt-python's scenario tests).
"""

from __future__ import annotations

import itertools
from typing import Any

# One fake workspace. The Web API's `auth.test` answers with the same ids, so Bolt's
# authorization result and the payloads agree on who the bot is.
TEAM_ID = "T0STANDIN"
TEAM_DOMAIN = "gpubot-standin"
TEAM_NAME = "gpubot stand-in"
API_APP_ID = "A0STANDIN"
BOT_USER_ID = "U0GPUBOT"
BOT_ID = "B0GPUBOT"
BOT_NAME = "gpubot"
DEFAULT_USER_ID = "U0ALICE"
DEFAULT_CHANNEL_ID = "C0GPULAB"
# Slack stopped checking this legacy field long ago, but real payloads still carry it.
VERIFICATION_TOKEN = "standin-verification-token"
# A plausible epoch in Slack's "seconds.micros" form; fixed so payloads are reproducible.
EPOCH_S = 1_700_000_000

ENVELOPE_TYPES = frozenset({"slash_commands", "events_api", "interactive"})
# Interaction types whose ack may carry a reply (modal `response_action`s, select options).
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


_event_ids = itertools.count(1)


def slack_ts(serial: int) -> str:
    """Return the `serial`-th message timestamp after `EPOCH_S`, in Slack's "seconds.micros" form.

    Args:
        serial: A non-negative counter; larger serials give later timestamps.

    Returns:
        A string such as "1700000000.000042" that sorts the way Slack's `ts` values do.
    """
    return f"{EPOCH_S + serial // 1_000_000}.{serial % 1_000_000:06d}"


def dm_channel_id(user_id: str) -> str:
    """Return the stand-in's direct-message channel id for a user: "D" + the user id."""
    return "D" + user_id


def _user(user_id: str) -> dict[str, str]:
    name = user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID}


def _team() -> dict[str, str]:
    return {"id": TEAM_ID, "domain": TEAM_DOMAIN}


def slash_command(
    text: str,
    *,
    response_url: str,
    user_id: str = DEFAULT_USER_ID,
    command: str = "/gpu",
    channel_id: str = DEFAULT_CHANNEL_ID,
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """Build the payload of a `slash_commands` envelope.

    Args:
        text: What the user typed after the command, e.g. "claim 0 2h".
        response_url: Where the app may post replies; use `SlackStandin.new_response_url()`
            so the stand-in records them.
        user_id: Who ran the command.
        command: The command name, with its slash.
        channel_id: Where it was run. An id starting with "D" is a direct message.
        trigger_id: Lets the app open a modal; derived from `user_id` when omitted.

    Returns:
        The payload dict, all values strings as Slack sends them.
    """
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": "directmessage" if channel_id.startswith("D") else "gpu-lab",
        "user_id": user_id,
        "user_name": user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "response_url": response_url,
        "trigger_id": trigger_id or f"1000.{user_id}.command",
    }


def block_actions(
    action_id: str,
    value: str = "",
    *,
    user_id: str = DEFAULT_USER_ID,
    block_id: str = "gpubot_actions",
    view_id: str = "V0HOME",
    channel_id: str | None = None,
    message_ts: str | None = None,
    response_url: str | None = None,
    ephemeral: bool = False,
    trigger_id: str | None = None,
    selected_option: str | None = None,
    in_modal: bool = False,
) -> dict[str, Any]:
    """Build the payload of an `interactive` envelope for a button click, or a pick in a select menu.

    The button sits on the user's Home tab (view `view_id`) unless `channel_id`, `message_ts`
    and `response_url` are all given, in which case it sits on that message.

    Args:
        action_id: The clicked button's `action_id`.
        value: The button's `value`.
        user_id: Who clicked.
        block_id: The `actions` block holding the button.
        view_id: The Home tab view's id (Home-tab clicks only).
        channel_id: The message's channel (message clicks only).
        message_ts: The message's `ts` (message clicks only).
        response_url: Where the app may reply or replace the message (message clicks only).
        ephemeral: The message is ephemeral. Slack stores no copy of ephemeral messages,
            so their clicks carry no `message` object.
        trigger_id: Lets the app open a modal; derived from `user_id` when omitted.
        selected_option: The value picked in a `static_select` (instead of a button's `value`).
        in_modal: The element sits in a modal (view `view_id`) rather than on the Home tab.

    Returns:
        The `block_actions` payload dict.

    Raises:
        ValueError: Only some of `channel_id`, `message_ts` and `response_url` were given.
    """
    message_fields = (channel_id, message_ts, response_url)
    if any(f is not None for f in message_fields) and not all(f is not None for f in message_fields):
        raise ValueError("a message click needs channel_id, message_ts and response_url together")
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value,
        "type": "button",
        "action_ts": slack_ts(999_999),
    }
    if selected_option is not None:
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": selected_option}, "value": selected_option},
            "action_ts": slack_ts(999_999),
        }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": _team(),
        "user": _user(user_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or f"1000.{user_id}.action",
        "actions": [action],
    }
    if channel_id is None:
        payload["container"] = {"type": "view", "view_id": view_id}
        view_type = "modal" if in_modal else "home"
        payload["view"] = _view(view_id, view_type=view_type, callback_id="", private_metadata="", values={})
        return payload
    payload["container"] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": ephemeral,
    }
    payload["channel"] = {"id": channel_id, "name": "gpu-lab"}
    if not ephemeral:
        payload["message"] = {
            "bot_id": BOT_ID,
            "type": "message",
            "text": "",
            "user": BOT_USER_ID,
            "ts": message_ts,
            "team": TEAM_ID,
            "blocks": [],
        }
    payload["response_url"] = response_url
    return payload


def view_submission(
    callback_id: str,
    state_values: dict[str, dict[str, dict[str, Any]]],
    *,
    user_id: str = DEFAULT_USER_ID,
    private_metadata: str = "",
    view_id: str = "V0MODAL",
    trigger_id: str | None = None,
) -> dict[str, Any]:
    """Build the payload of an `interactive` envelope for a modal's submit button.

    Args:
        callback_id: The modal's `callback_id`.
        state_values: `view.state.values`: block_id -> action_id -> element state, e.g.
            `{"duration": {"duration_input": {"type": "plain_text_input", "value": "2h"}}}`.
            The view's input blocks are derived from it.
        user_id: Who submitted.
        private_metadata: The modal's `private_metadata`, as the app set it.
        view_id: The modal's id.
        trigger_id: Lets the app push a modal; derived from `user_id` when omitted.

    Returns:
        The `view_submission` payload dict.
    """
    return {
        "type": "view_submission",
        "team": _team(),
        "user": _user(user_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or f"1000.{user_id}.view",
        "view": _view(
            view_id,
            view_type="modal",
            callback_id=callback_id,
            private_metadata=private_metadata,
            values=state_values,
        ),
        "response_urls": [],
    }


def _view(
    view_id: str,
    *,
    view_type: str,
    callback_id: str,
    private_metadata: str,
    values: dict[str, dict[str, dict[str, Any]]],
) -> dict[str, Any]:
    blocks = [
        {
            "type": "input",
            "block_id": block_id,
            "label": {"type": "plain_text", "text": block_id},
            "optional": False,
            "element": {"type": state.get("type", "plain_text_input"), "action_id": action_id},
        }
        for block_id, actions in values.items()
        for action_id, state in actions.items()
    ]
    return {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": view_type,
        "blocks": blocks,
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": values},
        "hash": f"{EPOCH_S}.standin",
        "title": {"type": "plain_text", "text": BOT_NAME, "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": API_APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    }


def app_home_opened(user_id: str = DEFAULT_USER_ID, tab: str = "home", event_id: str | None = None) -> dict[str, Any]:
    """Build the `event_callback` payload of an `events_api` envelope for `app_home_opened`.

    The event carries no `view`, as on a user's first visit; an app must publish one either way.

    Args:
        user_id: Who opened the app.
        tab: "home" or "messages".
        event_id: Slack gives every event its own id and repeats it only when it retries that event;
            a fresh one (a counter, so runs are repeatable) when omitted.

    Returns:
        The `event_callback` payload dict.
    """
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": API_APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user_id,
            "channel": dm_channel_id(user_id),
            "tab": tab,
            "event_ts": slack_ts(0),
        },
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": EPOCH_S,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }


def envelope(
    envelope_type: str, payload: dict[str, Any], *, envelope_id: str, retry_attempt: int = 0
) -> dict[str, Any]:
    """Wrap a payload in a Socket Mode envelope.

    Args:
        envelope_type: "slash_commands", "events_api" or "interactive".
        payload: A payload from one of the builders above.
        envelope_id: The id the app's ack must echo.
        retry_attempt: How many times Slack already delivered this event (`events_api` only).

    Returns:
        The envelope dict. Only `events_api` envelopes carry `retry_attempt`/`retry_reason`.

    Raises:
        ValueError: Unknown envelope type, or a retry of something other than an event.
    """
    if envelope_type not in ENVELOPE_TYPES:
        raise ValueError(f"unknown envelope type {envelope_type!r}; expected one of {sorted(ENVELOPE_TYPES)}")
    accepts_response_payload = (
        envelope_type == "slash_commands" or payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
    )
    env: dict[str, Any] = {
        "envelope_id": envelope_id,
        "payload": payload,
        "type": envelope_type,
        "accepts_response_payload": accepts_response_payload,
    }
    if envelope_type == "events_api":
        env["retry_attempt"] = retry_attempt
        # Slack names why it retried; "timeout" (no ack in 3 s) is the one an app causes.
        env["retry_reason"] = "timeout" if retry_attempt else ""
    elif retry_attempt:
        raise ValueError(f"Slack retries only events_api envelopes, not {envelope_type}")
    return env


def hello(num_connections: int) -> dict[str, Any]:
    """Build the `hello` message Slack sends first on every Socket Mode connection."""
    return {
        "type": "hello",
        "num_connections": num_connections,
        "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": API_APP_ID},
    }


def disconnect(reason: str, num_connections: int | None = None) -> dict[str, Any]:
    """Build a Socket Mode `disconnect` message, e.g. reason "refresh_requested", "warning" or "too_many_websockets"."""
    message: dict[str, Any] = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}}
    if num_connections is not None:
        message["num_connections"] = num_connections
        message["connection_info"] = {"app_id": API_APP_ID}
    return message
