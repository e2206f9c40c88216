"""The listening socket of ``rollcall serve``: a header deadline and a connection limit
in front of aiohttp's protocol.

aiohttp reads request headers for as long as a client cares to send them, so an
idle connection or one that trickles its headers is held forever. Here:

* a connection must have sent a request's complete headers within
  ``header_timeout_s`` of opening, or of the previous answer on a kept-alive
  connection; otherwise it is closed (a request being handled is never cut);
* at most ``max_connections`` connections are held; one more is answered
  ``503`` and closed at once.

The body of a request has its own deadline where it is read
(:func:`rollcall.http_input.read_body`, ``body_timeout_s``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from rollcall.config import Config

log = logging.getLogger(__name__)

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 21\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
    b"too many connections\n"
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What a client of the server may hold: time to send its headers, connections."""

    header_timeout_s: float
    max_connections: int


def http_limits(config: Config) -> HttpLimits:
    """The ``[server]`` limits the listener enforces (bodies: ``body_timeout_s``, where read)."""
    s = config.server
    return HttpLimits(header_timeout_s=s.header_timeout_s, max_connections=s.max_connections)


class _Refused(asyncio.Protocol):
    """A connection over the limit: answered 503 and closed without reading."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(REFUSAL)  # type: ignore[attr-defined]
        transport.close()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the header deadline around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.active = 0  # requests being handled
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        """Start the header deadline (connection opened, or an answer was given)."""
        self.disarm()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.guard.limits.header_timeout_s, self.expire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def expire(self) -> None:
        self.timer = None
        transport = self.transport
        if self.active or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():  # still sending the last answer
            self.arm()
            return
        log.info(
            "connection closed: no complete request headers in time",
            extra={
                "remote": _peer(transport),
                "header_timeout_s": self.guard.limits.header_timeout_s,
            },
        )
        transport.abort()

    # asyncio.Protocol, passed on to aiohttp
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.guard.opened(self)
        self.arm()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.guard.closed(self)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class ConnectionGuard:
    """The connections of one server: :meth:`protocol_factory` for ``loop.create_server``
    and :attr:`middleware` for the app (it tells the guard when a request is handled)."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}
        self._pending = 0  # protocols created whose connection_made is still to come
        self._refusing = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_factory(
        self, make_protocol: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory (``AppRunner.server``)."""

        def factory() -> asyncio.Protocol:
            if len(self._open) + self._pending >= self.limits.max_connections:
                if not self._refusing:
                    log.warning(
                        "connection limit reached: new connections are answered 503",
                        extra={"max_connections": self.limits.max_connections},
                    )
                self._refusing = True
                return _Refused()
            self._refusing = False
            self._pending += 1
            # asyncio calls connection_made soon after: counted in _open from then on
            asyncio.get_running_loop().call_soon(self._created)
            return _Guarded(self, make_protocol())

        return factory

    def _created(self) -> None:
        self._pending -= 1

    def opened(self, conn: _Guarded) -> None:
        if conn.transport is not None:
            self._open[conn.transport] = conn

    def closed(self, conn: _Guarded) -> None:
        if conn.transport is not None:
            self._open.pop(conn.transport, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Headers are in: no deadline while the request is handled, a new one after."""
        conn = self._open.get(request.transport) if request.transport else None
        if conn is None:
            return await handler(request)
        conn.active += 1
        conn.disarm()
        try:
            return await handler(request)
        finally:
            conn.active -= 1
            if not conn.active:
                conn.arm()


async def start_listener(
    runner: web.AppRunner, guard: ConnectionGuard, host: str, port: int
) -> asyncio.Server:
    """Listen on ``host:port`` with aiohttp's protocol behind ``guard``."""
    if runner.server is None:
        raise RuntimeError("the app runner is not set up")
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        guard.protocol_factory(runner.server), host, port, reuse_address=True
    )
