"""The stand-in's aiohttp server: the Web API over HTTP, response URLs and a Socket Mode WebSocket.

Everything here runs on one asyncio event loop; `facade.SlackStandin` runs that loop in a
thread. Only `calls.CallLog` and `calls.Faults` are shared with other threads, and they lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web

from gpubot.standin import payloads
from gpubot.standin.calls import Ack, Call, CallLog, Faults, StandinError, StandinTimeoutError
from gpubot.standin.web_api import Body, UploadedFile, WebApi

log = logging.getLogger(__name__)

RESPONSE_URL_METHOD = "response_url"
"""The pseudo method name under which posts to a response URL are recorded."""

# Form bodies carry structured arguments as JSON strings; Slack decodes these.
_JSON_FIELDS = ("blocks", "view", "attachments", "files")
# What the stand-in records for a POST to an upload URL (files.getUploadURLExternal hands them out).
UPLOAD_METHOD = "upload"

# Slack keeps up to this many Socket Mode connections of one app open at once.
MAX_CONNECTIONS = 10


@dataclass(frozen=True)
class _Live:
    """What exists only while the server runs."""

    api: WebApi
    runner: web.AppRunner
    sockets_changed: asyncio.Condition


@dataclass
class _PendingAck:
    envelope: Body
    future: asyncio.Future[Ack]
    # The serial number of the connection it went to, and its socket.
    connection: int
    socket: web.WebSocketResponse
    sent_at: float = 0.0


class StandinServer:
    """The HTTP and WebSocket side of the stand-in. All async methods run on the server's loop."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        scopes: Collection[str],
        port: int = 0,
        home_tab: bool = True,
        seed: int | None = None,
    ) -> None:
        """Configure the server; `start()` binds it.

        Args:
            bot_token: The accepted bot token.
            app_token: The accepted app-level token.
            scopes: The bot token's scopes.
            port: The TCP port on 127.0.0.1; 0 picks a free one.
            home_tab: Whether the app's Home tab is enabled (see `WebApi`).
            seed: Seeds the choice of socket for each envelope; None for a fresh random one.
        """
        self.calls = CallLog()
        self.faults = Faults()
        self._bot_token = bot_token
        self._app_token = app_token
        self._scopes = frozenset(scopes)
        self._home_tab = home_tab
        self._port = port
        self._origin = ""
        self._live: _Live | None = None
        # Sockets that get envelopes, newest last, with their serial numbers; retired ones
        # (sent a disconnect) leave this list but stay open, and still deliver acks.
        self._active: list[tuple[int, web.WebSocketResponse]] = []
        self._open: set[web.WebSocketResponse] = set()
        self._connections = 0
        self._pending: dict[str, _PendingAck] = {}
        self._chooser = random.Random(seed)

    @property
    def origin(self) -> str:
        """The server's "http://127.0.0.1:<port>"; empty until started."""
        return self._origin

    async def start(self) -> None:
        """Bind to 127.0.0.1 and start serving."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{id}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        # A short shutdown timeout: by then every WebSocket is closed, so nothing is left to wait for.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self._port).start()
        self._origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
        api = WebApi(
            bot_token=self._bot_token,
            app_token=self._app_token,
            scopes=self._scopes,
            origin=self._origin,
            home_tab=self._home_tab,
        )
        self._live = _Live(api, runner, asyncio.Condition())

    @property
    def _started(self) -> _Live:
        if self._live is None:
            raise StandinError("the stand-in is not running")
        return self._live

    async def stop(self) -> None:
        """Close every WebSocket (clients see a close frame), fail waiting sends, stop serving."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(StandinError("the stand-in stopped before the ack arrived"))
        if self._live is None:
            return
        await self._close_sockets()
        await self._live.runner.cleanup()
        self._live = None

    # --- Web API and response URLs -------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        received_at = time.perf_counter()
        method = request.match_info["method"]
        params = {**request.query, **await _read_body(request)}
        token = _bearer_token(request)
        # Slack accepts the token as a form field too; it never belongs to the arguments.
        field_token = params.pop("token", None)
        token = token or (str(field_token) if field_token is not None else None)
        for key in _JSON_FIELDS:
            if isinstance(params.get(key), str):
                params[key] = _json_or_text(params[key])
        fault = self.faults.take(method)
        headers: dict[str, str] = {}
        if fault is not None:
            status, error, headers = fault
            body: Body = {"ok": False, "error": error}
        else:
            reply = self._started.api.handle(method, params, token)
            status, body, headers = 200, reply.body, reply.headers
        self.calls.append(Call(method, params, token, request.path, received_at, status, body))
        return web.json_response(body, status=status, headers=headers)

    async def _handle_upload(self, request: web.Request) -> web.Response:
        received_at = time.perf_counter()
        file_id = request.match_info["file_id"]
        data = await request.read()
        accepted = self._started.api.receive_upload(file_id, data)
        status = 200 if accepted else 404
        body: Body = {"ok": accepted, "file_id": file_id, "bytes": len(data)}
        self.calls.append(Call(UPLOAD_METHOD, {"file_id": file_id}, None, request.path, received_at, status, body))
        # Slack's upload endpoint answers in plain text.
        return web.Response(text=f"OK - {len(data)}" if accepted else "file_not_found", status=status)

    def uploaded(self, file_id: str) -> UploadedFile | None:
        """A file uploaded through the upload flow, with its bytes; None if no such upload was begun."""
        return self._started.api.files.get(file_id)

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        received_at = time.perf_counter()
        params = await _read_body(request)
        fault = self.faults.take(RESPONSE_URL_METHOD)
        headers: dict[str, str] = {}
        if fault is not None:
            status, error, headers = fault
            # Response URLs answer in plain text; their errors are 4xx, not Slack's 200 + ok:false.
            status = 400 if status == 200 else status
        elif not params.get("delete_original") and not any(
            params.get(key) for key in ("text", "blocks", "attachments")
        ):
            status, error = 400, "no_text"
        else:
            status, error = 200, ""
        body: Body = {"ok": True} if status == 200 else {"ok": False, "error": error}
        self.calls.append(Call(RESPONSE_URL_METHOD, params, None, request.path, received_at, status, body))
        return web.Response(text="ok" if status == 200 else error, status=status, headers=headers)

    # --- Socket Mode ---------------------------------------------------------------------------

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        live = self._started
        if not live.api.ticket_issued(request.query.get("ticket", "")):
            raise web.HTTPUnauthorized(text="unknown ticket; call apps.connections.open first")
        # autoping answers the SDK's pings (it reconnects when pongs stop); the short timeout
        # bounds how long closing waits for the client's close frame.
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)
        await ws.prepare(request)
        self._open.add(ws)
        try:
            self._connections += 1
            serial = self._connections
            if len(self._active) >= MAX_CONNECTIONS:
                # Slack's answer to an app's eleventh connection: a disconnect, then the socket closes.
                await ws.send_str(json.dumps(payloads.disconnect("too_many_websockets", len(self._active))))
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many websockets")
                return ws
            # hello goes out before the socket can receive envelopes, as on Slack.
            await ws.send_str(json.dumps(payloads.hello(num_connections=len(self._active) + 1)))
            async with live.sockets_changed:
                self._active.append((serial, ws))
                live.sockets_changed.notify_all()
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive_ack(message.data)
        finally:
            self._open.discard(ws)
            async with live.sockets_changed:
                self._active = [(n, s) for n, s in self._active if s is not ws]
                live.sockets_changed.notify_all()
        return ws

    def _receive_ack(self, data: str) -> None:
        received_at = time.perf_counter()
        try:
            ack = json.loads(data)
            envelope_id = ack["envelope_id"]
        except (ValueError, KeyError, TypeError):
            log.warning("stand-in ignored a Socket Mode message that is not an ack: %.200s", data)
            return
        pending = self._pending.get(envelope_id)
        if pending is None or pending.future.done():
            log.warning("stand-in got an ack for an unknown or already acked envelope %s", envelope_id)
            return
        latency_s = received_at - pending.sent_at
        pending.future.set_result(Ack(envelope_id, ack.get("payload"), latency_s, pending.envelope, pending.connection))

    async def wait_connected(self, timeout: float) -> int:
        """Wait until a client holds a socket that got its hello and was not sent a disconnect.

        Returns:
            The serial number of the newest such connection (1 for the first ever).

        Raises:
            StandinTimeoutError: No client connected within `timeout` seconds.
        """
        sockets_changed = self._started.sockets_changed
        async with sockets_changed:
            try:
                await asyncio.wait_for(sockets_changed.wait_for(lambda: bool(self._active)), timeout)
            except asyncio.TimeoutError:
                raise StandinTimeoutError(
                    f"waited {timeout} s for a Socket Mode client to connect "
                    f"(apps.connections.open calls so far: {len(self.calls.snapshot('apps.connections.open'))})"
                ) from None
            return self._active[-1][0]

    async def wait_live(self, count: int, timeout: float) -> list[int]:
        """Wait until exactly `count` sockets are live (connected, hello sent, no disconnect sent, not closed).

        Returns:
            Their connection serial numbers, oldest first.

        Raises:
            StandinTimeoutError: The number of live sockets was not `count` within `timeout` seconds.
        """
        sockets_changed = self._started.sockets_changed
        async with sockets_changed:
            try:
                await asyncio.wait_for(sockets_changed.wait_for(lambda: len(self._active) == count), timeout)
            except asyncio.TimeoutError:
                raise StandinTimeoutError(
                    f"waited {timeout} s for {count} live Socket Mode connections; there are {len(self._active)}"
                ) from None
            return [serial for serial, _ in self._active]

    async def push(self, envelopes: Sequence[Body], timeout: float) -> list[Ack]:
        """Send envelopes back to back, each on one live socket picked at random, and wait for all their acks.

        As on Slack, which hands each envelope to one random live connection of the app: with several
        daemons connected, any of them may get any envelope.

        Args:
            envelopes: Envelopes from `payloads.envelope`, each with a fresh `envelope_id`.
            timeout: Seconds for everything: waiting for a client, sending, and all acks.

        Returns:
            The acks, in the order of `envelopes`.

        Raises:
            StandinTimeoutError: No client connected, or some acks did not arrive, in time.
            StandinError: The socket closed while sending, or the stand-in stopped.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.wait_connected(timeout)
        batch = [
            _PendingAck(envelope, loop.create_future(), *self._chooser.choice(self._active)) for envelope in envelopes
        ]
        for pending in batch:
            self._pending[pending.envelope["envelope_id"]] = pending
        try:
            for pending in batch:
                pending.sent_at = time.perf_counter()
                try:
                    await pending.socket.send_str(json.dumps(pending.envelope))
                except ConnectionError as error:
                    # The client closed the socket between our check and the send.
                    raise StandinError(
                        f"the Socket Mode socket closed while sending {pending.envelope['type']} "
                        f"envelope {pending.envelope['envelope_id']}"
                    ) from error
            gathered = asyncio.gather(*(pending.future for pending in batch))
            return list(await asyncio.wait_for(gathered, max(0.0, deadline - loop.time())))
        except asyncio.TimeoutError:
            missing = [p.envelope for p in batch if not p.future.done() or p.future.cancelled()]
            described = ", ".join(f"{e['type']} {e['envelope_id']}" for e in missing[:5])
            raise StandinTimeoutError(
                f"waited {timeout} s for acks of {len(batch)} envelope(s); "
                f"{len(missing)} never came: {described}{' ...' if len(missing) > 5 else ''}"
            ) from None
        finally:
            for pending in batch:
                self._pending.pop(pending.envelope["envelope_id"], None)

    async def disconnect(self, reason: str) -> None:
        """Send a `disconnect` message on every socket and route no more envelopes to them.

        The sockets stay open, as on Slack: the client opens a new one and closes the old.
        """
        async with self._started.sockets_changed:
            retiring, self._active = self._active, []
        for _, ws in retiring:
            await ws.send_str(json.dumps(payloads.disconnect(reason)))

    async def drop_connections(self) -> None:
        """Close every socket without warning, as a network failure or a Slack restart would."""
        await self._close_sockets()

    async def _close_sockets(self) -> None:
        async with self._started.sockets_changed:
            self._active = []
        for ws in list(self._open):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in closed the connection")


def _bearer_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _read_body(request: web.Request) -> Body:
    # Parsed by hand: slack_sdk's sync client sends a form body even with GET (users.info),
    # which aiohttp's request.post() ignores.
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type == "application/json":
        try:
            decoded = json.loads(raw)
        except ValueError:
            raise web.HTTPBadRequest(text="invalid_json") from None
        return decoded if isinstance(decoded, dict) else {}
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
