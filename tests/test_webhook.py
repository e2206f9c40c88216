"""``POST /zoom/webhook`` against Zoom's published rules, on a real 127.0.0.1 server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from rollcall.bot.events import (
    EventError,
    ZoomEvent,
    event_key,
    event_keys,
    meeting_uuid,
    parse_event,
    recording_files,
)
from rollcall.bot.webhook import DISABLED_MESSAGE, webhook_routes
from tests.fakezoom.events import (
    WebhookSender,
    encode_body,
    encrypted_token,
    meeting_ended,
    recording_completed,
    recording_deleted,
    recording_file,
    recording_trashed,
    sign,
    url_validation,
)

SECRET = "s3cret-webhook-token"
UUID = "4444AAAiAAAAAiAiAiiAii=="
MAX_BODY = 16 * 1024
pytestmark = pytest.mark.timeout(30)


class RecordingSink:
    """Collects events; can be told to be slow or to fail."""

    def __init__(self, *, delay_s: float = 0.0, fail: bool = False) -> None:
        self.events: list[ZoomEvent] = []
        self.delay_s = delay_s
        self.fail = fail

    async def __call__(self, event: ZoomEvent) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("database is locked")
        self.events.append(event)


@contextlib.asynccontextmanager
async def webhook_server(
    sink: RecordingSink, secret: Any = SECRET, **options: Any
) -> AsyncIterator[str]:
    app = web.Application()
    options.setdefault("max_body_bytes", MAX_BODY)
    app.add_routes(webhook_routes(secret, sink, **options))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/zoom/webhook"
    finally:
        await runner.cleanup()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def completed(**kwargs: Any) -> dict[str, Any]:
    return recording_completed(UUID, 85012345678, "Biology 101", "teacher@example.edu", **kwargs)


# ---------------------------------------------------------------- the endpoint


def test_url_validation_is_answered_when_signed() -> None:
    sink = RecordingSink()

    async def scenario() -> None:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            answer = await zoom.send(url_validation("qgg8vlvZRS6UYooatFL8Aw"))
            assert answer.status == 200
            assert answer.json() == {
                "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                "encryptedToken": encrypted_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw"),
            }
            forged = await zoom.send(url_validation("abc"), secret="not-the-secret")
            assert forged.status == 401
            unsigned = await zoom.send(url_validation("abc"), signed=False)
            assert unsigned.status == 401
            empty = await zoom.send({"event": "endpoint.url_validation", "payload": {}})
            assert empty.status == 400

    run(scenario())
    assert sink.events == []


def test_recording_completed_reaches_the_sink_quickly() -> None:
    sink = RecordingSink()
    files = [
        recording_file("file-video", UUID),
        recording_file("file-audio", UUID, file_type="M4A", recording_type="audio_only"),
    ]

    async def scenario() -> float:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            answer = await zoom.send(completed(files=files, download_token="dl-token-123"))
            assert answer.status == 200, answer.text
            return answer.elapsed_s

    elapsed = run(scenario())
    assert elapsed < 0.5  # Zoom gives up after 3 s
    [event] = sink.events
    assert event.event == "recording.completed"
    assert event.source == "webhook"
    assert event.download_token == "dl-token-123"
    assert meeting_uuid(event) == UUID
    assert [f["id"] for f in recording_files(event)] == ["file-video", "file-audio"]
    assert event_keys(event) == (f"{UUID}:file-video", f"{UUID}:file-audio")
    assert "dl-token-123" not in repr(event)


def test_unauthentic_deliveries_are_refused_without_effect() -> None:
    sink = RecordingSink()
    body = completed()

    async def scenario() -> None:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            refused = {
                "wrong secret": await zoom.send(body, secret="guess"),
                "stale": await zoom.send(body, age_s=301),
                "future": await zoom.send(body, age_s=-301),
                "no headers": await zoom.send(body, signed=False),
                "no signature": await zoom.send(
                    body, signed=False, headers={"x-zm-request-timestamp": "1700000000"}
                ),
                "bad signature": await zoom.send(body, headers={"x-zm-signature": "v0=00ff"}),
                "not hex": await zoom.send(body, headers={"x-zm-signature": "v0=zzé"}),
                "bad timestamp": await zoom.send(body, timestamp="yesterday"),
                "other body": await zoom.send(
                    body,
                    headers=sign(SECRET, int(zoom.clock()), encode_body(meeting_ended(UUID, 1))),
                ),
            }
            for case, answer in refused.items():
                assert answer.status == 401, case
            assert sink.events == []
            # the server is unharmed and the real delivery still works
            ok = await zoom.send(body)
            assert ok.status == 200

    run(scenario())
    assert len(sink.events) == 1


def test_replay_window_is_300_seconds_either_way() -> None:
    sink = RecordingSink()
    now = 1_700_000_000

    async def scenario() -> list[int]:
        async with (
            webhook_server(sink, clock=lambda: now) as url,
            WebhookSender(url, SECRET, clock=lambda: now) as zoom,
        ):
            return [
                (await zoom.send(completed(), timestamp=now + skew)).status
                for skew in (-300, 300, -302, 302)
            ]

    assert run(scenario()) == [200, 200, 401, 401]
    assert len(sink.events) == 2


def test_oversized_bodies_are_refused_with_413() -> None:
    sink = RecordingSink()
    big = completed(files=[recording_file(f"file-{i}", UUID) for i in range(200)])
    raw = encode_body(big)
    assert len(raw) > MAX_BODY

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    async def scenario() -> None:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            assert (await zoom.send(big)).status == 413  # Content-Length says so
            async with aiohttp.ClientSession() as session:  # chunked: no Content-Length
                headers = sign(SECRET, int(zoom.clock()), raw)
                async with session.post(url, data=chunks(), headers=headers) as answer:
                    assert answer.status == 413
                    assert answer.headers.get("Content-Length") is not None
            assert (await zoom.send(completed())).status == 200

    run(scenario())
    assert len(sink.events) == 1


def test_signed_but_malformed_bodies_are_400() -> None:
    sink = RecordingSink()

    async def scenario() -> None:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b'{"event": "x"}', b""):
                answer = await zoom.send(raw)
                assert answer.status == 400, raw
            assert (await zoom.send(completed())).status == 200

    run(scenario())
    assert len(sink.events) == 1


def test_retried_delivery_reaches_the_sink_each_time_with_one_key() -> None:
    sink = RecordingSink()
    body = completed()

    async def scenario() -> list[int]:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            return [d.status for d in await zoom.deliver(body, times=3)]

    assert run(scenario()) == [200, 200, 200]
    assert len(sink.events) == 3
    assert {event_keys(e) for e in sink.events} == {(f"{UUID}:file-1",)}


def test_sink_failure_or_timeout_answers_500_so_zoom_retries() -> None:
    async def scenario(sink: RecordingSink) -> tuple[int, float]:
        async with (
            webhook_server(sink, sink_timeout_s=0.2) as url,
            WebhookSender(url, SECRET) as zoom,
        ):
            answer = await zoom.send(completed())
            return answer.status, answer.elapsed_s

    status, _ = run(scenario(RecordingSink(fail=True)))
    assert status == 500
    status, elapsed = run(scenario(RecordingSink(delay_s=5)))
    assert status == 500
    assert elapsed < 2


@pytest.mark.parametrize("secret", ["", SecretStr("")])
def test_disabled_without_a_secret(secret: Any) -> None:
    sink = RecordingSink()

    async def scenario() -> tuple[int, str]:
        async with webhook_server(sink, secret=secret) as url, WebhookSender(url, "") as zoom:
            answer = await zoom.send(completed())
            return answer.status, answer.text

    assert run(scenario()) == (503, DISABLED_MESSAGE)
    assert sink.events == []


def test_secret_str_is_accepted() -> None:
    sink = RecordingSink()

    async def scenario() -> int:
        async with (
            webhook_server(sink, secret=SecretStr(SECRET)) as url,
            WebhookSender(url, SECRET) as zoom,
        ):
            return (await zoom.send(completed())).status

    assert run(scenario()) == 200


def test_no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    body = completed(download_token="dl-token-xyz")
    caplog.set_level(logging.DEBUG)

    async def scenario() -> list[str]:
        async with webhook_server(sink) as url, WebhookSender(url, SECRET) as zoom:
            await zoom.send(body)
            await zoom.send(body, secret="wrong")
            await zoom.send(url_validation("plain"))
            return [sign(SECRET, int(zoom.clock()), encode_body(body))["x-zm-signature"]]

    signatures = run(scenario())
    logged = "\n".join(str(vars(r)) + r.getMessage() for r in caplog.records)
    assert "webhook event received" in logged
    for secret in (SECRET, "dl-token-xyz", encrypted_token(SECRET, "plain"), *signatures):
        assert secret not in logged


# ---------------------------------------------------------------- events


def test_parse_event_checks_the_shape() -> None:
    good = completed()
    assert parse_event(good, "poll").source == "poll"
    bad_bodies = [
        [],
        {},
        {"event": "", "event_ts": 1, "payload": {}},
        {"event": "x", "event_ts": "1", "payload": {}},
        {"event": "x", "event_ts": True, "payload": {}},
        {"event": "x", "event_ts": 1},
        {"event": "x", "event_ts": 1, "payload": {"object": []}},
        {"event": "x", "event_ts": 1, "payload": {"object": {"recording_files": {}}}},
        {"event": "x", "event_ts": 1, "payload": {"object": {"recording_files": [1]}}},
        {**good, "download_token": 5},
    ]
    for body in bad_bodies:
        with pytest.raises(EventError):
            parse_event(body, "webhook")
    with pytest.raises(EventError):
        parse_event(good, "email")  # type: ignore[arg-type]


def test_keys_name_the_file_across_event_kinds_and_paths() -> None:
    files = [recording_file("f1", UUID), recording_file("f2", UUID)]
    done = parse_event(completed(files=files), "webhook")
    polled = parse_event(completed(files=files, download_token=None), "poll")
    trashed = parse_event(recording_trashed(UUID, 1, files=files), "websocket")
    deleted = parse_event(recording_deleted(UUID, 1, files=files), "webhook")
    ended = parse_event(meeting_ended(UUID, 1), "webhook")
    assert event_keys(done) == event_keys(polled) == (f"{UUID}:f1", f"{UUID}:f2")
    assert event_keys(trashed) == event_keys(deleted) == event_keys(done)
    assert [event_key(done, f) for f in recording_files(done)] == list(event_keys(done))
    assert polled.download_token is None
    assert event_keys(ended) == () and recording_files(ended) == []


# ---------------------------------------------------------------- hostile input


def nested(depth: int) -> bytes:
    """A signed-looking event whose payload holds arrays nested ``depth`` deep."""
    inner = "[" * depth + "]" * depth
    return (
        '{"event":"recording.completed","event_ts":1,"payload":{"object":{"uuid":"u","x":'
        + inner
        + "}}}"
    ).encode()


def test_deeply_nested_json_is_400_not_500() -> None:
    """Zoom retries a 500 for days; a body the parser cannot take is the sender's fault."""
    sink = RecordingSink()

    async def scenario() -> list[int]:
        async with (
            webhook_server(sink, max_body_bytes=1_000_000) as url,
            WebhookSender(url, SECRET) as zoom,
        ):
            return [(await zoom.send(nested(depth))).status for depth in (100_000, 5_000, 40)]

    assert run(scenario()) == [400, 400, 400]
    assert sink.events == []


