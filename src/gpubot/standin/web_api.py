"""The stand-in's Slack Web API methods: token checks, scopes and responses, without HTTP.

Responses follow the shapes of Slack's own examples (chat.postMessage, views.publish,
views.open, views.update, conversations.open, users.info, apps.connections.open). Errors use Slack's
convention: HTTP 200 with `{"ok": false, "error": ...}`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from gpubot.standin import payloads

Body = dict[str, Any]
TokenKind = Literal["bot", "app"]


@dataclass(frozen=True)
class ApiReply:
    """What one Web API call answers: the JSON body and extra response headers."""

    body: Body
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Method:
    token_kind: TokenKind
    scope: str | None
    handler: Callable[[Body], Body]


def _invalid_arguments(*names: str) -> Body:
    return {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {"messages": [f"invalid `{name}`" for name in names]},
    }


def _missing(params: Body, *names: str) -> Body | None:
    absent = [name for name in names if not params.get(name)]
    return _invalid_arguments(*absent) if absent else None


@dataclass
class UploadedFile:
    """A file uploaded the way Slack's files.getUploadURLExternal → POST → files.completeUploadExternal goes."""

    id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)


class WebApi:
    """Answers Web API calls for one fake workspace with one bot and one app-level token.

    Not thread-safe: the stand-in calls it from its event loop only.
    """

    def __init__(
        self, *, bot_token: str, app_token: str, scopes: Collection[str], origin: str, home_tab: bool = True
    ) -> None:
        """Create the API.

        Args:
            bot_token: The only accepted bot token (xoxb-...).
            app_token: The only accepted app-level token (xapp-...).
            scopes: The bot token's scopes; methods that need another scope fail with `missing_scope`.
            origin: The stand-in's "http://host:port", used in URLs it hands out.
            home_tab: Whether the app's Home tab is enabled; when not, publishing a home view fails
                with `not_enabled`, as Slack documents for views.publish.
        """
        self._tokens: dict[TokenKind, str] = {"bot": bot_token, "app": app_token}
        self._scopes = frozenset(scopes)
        self._home_tab = home_tab
        self._origin = origin
        self._serials = itertools.count(1)
        self._tickets: set[str] = set()
        # Every message posted, by channel, oldest first: what conversations.history reads back.
        self._posted: dict[str, list[Body]] = {}
        self.files: dict[str, UploadedFile] = {}
        self._methods: dict[str, _Method] = {
            "auth.test": _Method("bot", None, self._auth_test),
            "apps.connections.open": _Method("app", None, self._connections_open),
            "chat.postMessage": _Method("bot", "chat:write", self._post_message),
            "chat.postEphemeral": _Method("bot", "chat:write", self._post_ephemeral),
            "chat.update": _Method("bot", "chat:write", self._update),
            "views.publish": _Method("bot", None, self._views_publish),
            "views.open": _Method("bot", None, self._views_open),
            "views.update": _Method("bot", None, self._views_update),
            "conversations.open": _Method("bot", "im:write", self._conversations_open),
            "conversations.history": _Method("bot", "im:history", self._conversations_history),
            "users.info": _Method("bot", "users:read", self._users_info),
            "files.getUploadURLExternal": _Method("bot", "files:write", self._upload_url),
            "files.completeUploadExternal": _Method("bot", "files:write", self._complete_upload),
        }

    def handle(self, method: str, params: Body, token: str | None) -> ApiReply:
        """Answer one call.

        Args:
            method: The method name, e.g. "chat.postMessage".
            params: The decoded arguments, without the token.
            token: The token the caller sent, if any.

        Returns:
            The reply. Bot-token replies carry Slack's `x-oauth-scopes` header.
        """
        spec = self._methods.get(method)
        if spec is None:
            return ApiReply({"ok": False, "error": "unknown_method", "req_method": method})
        if token != self._tokens[spec.token_kind]:
            # Slack tells a token of the wrong kind apart from a bad one.
            error = "not_allowed_token_type" if token in self._tokens.values() else "invalid_auth"
            return ApiReply({"ok": False, "error": error})
        headers = {"x-oauth-scopes": ",".join(sorted(self._scopes))} if spec.token_kind == "bot" else {}
        if spec.scope is not None and spec.scope not in self._scopes:
            body: Body = {
                "ok": False,
                "error": "missing_scope",
                "needed": spec.scope,
                "provided": ",".join(sorted(self._scopes)),
            }
            return ApiReply(body, headers)
        return ApiReply(spec.handler(params), headers)

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """Take the bytes POSTed to an upload URL this API handed out; False for an unknown or finished upload."""
        upload = self.files.get(file_id)
        if upload is None or upload.completed:
            return False
        upload.data = data
        return True

    def ticket_issued(self, ticket: str) -> bool:
        """Tell whether `apps.connections.open` handed out this WebSocket ticket."""
        return ticket in self._tickets

    def _next_ts(self) -> str:
        return payloads.slack_ts(next(self._serials))

    def _auth_test(self, params: Body) -> Body:
        return {
            "ok": True,
            "url": f"{self._origin}/",
            "team": payloads.TEAM_NAME,
            "user": payloads.BOT_NAME,
            "team_id": payloads.TEAM_ID,
            "user_id": payloads.BOT_USER_ID,
            "bot_id": payloads.BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, params: Body) -> Body:
        ticket = str(next(self._serials))
        self._tickets.add(ticket)
        ws_origin = self._origin.replace("http://", "ws://", 1)
        return {"ok": True, "url": f"{ws_origin}/socket?ticket={ticket}"}

    def _message(self, params: Body, ts: str) -> Body:
        message: Body = {
            "type": "message",
            "subtype": "bot_message",
            "username": payloads.BOT_NAME,
            "user": payloads.BOT_USER_ID,
            "bot_id": payloads.BOT_ID,
            "app_id": payloads.API_APP_ID,
            "team": payloads.TEAM_ID,
            "text": params.get("text", ""),
            "ts": ts,
        }
        if "blocks" in params:
            message["blocks"] = params["blocks"]
        if isinstance(params.get("attachments"), list):
            # Slack numbers a message's attachments from 1.
            message["attachments"] = [
                {"id": n, **att} if isinstance(att, dict) else att
                for n, att in enumerate(params["attachments"], start=1)
            ]
        return message

    @staticmethod
    def _channel(channel: str) -> str:
        # Posting to a user id lands in the bot's DM with that user, and Slack answers with the DM's id.
        return payloads.dm_channel_id(channel) if channel[:1] in ("U", "W") else channel

    def _post_message(self, params: Body) -> Body:
        if error := _missing(params, "channel"):
            return error
        if not any(params.get(key) for key in ("text", "blocks", "attachments")):
            return {"ok": False, "error": "no_text"}
        if self._unknown_files(params.get("blocks")):
            return {"ok": False, "error": "invalid_blocks"}
        ts = self._next_ts()
        channel = self._channel(params["channel"])
        message = self._message(params, ts)
        metadata = _json_object(params.get("metadata"))
        if metadata is not None:
            message["metadata"] = metadata
        self._posted.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _upload_url(self, params: Body) -> Body:
        if error := _missing(params, "filename", "length"):
            return error
        try:
            length = int(params["length"])
        except (TypeError, ValueError):
            return _invalid_arguments("length")
        if length <= 0:
            return _invalid_arguments("length")
        file_id = f"F{next(self._serials):09d}"
        self.files[file_id] = UploadedFile(file_id, str(params["filename"]), length)
        return {"ok": True, "upload_url": f"{self._origin}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, params: Body) -> Body:
        listed = params.get("files")
        if not isinstance(listed, list) or not listed:
            return _invalid_arguments("files")
        completed = []
        for entry in listed:
            upload = self.files.get(entry.get("id", "")) if isinstance(entry, dict) else None
            # Slack refuses a file whose bytes never arrived, or not as many as announced.
            if upload is None or upload.data is None or len(upload.data) != upload.length:
                return {"ok": False, "error": "file_not_found"}
            completed.append((upload, entry.get("title")))
        channel = params.get("channel_id")
        shown = []
        for upload, title in completed:
            upload.completed = True
            upload.title = str(title) if title else upload.filename
            if channel:
                upload.channels.append(str(channel))
            shown.append({"id": upload.id, "name": upload.filename, "title": upload.title, "size": upload.length})
        if channel:
            message = self._message({"text": params.get("initial_comment", "")}, self._next_ts())
            message["files"] = shown
            self._posted.setdefault(str(channel), []).append(message)
        return {"ok": True, "files": shown}

    def _unknown_files(self, blocks: Any) -> bool:
        """Whether an image block in `blocks` names a file that was not uploaded (Slack: invalid_blocks)."""
        if not isinstance(blocks, list):
            return False
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "image" and isinstance(block.get("slack_file"), dict):
                upload = self.files.get(str(block["slack_file"].get("id", "")))
                if upload is None or not upload.completed:
                    return True
        return False

    def _conversations_history(self, params: Body) -> Body:
        if error := _missing(params, "channel"):
            return error
        channel = str(params["channel"])
        if channel not in self._posted and not channel.startswith("D"):
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(params.get("oldest") or 0)
        limit = int(params.get("limit") or 100)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("true", "1")
        newest_first = [m for m in reversed(self._posted.get(channel, [])) if float(m["ts"]) > oldest]
        messages = [
            m if with_metadata else {key: value for key, value in m.items() if key != "metadata"}
            for m in newest_first[:limit]
        ]
        return {"ok": True, "messages": messages, "has_more": len(newest_first) > limit, "pin_count": 0}

    def _post_ephemeral(self, params: Body) -> Body:
        if error := _missing(params, "channel", "user"):
            return error
        if not any(params.get(key) for key in ("text", "blocks", "attachments")):
            return {"ok": False, "error": "no_text"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _update(self, params: Body) -> Body:
        if error := _missing(params, "channel", "ts"):
            return error
        ts = params["ts"]
        return {
            "ok": True,
            "channel": params["channel"],
            "ts": ts,
            "text": params.get("text", ""),
            "message": self._message(params, ts),
        }

    def _view(self, params: Body, view_type: str) -> Body:
        view = params["view"]
        if not isinstance(view, dict) or view.get("type") != view_type:
            return _invalid_arguments("view")
        view_id = f"V{next(self._serials):08d}"
        stored: Body = {
            "id": view_id,
            "team_id": payloads.TEAM_ID,
            "type": view_type,
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": f"{payloads.EPOCH_S}.{view_id}",
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "external_id": "",
            **{key: value for key, value in view.items() if key != "id"},
            # Slack gives every block without a block_id one of its own.
            "blocks": [
                {"block_id": f"{view_id}-{n}", **block} if isinstance(block, dict) else block
                for n, block in enumerate(view.get("blocks") or [])
            ],
            "root_view_id": view_id,
            "app_id": payloads.API_APP_ID,
            "bot_id": payloads.BOT_ID,
        }
        return {"ok": True, "view": stored}

    def _views_publish(self, params: Body) -> Body:
        if error := _missing(params, "user_id", "view"):
            return error
        if not self._home_tab and isinstance(params["view"], dict) and params["view"].get("type") == "home":
            return {"ok": False, "error": "not_enabled"}
        return self._view(params, "home")

    def _views_open(self, params: Body) -> Body:
        return _missing(params, "trigger_id", "view") or self._view(params, "modal")

    def _views_update(self, params: Body) -> Body:
        if error := _missing(params, "view"):
            return error
        if not params.get("view_id") and not params.get("external_id"):
            return _invalid_arguments("view_id")
        return self._view(params, "modal")

    def _conversations_open(self, params: Body) -> Body:
        if error := _missing(params, "users"):
            return error
        users = str(params["users"])
        if "," in users:
            # Group DMs are out of scope: gpubot only ever DMs one user.
            return _invalid_arguments("users")
        return {"ok": True, "channel": {"id": payloads.dm_channel_id(users)}}

    def _users_info(self, params: Body) -> Body:
        user_id = str(params.get("user", ""))
        if user_id[:1] not in ("U", "W"):
            return {"ok": False, "error": "user_not_found"}
        name = user_id.lower()
        real_name = f"User {user_id}"
        avatar = f"{self._origin}/avatars/{user_id}.png"
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": payloads.TEAM_ID,
                "name": name,
                "deleted": False,
                "color": "9f69e7",
                "real_name": real_name,
                "tz": "UTC",
                "tz_label": "Coordinated Universal Time",
                "tz_offset": 0,
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": user_id == payloads.BOT_USER_ID,
                "is_app_user": False,
                "has_2fa": False,
                "updated": payloads.EPOCH_S,
                "profile": {
                    "avatar_hash": "standin",
                    "status_text": "",
                    "status_emoji": "",
                    "real_name": real_name,
                    "display_name": name,
                    "real_name_normalized": real_name,
                    "display_name_normalized": name,
                    "email": f"{name}@standin.invalid",
                    **{f"image_{size}": avatar for size in ("24", "32", "48", "72", "192", "512", "original")},
                    "team": payloads.TEAM_ID,
                },
            },
        }


def _json_object(value: Any) -> Body | None:
    """Message metadata as sent: a JSON object, or a string of one (form-encoded calls)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None
