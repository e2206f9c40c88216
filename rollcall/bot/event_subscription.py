"""Zoom's WebSocket event subscription: events without a public webhook endpoint.

The client connects to ``{websocket_url}?subscriptionId={id}&access_token={token}``
with a fresh OAuth token on every (re)connect, sends ``{"module": "heartbeat"}``
every ``heartbeat_s`` seconds (Zoom answers ``{"module": "heartbeat",
"success": true}``), unwraps ``{"module": "message", "content": "<event JSON>"}``
into :class:`~rollcall.bot.events.ZoomEvent` (source ``"websocket"``) for the sink, and
reconnects with capped, jittered exponential backoff after any drop or error.
It runs until ``stop`` is set or the task is cancelled.

Zoom does not deliver events while the connection is down, so the recording
poller remains the safety net. The access token travels in the URL: the URL is
never logged with its query, and the ``websockets`` library's wire log (which
prints the request line at DEBUG) is kept at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rollcall.bot.events import EventError, EventSink, log_context, parse_event

log = logging.getLogger(__name__)
_wire_log = logging.getLogger(__name__ + ".wire")
_wire_log.setLevel(logging.INFO)  # its DEBUG lines would contain the access token

TokenGetter = Callable[[], str | Awaitable[str]]
HEARTBEAT = json.dumps({"module": "heartbeat"})
DEAD_AFTER_HEARTBEATS = 3  # no message at all for this many intervals: reconnect


def subscription_url(url: str, subscription_id: str, token: str) -> str:
    """The URL to connect to, with ``subscriptionId`` and ``access_token`` in the query."""
    query = urlencode({"subscriptionId": subscription_id, "access_token": token})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def safe_url(url: str) -> str:
    """``url`` without its query, for logs."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): ``base * 2**attempt``,
    capped at ``max_s``, then jittered down to between half and all of it."""
    delay = min(max_s, base_s * (2 ** min(attempt, 30)))
    return delay * (0.5 + 0.5 * rng())


async def _fetch_token(get_token: TokenGetter) -> str:
    """Call ``get_token``: awaited if async, in a worker thread if sync (it may block on HTTP)."""
    if inspect.iscoroutinefunction(get_token):
        token = await get_token()
    else:
        token = await asyncio.to_thread(get_token)
        if inspect.isawaitable(token):
            token = await token
    if not isinstance(token, str) or not token:
        raise RuntimeError("get_token() returned no access token")
    return token


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


async def handle_message(raw: str | bytes, sink: EventSink) -> bool:
    """Act on one message from Zoom; ``True`` if it was a recognised message."""
    try:
        message = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        log.warning("websocket message is not JSON", extra={"bytes": len(raw)})
        return False
    if not isinstance(message, dict):
        log.warning("websocket message is not an object")
        return False
    kind = message.get("module")
    if kind == "heartbeat":
        if message.get("success") is False:
            log.warning("websocket heartbeat refused by Zoom", extra={"reply": message})
        return True
    if kind != "message":
        log.debug("websocket message ignored", extra={"ws_module": str(kind)})
        return True
    content = message.get("content")
    try:
        body = json.loads(content) if isinstance(content, str | bytes) else content
        event = parse_event(body, "websocket")
    except (json.JSONDecodeError, UnicodeDecodeError, EventError) as exc:
        log.warning("websocket event malformed, ignored", extra={"problem": str(exc)})
        return True
    context = log_context(event)
    try:
        await sink(event)
    except Exception:
        # Zoom does not redeliver over WebSocket; the poller will find the recording.
        log.exception("websocket event not recorded: sink failed", extra=context)
        return True
    log.info("websocket event received", extra=context)
    return True


async def _heartbeats(ws: ClientConnection, heartbeat_s: float, last_rx: list[float]) -> None:
    """Send heartbeats until Zoom stops answering anything at all."""
    while True:
        await asyncio.sleep(heartbeat_s)
        if time.monotonic() - last_rx[0] > heartbeat_s * DEAD_AFTER_HEARTBEATS:
            log.warning("websocket silent, reconnecting", extra={"heartbeat_s": heartbeat_s})
            return
        await ws.send(HEARTBEAT)


async def _receive(ws: ClientConnection, sink: EventSink, last_rx: list[float]) -> None:
    with contextlib.suppress(ConnectionClosed):  # a drop ends the session like a close
        async for raw in ws:
            last_rx[0] = time.monotonic()
            await handle_message(raw, sink)


async def _session(
    ws: ClientConnection, sink: EventSink, heartbeat_s: float, stop: asyncio.Event
) -> bool:
    """Serve one connection until it drops, goes silent or ``stop`` is set.

    Returns whether anything was received (a healthy connection resets the backoff).
    """
    last_rx = [time.monotonic()]
    received = asyncio.ensure_future(_receive(ws, sink, last_rx))
    beating = asyncio.ensure_future(_heartbeats(ws, heartbeat_s, last_rx))
    stopping = asyncio.ensure_future(stop.wait())
    tasks = (received, beating, stopping)
    started = last_rx[0]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close()
    for task in (received, beating):
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, ConnectionClosed):
                raise exc  # type: ignore[misc]
    return last_rx[0] > started


async def run_event_subscription(
    url: str,
    subscription_id: str,
    get_token: TokenGetter,
    sink: EventSink,
    *,
    heartbeat_s: float = 30.0,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    stop: asyncio.Event | None = None,
    open_timeout_s: float = 10.0,
    invalidate_token: Callable[[str], object] | None = None,
    rng: Callable[[], float] = random.random,
) -> None:
    """Stay subscribed to Zoom's WebSocket events until ``stop`` is set or cancelled.

    ``get_token`` (async, or sync and then run in a thread, e.g.
    ``TokenProvider.token``) is called before every connection attempt; when
    Zoom refuses the handshake with 401/403, ``invalidate_token(token)`` (e.g.
    ``TokenProvider.invalidate``) is called so the next attempt gets a new
    token rather than the cached one. Every failure (token,
    connect, drop, silence) is logged and followed by a reconnect after
    :func:`backoff_delay`; the backoff resets once a connection has received
    something.
    """
    stop = stop or asyncio.Event()
    where = {"ws_url": safe_url(url), "subscription_id": subscription_id}
    attempt = 0
    while not stop.is_set():
        token = ""
        try:
            token = await _fetch_token(get_token)
            async with connect(
                subscription_url(url, subscription_id, token),
                open_timeout=open_timeout_s,
                ping_interval=None,  # Zoom's own heartbeat keeps the connection alive
                logger=_wire_log,
            ) as ws:
                log.info("websocket connected", extra=where)
                healthy = await _session(ws, sink, heartbeat_s, stop)
            if healthy:
                attempt = 0
            if not stop.is_set():
                log.warning(
                    "websocket closed, reconnecting",
                    extra={**where, "close_code": ws.close_code},
                )
        except asyncio.CancelledError:
            log.info("websocket subscription cancelled", extra=where)
            raise
        except Exception as exc:
            refused = isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403)
            if refused and invalidate_token is not None and token:
                with contextlib.suppress(Exception):
                    invalidate_token(token)
            log.warning(
                "websocket connection failed",
                extra={**where, "error": _redact(f"{type(exc).__name__}: {exc}", token)},
            )
        if stop.is_set():
            break
        delay = backoff_delay(attempt, backoff_s, max_backoff_s, rng)
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    log.info("websocket subscription stopped", extra=where)
