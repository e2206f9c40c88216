"""Zoom's side of event delivery, for tests: signed webhooks and a WebSocket event server.

Written from Zoom's published behaviour, independently of ``rollcall.bot.webhook``:

* :func:`sign` — the ``x-zm-request-timestamp`` / ``x-zm-signature`` headers
  (``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{raw body}``);
* :class:`WebhookSender` — posts deliveries like Zoom does (optionally with a
  wrong secret, a stale or future timestamp, no headers, or retried N times);
* event body builders (``recording.completed``, ``recording.trashed``,
  ``recording.deleted``, ``meeting.ended``, ``endpoint.url_validation``);
* :class:`FakeEventServer` — a WebSocket event subscription endpoint on
  127.0.0.1 that checks ``subscriptionId`` and ``access_token``, answers
  heartbeats, pushes events and drops connections on demand.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

# ---------------------------------------------------------------- signing


def sign(secret: str, timestamp: int | str, body: bytes | str) -> dict[str, str]:
    """The headers Zoom sends with ``body`` at ``timestamp`` (seconds)."""
    raw = body.encode() if isinstance(body, str) else body
    ts = str(timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + raw, hashlib.sha256)
    return {"x-zm-request-timestamp": ts, "x-zm-signature": "v0=" + digest.hexdigest()}


def encrypted_token(secret: str, plain_token: str) -> str:
    """What Zoom expects back for an ``endpoint.url_validation`` challenge."""
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def encode_body(body: dict[str, Any] | bytes | str) -> bytes:
    """A body as Zoom sends it: compact JSON; bytes and str are sent unchanged."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- webhook deliveries


@dataclass(frozen=True)
class Delivery:
    """Our endpoint's answer to one delivery."""

    status: int
    text: str
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.text)


class WebhookSender:
    """Posts signed deliveries to a webhook URL, the way Zoom does.

    Use as ``async with WebhookSender(url, secret) as zoom: await zoom.send(body)``.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.clock = clock
        self.timeout_s = timeout_s
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> WebhookSender:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        body: dict[str, Any] | bytes | str,
        *,
        secret: str | None = None,
        age_s: float = 0.0,
        timestamp: int | str | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Delivery:
        """One delivery. ``secret`` overrides the right one (wrong-secret tests),
        ``age_s`` makes the timestamp that many seconds old (negative: in the
        future), ``timestamp`` sets it outright, ``signed=False`` leaves the
        signature headers out, ``headers`` adds or replaces headers."""
        assert self._session is not None, "use WebhookSender as an async context manager"
        raw = encode_body(body)
        ts = timestamp if timestamp is not None else int(self.clock() - age_s)
        all_headers = {"content-type": "application/json; charset=utf-8", "user-agent": "Zoom"}
        if signed:
            all_headers.update(sign(self.secret if secret is None else secret, ts, raw))
        all_headers.update(headers or {})
        started = time.monotonic()
        async with self._session.post(
            self.url,
            data=raw,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
        ) as response:
            text = await response.text()
        return Delivery(response.status, text, time.monotonic() - started)

    async def deliver(
        self, body: dict[str, Any] | bytes | str, times: int = 1, **options: Any
    ) -> list[Delivery]:
        """The same event delivered ``times`` times (Zoom retries when it gets no
        200/204 within 3 s): the body is identical, each attempt is signed anew."""
        return [await self.send(body, **options) for _ in range(times)]


# ---------------------------------------------------------------- event bodies


def now_ms() -> int:
    return int(time.time() * 1000)


def recording_file(
    file_id: str,
    meeting_uuid: str,
    *,
    file_type: str = "MP4",
    recording_type: str = "gallery_view",
    download_url: str | None = None,
    file_size: int = 1_048_576,
    recording_start: str = "2024-03-01T10:00:05Z",
    recording_end: str = "2024-03-01T10:59:55Z",
    status: str = "completed",
) -> dict[str, Any]:
    """One entry of ``payload.object.recording_files``."""
    return {
        "id": file_id,
        "meeting_id": meeting_uuid,
        "recording_start": recording_start,
        "recording_end": recording_end,
        "file_type": file_type,
        "file_extension": file_type if file_type in ("MP4", "M4A") else "TXT",
        "file_size": file_size,
        "play_url": f"https://zoom.us/rec/play/{file_id}",
        "download_url": download_url or f"https://zoom.us/rec/webhook_download/{file_id}",
        "status": status,
        "recording_type": recording_type,
    }


def _meeting_object(
    meeting_uuid: str,
    meeting_id: int,
    topic: str,
    host_email: str,
    *,
    host_id: str,
    account_id: str,
    start_time: str,
    duration: int,
    files: Iterable[dict[str, Any]] | None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "uuid": meeting_uuid,
        "id": meeting_id,
        "account_id": account_id,
        "host_id": host_id,
        "host_email": host_email,
        "topic": topic,
        "type": 8,
        "start_time": start_time,
        "timezone": "UTC",
        "duration": duration,
        "share_url": f"https://zoom.us/rec/share/{meeting_id}",
    }
    if files is not None:
        listed = [{**f, "meeting_id": f.get("meeting_id", meeting_uuid)} for f in files]
        obj["recording_files"] = listed
        obj["recording_count"] = len(listed)
        obj["total_size"] = sum(int(f.get("file_size", 0)) for f in listed)
    return obj


def recording_completed(
    meeting_uuid: str,
    meeting_id: int,
    topic: str = "Biology 101",
    host_email: str = "teacher@example.edu",
    files: Iterable[dict[str, Any]] | None = None,
    download_token: str | None = "fake-download-token",
    *,
    host_id: str = "host-1",
    account_id: str = "account-1",
    start_time: str = "2024-03-01T10:00:00Z",
    duration: int = 60,
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A ``recording.completed`` body; by default one gallery-view MP4 (id ``file-1``)."""
    if files is None:
        files = [recording_file("file-1", meeting_uuid)]
    body: dict[str, Any] = {
        "event": "recording.completed",
        "event_ts": event_ts if event_ts is not None else now_ms(),
        "payload": {
            "account_id": account_id,
            "object": _meeting_object(
                meeting_uuid,
                meeting_id,
                topic,
                host_email,
                host_id=host_id,
                account_id=account_id,
                start_time=start_time,
                duration=duration,
                files=files,
            ),
        },
    }
    if download_token is not None:
        body["download_token"] = download_token
    return body


