"""The WebSocket event subscription client against a fake Zoom endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rollcall.bot.event_subscription import (
    backoff_delay,
    run_event_subscription,
    safe_url,
    subscription_url,
)
from rollcall.bot.events import ZoomEvent, event_keys
from tests.fakezoom.events import FakeEventServer, recording_completed, ws_message

SUB = "sub-abc123"
UUID = "wsUUID/+meeting=="
pytestmark = pytest.mark.timeout(30)


class Tokens:
    """An async token source that hands out a new token on every call."""

    def __init__(self) -> None:
        self.calls = 0
        self.invalidated: list[str] = []

    async def __call__(self) -> str:
        self.calls += 1
        return f"token-{self.calls}"

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)


class Sink:
    def __init__(self) -> None:
        self.events: list[ZoomEvent] = []
        self.arrived = asyncio.Event()

    async def __call__(self, event: ZoomEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    async def wait(self, count: int, timeout: float = 5.0) -> None:
        async def enough() -> None:
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def start_client(server: FakeEventServer, tokens: Any, sink: Sink, **options: Any):
    stop = asyncio.Event()
    options = {"heartbeat_s": 0.2, "backoff_s": 0.05, "max_backoff_s": 0.2, **options}
    task = asyncio.create_task(
        run_event_subscription(server.url, SUB, tokens, sink, stop=stop, **options)
    )
    return stop, task


def test_connects_beats_receives_reconnects_with_a_new_token_and_stops() -> None:
    tokens, sink = Tokens(), Sink()

    async def scenario() -> FakeEventServer:
        async with FakeEventServer(SUB) as server:
            stop, task = start_client(server, tokens, sink)
            await server.wait_until(lambda: len(server.connections) == 1)
            [first] = server.attempts
            assert (first.path, first.subscription_id, first.access_token, first.status) == (
                "/ws",
                SUB,
                "token-1",
                101,
            )
            await server.wait_until(lambda: server.heartbeats >= 2, timeout=2)
            assert {"module": "heartbeat"} in server.received

            body = recording_completed(UUID, 123, download_token="ws-dl-token")
            assert await server.push(body) == 1
            await sink.wait(1)

            assert await server.drop() == 1  # Zoom closes the connection
            await server.wait_until(lambda: len(server.accepted_tokens) == 2)
            await server.wait_until(lambda: len(server.connections) == 1)
            assert server.accepted_tokens == ["token-1", "token-2"]
            assert tokens.calls == 2
            await server.push(body)
            await sink.wait(2)

            stop.set()
            await asyncio.wait_for(task, 2)
            await server.wait_until(lambda: not server.connections)
            return server

    server = run(scenario())
    first, second = sink.events
    assert first.source == "websocket" and first.event == "recording.completed"
    assert first.download_token == "ws-dl-token"
    assert event_keys(first) == event_keys(second) == (f"{UUID}:file-1",)
    assert len(server.attempts) == 2


def test_reconnects_after_the_connection_is_cut() -> None:
    tokens, sink = Tokens(), Sink()

    async def scenario() -> None:
        async with FakeEventServer(SUB) as server:
            stop, task = start_client(server, tokens, sink)
            await server.wait_until(lambda: len(server.connections) == 1)
            await server.drop(abort=True)  # no close frame, TCP just goes away
            await server.wait_until(lambda: server.accepted_tokens == ["token-1", "token-2"])
            await server.wait_until(lambda: len(server.connections) == 1)
            await server.push(recording_completed(UUID, 1))
            await sink.wait(1)
            stop.set()
            await asyncio.wait_for(task, 2)

    run(scenario())


def test_refused_token_is_invalidated_and_replaced() -> None:
    tokens, sink = Tokens(), Sink()

    async def scenario() -> list[int]:
        server = FakeEventServer(SUB, tokens=lambda t: t != "token-1")
        async with server:
            stop, task = start_client(server, tokens, sink, invalidate_token=tokens.invalidate)
            await server.wait_until(lambda: len(server.connections) == 1)
            stop.set()
            await asyncio.wait_for(task, 2)
            return [a.status for a in server.attempts]

    assert run(scenario()) == [401, 101]
    assert tokens.invalidated == ["token-1"]


def test_sync_token_getter_and_wrong_subscription() -> None:
    sink = Sink()
    calls: list[int] = []

    def get_token() -> str:  # e.g. TokenProvider.token, which may block: run in a thread
        calls.append(1)
        return "sync-token"

    async def scenario() -> list[int]:
        async with FakeEventServer("another-subscription") as server:
            stop, task = start_client(server, get_token, sink)
            await server.wait_until(lambda: len(server.attempts) >= 3)
            stop.set()
            await asyncio.wait_for(task, 2)
            return [a.status for a in server.attempts]

    statuses = run(scenario())
    assert set(statuses) == {403}
    assert len(calls) == len(statuses)


def test_silent_server_is_left_and_malformed_messages_are_skipped() -> None:
    tokens, sink = Tokens(), Sink()

    async def scenario() -> None:
        async with FakeEventServer(SUB, answer_heartbeats=False) as server:
            stop, task = start_client(server, tokens, sink, heartbeat_s=0.1)
            await server.wait_until(lambda: len(server.connections) == 1)
            for junk in (
                "not json",
                "[]",
                '{"module": "message", "content": "{broken"}',
                '{"module": "message", "content": "{\\"event\\": \\"x\\"}"}',
                '{"module": "build_connection", "success": true}',
            ):
                await server.push_raw(junk)
            await server.push_raw(ws_message(recording_completed(UUID, 5)))
            await sink.wait(1)
            # no heartbeat answers and nothing else: the client gives up on it and reconnects
            await server.wait_until(lambda: len(server.accepted_tokens) >= 2, timeout=3)
            stop.set()
            await asyncio.wait_for(task, 2)

    run(scenario())
    assert [e.event for e in sink.events] == ["recording.completed"]


def test_cancelling_ends_it_cleanly() -> None:
    tokens, sink = Tokens(), Sink()

    async def scenario() -> None:
        async with FakeEventServer(SUB) as server:
            _, task = start_client(server, tokens, sink)
            await server.wait_until(lambda: len(server.connections) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await server.wait_until(lambda: not server.connections)

    run(scenario())


def test_no_token_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens, sink = Tokens(), Sink()

    async def scenario() -> None:
        server = FakeEventServer(SUB, tokens=lambda t: t != "token-1")
        async with server:
            stop, task = start_client(server, tokens, sink)
            await server.wait_until(lambda: len(server.connections) == 1)
            await server.drop()
            await server.wait_until(lambda: len(server.accepted_tokens) == 2)
            stop.set()
            await asyncio.wait_for(task, 2)

    run(scenario())
    ours = [r for r in caplog.records if not r.name.startswith("tests.fakezoom")]
    logged = "\n".join(str(vars(r)) + r.getMessage() for r in ours)
    assert "websocket connected" in logged
    assert "token-" not in logged


def test_urls_and_backoff() -> None:
    url = subscription_url("wss://ws.zoom.us/ws", "sub 1", "a+b/c")
    assert url == "wss://ws.zoom.us/ws?subscriptionId=sub+1&access_token=a%2Bb%2Fc"
    assert (
        subscription_url("wss://h/ws?x=1", "s", "t")
        == "wss://h/ws?x=1&subscriptionId=s&access_token=t"
    )
    assert safe_url(url) == "wss://ws.zoom.us/ws"
    assert [backoff_delay(n, 1, 60, rng=lambda: 1.0) for n in range(8)] == [
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
    ]
    assert backoff_delay(3, 1, 60, rng=lambda: 0.0) == 4  # jitter: half to all of it
    assert backoff_delay(10_000, 1, 60, rng=lambda: 1.0) == 60
