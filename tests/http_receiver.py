"""A real HTTP receiver for chat-webhook tests (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from tests.service_process import free_port

__all__ = ["Receiver", "free_port"]


class Receiver:
    """An aiohttp server on 127.0.0.1 in its own thread; answers 500 ``fail`` times per path."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[str, dict]] = []
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        if sum(1 for p, _ in self.requests if p == request.path) <= self.fail:
            return web.Response(status=500, text="boom")
        return web.Response(status=200, text="ok")

    def __enter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)  # its log would show the URLs
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def url(self, name: str, secret_path: str = "T000/B000/secret") -> str:
        return f"http://127.0.0.1:{self.port}/{name}/{secret_path}"