def _recording_removed(
    event: str,
    meeting_uuid: str,
    meeting_id: int,
    topic: str,
    host_email: str,
    files: Iterable[dict[str, Any]] | None,
    event_ts: int | None,
) -> dict[str, Any]:
    return {
        "event": event,
        "event_ts": event_ts if event_ts is not None else now_ms(),
        "payload": {
            "account_id": "account-1",
            "operator": host_email,
            "operator_id": "host-1",
            "object": _meeting_object(
                meeting_uuid,
                meeting_id,
                topic,
                host_email,
                host_id="host-1",
                account_id="account-1",
                start_time="2024-03-01T10:00:00Z",
                duration=60,
                files=files,
            ),
        },
    }


def recording_trashed(
    meeting_uuid: str,
    meeting_id: int,
    topic: str = "Biology 101",
    host_email: str = "teacher@example.edu",
    files: Iterable[dict[str, Any]] | None = None,
    *,
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A ``recording.trashed`` body (recording moved to the trash)."""
    return _recording_removed(
        "recording.trashed", meeting_uuid, meeting_id, topic, host_email, files, event_ts
    )


def recording_deleted(
    meeting_uuid: str,
    meeting_id: int,
    topic: str = "Biology 101",
    host_email: str = "teacher@example.edu",
    files: Iterable[dict[str, Any]] | None = None,
    *,
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A ``recording.deleted`` body (recording deleted for good)."""
    return _recording_removed(
        "recording.deleted", meeting_uuid, meeting_id, topic, host_email, files, event_ts
    )


def recording_recovered(
    meeting_uuid: str,
    meeting_id: int,
    topic: str = "Biology 101",
    host_email: str = "teacher@example.edu",
    files: Iterable[dict[str, Any]] | None = None,
    *,
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A ``recording.recovered`` body (recording restored from the trash); like Zoom's it
    has the operator and the recording object with its files, and no download token."""
    return _recording_removed(
        "recording.recovered", meeting_uuid, meeting_id, topic, host_email, files, event_ts
    )


def meeting_ended(
    meeting_uuid: str,
    meeting_id: int,
    topic: str = "Biology 101",
    host_id: str = "host-1",
    *,
    start_time: str = "2024-03-01T10:00:00Z",
    end_time: str = "2024-03-01T11:00:00Z",
    event_ts: int | None = None,
) -> dict[str, Any]:
    """A ``meeting.ended`` body."""
    return {
        "event": "meeting.ended",
        "event_ts": event_ts if event_ts is not None else now_ms(),
        "payload": {
            "account_id": "account-1",
            "object": {
                "uuid": meeting_uuid,
                "id": str(meeting_id),
                "host_id": host_id,
                "topic": topic,
                "type": 2,
                "start_time": start_time,
                "end_time": end_time,
                "timezone": "UTC",
                "duration": 60,
            },
        },
    }


def url_validation(plain_token: str, *, event_ts: int | None = None) -> dict[str, Any]:
    """The ``endpoint.url_validation`` challenge Zoom sends to check an endpoint."""
    return {
        "event": "endpoint.url_validation",
        "event_ts": event_ts if event_ts is not None else now_ms(),
        "payload": {"plainToken": plain_token},
    }


def ws_message(body: dict[str, Any]) -> str:
    """An event as Zoom's WebSocket wraps it: the event JSON as a string in ``content``."""
    return json.dumps({"module": "message", "content": json.dumps(body)})


# ---------------------------------------------------------------- WebSocket event server


@dataclass
class ConnectAttempt:
    """One handshake the fake server saw."""

    path: str
    subscription_id: str | None
    access_token: str | None
    status: int  # 101 accepted, else the HTTP status refused with


@dataclass
class FakeEventServer:
    """Zoom's WebSocket event endpoint on 127.0.0.1, for one subscription.

    ``tokens`` decides which access tokens are valid: a collection, a
    predicate, or ``None`` for any non-empty token. Handshakes with a wrong
    path, subscription id or token are refused with 403/401 like Zoom does.
    """

    subscription_id: str
    tokens: Collection[str] | Callable[[str], bool] | None = None
    path: str = "/ws"
    answer_heartbeats: bool = True
    attempts: list[ConnectAttempt] = field(default_factory=list)
    heartbeats: int = 0
    received: list[Any] = field(default_factory=list)  # every message from clients
    connections: set[ServerConnection] = field(default_factory=set)
    _server: Server | None = None
    _changed: asyncio.Condition | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> FakeEventServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self._server = await serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._check,
            ping_interval=None,
            logger=logging.getLogger("tests.fakezoom.ws"),  # Zoom's side: logs tokens
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return next(iter(self._server.sockets)).getsockname()[1]

    @property
    def url(self) -> str:
        """What goes in ``[zoom] websocket_url`` (no query)."""
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def accepted_tokens(self) -> list[str]:
        return [a.access_token or "" for a in self.attempts if a.status == 101]

    def _token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        if self.tokens is None:
            return True
        if callable(self.tokens):
            return bool(self.tokens(token))
        return token in self.tokens

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        sub = (query.get("subscriptionId") or [None])[0]
        token = (query.get("access_token") or [None])[0]
        status = HTTPStatus.SWITCHING_PROTOCOLS
        if parts.path != self.path or sub != self.subscription_id:
            status = HTTPStatus.FORBIDDEN
        elif not self._token_ok(token):
            status = HTTPStatus.UNAUTHORIZED
        self.attempts.append(ConnectAttempt(parts.path, sub, token, int(status)))
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if status != HTTPStatus.SWITCHING_PROTOCOLS:
            return connection.respond(status, f"{status.phrase}\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        self.connections.add(connection)
        await self._notify()
        try:
            async for raw in connection:
                try:
                    message = json.loads(raw)
                except json.JSONDecodeError:
                    message = raw
                self.received.append(message)
                if isinstance(message, dict) and message.get("module") == "heartbeat":
                    self.heartbeats += 1
                    if self.answer_heartbeats:
                        await connection.send(json.dumps({"module": "heartbeat", "success": True}))
                await self._notify()
        except Exception:
            pass  # a dropped client is normal here
        finally:
            self.connections.discard(connection)
            await self._notify()

    async def push(self, body: dict[str, Any]) -> int:
        """Send an event to every connected client; how many got it."""
        return await self.push_raw(ws_message(body))

    async def push_raw(self, text: str) -> int:
        """Send any text frame to every connected client."""
        sent = 0
        for connection in list(self.connections):
            await connection.send(text)
            sent += 1
        return sent

    async def drop(self, *, abort: bool = False, code: int = 1011, reason: str = "") -> int:
        """Close every client connection: a close frame with ``code``, or with
        ``abort=True`` the TCP connection cut with no close frame at all."""
        dropped = 0
        for connection in list(self.connections):
            dropped += 1
            if abort:
                connection.transport.abort()
            else:
                await connection.close(code, reason)
        return dropped

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (checked whenever something happens)."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