@pytest.mark.parametrize(
    "meeting_id", ["abc", "12345678901234567890", 12345678901234567890, 2**64, -1, 1.5, [1]]
)
def test_meeting_ids_that_are_not_numbers_or_too_large_are_400(tmp_path, meeting_id) -> None:
    """Through the service's own sink: such an id used to end in a 500 (ValueError, or
    SQLite's 'Python int too large') and Zoom retried it."""
    from rollcall.bot.intake import Intake
    from rollcall.config import load_config
    from rollcall.store import jobs, storage

    intake = Intake(load_config(None, {"ROLLCALL_HOME": str(tmp_path)}))
    body = completed()
    body["payload"]["object"]["id"] = meeting_id

    async def scenario() -> tuple[int, str]:
        async with webhook_server(intake) as url, WebhookSender(url, SECRET) as zoom:
            answer = await zoom.send(body)
            return answer.status, answer.text

    status, text = run(scenario())
    assert status == 400 and "payload.object.id" in text, text
    assert jobs.list_jobs(storage.open_db(tmp_path), None, 10) == []


def test_largest_meeting_id_and_numeric_strings_are_accepted(tmp_path) -> None:
    from rollcall.bot.intake import Intake
    from rollcall.config import load_config
    from rollcall.store import jobs, storage

    intake = Intake(load_config(None, {"ROLLCALL_HOME": str(tmp_path)}))
    first, second = completed(), recording_completed("other-uuid==", 1)
    first["payload"]["object"]["id"] = 2**63 - 1
    second["payload"]["object"]["id"] = "85012345678"

    async def scenario() -> list[int]:
        async with webhook_server(intake) as url, WebhookSender(url, SECRET) as zoom:
            return [(await zoom.send(body)).status for body in (first, second)]

    assert run(scenario()) == [200, 200]
    found = jobs.list_jobs(storage.open_db(tmp_path), None, 10)
    assert sorted(j.zoom_meeting_id for j in found) == [85012345678, 2**63 - 1]


def test_trickled_body_is_cut_off_with_408() -> None:
    """Headers in, then one byte of the body per 0.2 s: answered 408 after body_timeout_s."""
    sink = RecordingSink()

    async def scenario() -> tuple[bytes, float]:
        async with webhook_server(sink, body_timeout_s=0.5) as url:
            port = int(url.split(":")[2].split("/")[0])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            writer.write(
                b"POST /zoom/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
            )
            answer = b""
            for _ in range(50):  # at most 10 s
                writer.write(b"{")
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                try:
                    answer = await asyncio.wait_for(reader.readline(), 0.2)
                except TimeoutError:
                    continue
                break
            elapsed = time.monotonic() - started
            writer.close()
            await asyncio.sleep(0.3)  # the server sees the close before it shuts down
            return answer, elapsed

    answer, elapsed = run(scenario())
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed < 3.0
    assert sink.events == []
