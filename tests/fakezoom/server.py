"""A fake Zoom (OAuth, REST v2, recording downloads) for tests, on 127.0.0.1.

Written from Zoom's published API behaviour: S2S OAuth tokens that expire,
``next_page_token`` paging, the one-month limit of ``/users/{id}/recordings``,
double-encoded meeting uuids, ``download_access_token``, ``Range`` downloads,
expired webhook download tokens (answered with the HTML sign-in page, as Zoom
does once a ``download_token`` is past its 24 hours) and a participants report
that is not ready for some time after the meeting.

The test builds a :class:`FakeZoomState`, starts :class:`FakeZoomServer` (a
background thread with its own event loop, usable from sync and async tests)
and asserts on ``state.requests`` / ``state.calls`` afterwards::

    state = FakeZoomState(accounts=[FakeAccount("acc", "cid", "secret")])
    with FakeZoomServer(state) as zoom:
        zoom.api_base_url, zoom.oauth_url, zoom.download_url("file-1")
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hashlib
import hmac
import itertools
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

FileBehaviour = Literal[
    "normal",
    "html_error_with_200",
    "html_n_times_then_ok",
    "truncated_body",
    "slow_body",
    "fail_n_times_then_ok",
    "redirect",
]


@dataclass
class FakeAccount:
    account_id: str
    client_id: str
    client_secret: str
    scopes: list[str] = field(
        default_factory=lambda: ["recording:read:admin", "report:read:admin", "user:read:admin"]
    )


@dataclass
class FakeUser:
    id: str
    email: str
    first_name: str = "Test"
    last_name: str = "User"
    type: int = 2
    status: str = "active"


@dataclass
class FakeRecordingFile:
    id: str
    recording_type: str = "gallery_view"
    file_type: str = "MP4"
    file_extension: str = "MP4"
    status: str = "completed"
    file_size: int | None = None  # None = the size of the served file (or 0)


@dataclass
class FakeMeeting:
    uuid: str
    id: int
    host_id: str
    topic: str = "Class"
    start_time: datetime = field(default_factory=lambda: datetime(2024, 3, 1, 10, tzinfo=UTC))
    duration: int = 60
    host_email: str = ""
    files: list[FakeRecordingFile] = field(default_factory=list)
    participants: list[dict] = field(default_factory=list)
    download_access_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # the first n participants-report requests get Zoom's "not ready" answer
    participants_not_ready: int = 0


@dataclass
class FakeFile:
    """A file served at ``/rec/download/{file_id}`` and how it misbehaves.

    ``fail_times`` counts the failing responses of ``fail_n_times_then_ok``
    (``fail_status`` 500 or 429 with ``retry_after``), of ``html_n_times_then_ok``
    (an HTML page with status 200 instead of the video) and of ``truncated_body``
    (the body stops after ``truncate_at`` bytes and the connection closes).
    ``redirect`` answers 302 to ``/rec/signed/{id}?sig=...`` on ``redirect_base``
    (another host), which needs no token.
    """

    path: Path
    behaviour: FileBehaviour = "normal"
    content_type: str = "video/mp4"
    fail_times: int = 1
    fail_status: int = 500
    retry_after: float | None = None
    truncate_at: int = 0
    slow_chunk: int = 4096
    slow_delay: float = 0.05
    redirect_base: str | None = None
    support_range: bool = True
    served_failures: int = 0


@dataclass
class Call:
    route: str
    method: str
    path: str  # raw path as received
    query: dict[str, str]
    match: dict[str, str]  # decoded path parameters
    headers: dict[str, str]


@dataclass
class IssuedToken:
    account_id: str
    expires_at: float
    scopes: list[str]


@dataclass
class FakeZoomState:
    """Everything the fake knows; tests configure it and read the counters."""

    accounts: list[FakeAccount] = field(default_factory=list)
    token_lifetime: float = 2.0
    users: list[FakeUser] = field(default_factory=list)
    meetings: list[FakeMeeting] = field(default_factory=list)
    files: dict[str, FakeFile] = field(default_factory=dict)
    max_page_size: int = 300
    recordings_page_size: int | None = None  # force smaller pages than asked
    participants_page_size: int | None = None
    users_page_size: int | None = None
    # download tokens past their lifetime: a download with one gets the sign-in page
    expired_download_tokens: set[str] = field(default_factory=set)
    # Filled by the server
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _fail_next: deque = field(default_factory=deque)
    _page_tokens: dict[str, int] = field(default_factory=dict)

    def fail_next_rest(self, n: int, status: int = 429, retry_after: float | None = 1) -> None:
        """Make the next ``n`` REST (``/v2``) responses fail with ``status``.

        429 responses carry ``Retry-After: retry_after`` when it is not None;
        401 simulates a token revoked mid-run.
        """
        for _ in range(n):
            self._fail_next.append((status, retry_after))

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (the next REST call with one gets 401)."""
        self.tokens.clear()

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]


def _json_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _add_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def decode_meeting_id(raw_segment: str) -> str | None:
    """What Zoom makes of a path segment: one decode by HTTP, a second if still encoded.

    A uuid that starts with ``/`` or contains ``//`` after the first decode was
    not double-encoded: Zoom cannot route it (returns None -> 404).
    """
    once = unquote(raw_segment)
    if "%" in once:  # uuids are base64: a '%' left means it was double-encoded
        return unquote(once)
    if once.startswith("/") or "//" in once:
        return None
    return once


def _raw_segment(request: web.Request, index: int) -> str:
    return request.raw_path.split("?", 1)[0].split("/")[index]


class _App:
    def __init__(self, state: FakeZoomState, secret: bytes) -> None:
        self.state = state
        self.secret = secret
        self.counter = itertools.count(1)

    # -- helpers ------------------------------------------------------------

    def record(self, request: web.Request, route: str, **match: str) -> None:
        self.state.requests[route] += 1
        self.state.calls.append(
            Call(
                route=route,
                method=request.method,
                path=request.raw_path,
                query=dict(request.query),
                match=match,
                headers={
                    k: v for k, v in request.headers.items() if k in ("Range", "Authorization")
                },
            )
        )

    def bearer(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.query.get("access_token", "")

    def check_token(self, request: web.Request) -> web.Response | IssuedToken:
        token = self.bearer(request)
        issued = self.state.tokens.get(token)
        if not token or issued is None:
            return _json_error(401, 124, "Invalid access token.")
        if time.monotonic() >= issued.expires_at:
            return _json_error(401, 124, "Access token is expired.")
        return issued

    def rest_prelude(self, request: web.Request, route: str, **match: str) -> web.Response | None:
        self.record(request, route, **match)
        if self.state._fail_next:
            status, retry_after = self.state._fail_next.popleft()
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            if status == 429:
                headers["X-RateLimit-Type"] = "QPS"
                return _json_error(
                    429, 429, "You have reached the maximum per-second rate.", **headers
                )
            return _json_error(status, status, f"Simulated HTTP {status}", **headers)
        checked = self.check_token(request)
        return checked if isinstance(checked, web.Response) else None

    def page(
        self, request: web.Request, items: list, forced: int | None, key: str, extra: dict
    ) -> web.Response:
        try:
            size = int(request.query.get("page_size", "30"))
        except ValueError:
            return _json_error(400, 300, "Invalid page_size")
        size = max(1, min(size, self.state.max_page_size))
        if forced:
            size = min(size, forced)
        start = 0
        token = request.query.get("next_page_token")
        if token:
            if token not in self.state._page_tokens:
                return _json_error(400, 300, "The next page token is invalid or expired.")
            start = self.state._page_tokens[token]
        chunk = items[start : start + size]
        next_token = ""
        if start + size < len(items):
            next_token = secrets.token_urlsafe(12)
            self.state._page_tokens[next_token] = start + size
        body = {
            "page_size": size,
            "total_records": len(items),
            "next_page_token": next_token,
            key: chunk,
            **extra,
        }
        return web.json_response(body)

    def meeting_json(self, request: web.Request, m: FakeMeeting, *, token: bool) -> dict:
        origin = f"{request.scheme}://{request.host}"
        files = []
        for f in m.files:
            served = self.state.files.get(f.id)
            size = f.file_size
            if size is None:
                size = served.path.stat().st_size if served else 0
            files.append(
                {
                    "id": f.id,
                    "meeting_id": m.uuid,
                    "recording_start": m.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "recording_end": (m.start_time + timedelta(minutes=m.duration)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                    "file_type": f.file_type,
                    "file_extension": f.file_extension,
                    "file_size": size,
                    "play_url": f"{origin}/rec/play/{f.id}",
                    "download_url": f"{origin}/rec/download/{f.id}",
                    "status": f.status,
                    "recording_type": f.recording_type,
                }
            )
        body = {
            "uuid": m.uuid,
            "id": m.id,
            "account_id": "",
            "host_id": m.host_id,
            "host_email": m.host_email,
            "topic": m.topic,
            "type": 2,
            "start_time": m.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timezone": "UTC",
            "duration": m.duration,
            "total_size": sum(f["file_size"] for f in files),
            "recording_count": len(files),
            "recording_files": files,
        }
        if token:
            body["download_access_token"] = m.download_access_token
        return body

    def find_meeting(self, meeting_id: str) -> FakeMeeting | None:
        for m in self.state.meetings:
            if m.uuid == meeting_id:
                return m
        instances = [m for m in self.state.meetings if str(m.id) == meeting_id]
        return max(instances, key=lambda m: m.start_time) if instances else None

    # -- OAuth ------------------------------------------------------------

    async def oauth_token(self, request: web.Request) -> web.Response:
        self.record(request, "oauth")
        if request.query.get("grant_type") != "account_credentials":
            return web.json_response(
                {"reason": "Unsupported grant type", "error": "unsupported_grant_type"}, status=400
            )
        auth = request.headers.get("Authorization", "")
        try:
            client_id, _, client_secret = (
                base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
            )
        except Exception:
            client_id = client_secret = ""
        account = next(
            (
                a
                for a in self.state.accounts
                if hmac.compare_digest(a.client_id, client_id)
                and hmac.compare_digest(a.client_secret, client_secret)
            ),
            None,
        )
        if account is None:
            return web.json_response(
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
                status=401,
            )
        if request.query.get("account_id") != account.account_id:
            return web.json_response(
                {"reason": "Invalid account_id", "error": "invalid_request"}, status=400
            )
        token = f"tok{next(self.counter)}-{secrets.token_urlsafe(16)}"
        self.state.tokens[token] = IssuedToken(
            account.account_id, time.monotonic() + self.state.token_lifetime, list(account.scopes)
        )
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": max(1, round(self.state.token_lifetime)),
                "scope": " ".join(account.scopes),
                "api_url": f"{request.scheme}://{request.host}",
            }
        )

    # -- REST ---------------------------------------------------------------

    async def users(self, request: web.Request) -> web.Response:
        if (failed := self.rest_prelude(request, "users")) is not None:
            return failed
        status = request.query.get("status", "active")
        users = [
            {
                "id": u.id,
                "email": u.email,
                "first_name": u.first_name,
                "last_name": u.last_name,
                "type": u.type,
                "status": u.status,
            }
            for u in self.state.users
            if u.status == status
        ]
        return self.page(request, users, self.state.users_page_size, "users", {"page_count": 1})

    async def recordings(self, request: web.Request) -> web.Response:
        user_id = unquote(_raw_segment(request, 3))
        if (failed := self.rest_prelude(request, "recordings", user_id=user_id)) is not None:
            return failed
        try:
            today = datetime.now(UTC).date()
            start = date.fromisoformat(request.query.get("from", str(today - timedelta(days=1))))
            end = date.fromisoformat(request.query.get("to", str(today)))
        except ValueError:
            return _json_error(400, 300, "Invalid date format, expected yyyy-mm-dd")
        if end < start:
            self.state.violations.append(f"to {end} before from {start}")
            return _json_error(400, 300, "The 'to' date is before the 'from' date")
        if end >= _add_month(start):
            self.state.violations.append(f"range {start}..{end} exceeds one month")
            return _json_error(400, 300, "The date range can not exceed one month")
        user = next((u for u in self.state.users if user_id in (u.id, u.email)), None)
        if user_id == "me" and self.state.users:
            user = self.state.users[0]
        if user is None:
            return _json_error(404, 1001, "User does not exist: " + user_id)
        meetings = [
            self.meeting_json(request, m, token=False)
            for m in sorted(self.state.meetings, key=lambda m: m.start_time, reverse=True)
            if m.host_id == user.id and start <= m.start_time.date() <= end
        ]
        return self.page(
            request,
            meetings,
            self.state.recordings_page_size,
            "meetings",
            {"from": str(start), "to": str(end)},
        )

    async def meeting_recordings(self, request: web.Request) -> web.Response:
        meeting_id = decode_meeting_id(_raw_segment(request, 3))
        if (
            failed := self.rest_prelude(request, "meeting_recordings", meeting_id=str(meeting_id))
        ) is not None:
            return failed
        meeting = self.find_meeting(meeting_id) if meeting_id else None
        if meeting is None or not meeting.files:
            return _json_error(404, 3301, "This recording does not exist.")
        include = "download_access_token" in request.query.get("include_fields", "")
        return web.json_response(self.meeting_json(request, meeting, token=include))

    async def participants(self, request: web.Request) -> web.Response:
        meeting_id = decode_meeting_id(_raw_segment(request, 4))
        if (
            failed := self.rest_prelude(request, "participants", meeting_id=str(meeting_id))
        ) is not None:
            return failed
        meeting = self.find_meeting(meeting_id) if meeting_id else None
        if meeting is None:
            return _json_error(404, 3001, "Meeting does not exist.")
        if meeting.participants_not_ready > 0 and not request.query.get("next_page_token"):
            meeting.participants_not_ready -= 1
            # Zoom answers so until the report of a meeting that just ended is built
            return _json_error(404, 3001, "Meeting does not exist.")
        return self.page(
            request,
            meeting.participants,
            self.state.participants_page_size,
            "participants",
            {"page_count": 1},
        )

    # -- downloads ------------------------------------------------------------

    def download_allowed(self, request: web.Request, file_id: str) -> bool:
        token = self.bearer(request)
        issued = self.state.tokens.get(token)
        if issued is not None and time.monotonic() < issued.expires_at:
            return True
        return any(
            token and m.download_access_token == token and any(f.id == file_id for f in m.files)
            for m in self.state.meetings
        )

    def signature(self, file_id: str) -> str:
        return hmac.new(self.secret, file_id.encode(), hashlib.sha256).hexdigest()[:32]

    async def download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        self.record(request, "download", file_id=file_id)
        served = self.state.files.get(file_id)
        if served is None:
            return _json_error(404, 3301, "This recording does not exist.")
        if self.bearer(request) in self.state.expired_download_tokens:
            return web.Response(  # Zoom sends an expired token to its sign-in page
                text="<html><head><title>Sign In - Zoom</title></head><body>Sign in</body></html>",
                content_type="text/html",
            )
        if not self.download_allowed(request, file_id):
            return web.json_response(
                {"status": False, "errorCode": 401, "errorMessage": "Forbidden"}, status=401
            )
        if served.behaviour == "redirect":
            base = served.redirect_base or f"{request.scheme}://{request.host}"
            raise web.HTTPFound(f"{base}/rec/signed/{file_id}?sig={self.signature(file_id)}")
        return await self.serve(request, served)

    async def signed(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        self.record(request, "signed", file_id=file_id)
        served = self.state.files.get(file_id)
        if served is None or not hmac.compare_digest(
            request.query.get("sig", ""), self.signature(file_id)
        ):
            return web.Response(
                status=403, text="<html>AccessDenied</html>", content_type="text/html"
            )
        return await self.serve(request, served)

    async def serve(self, request: web.Request, served: FakeFile) -> web.StreamResponse:
        behaviour = served.behaviour
        if behaviour == "html_error_with_200":
            return web.Response(
                text="<html><body>Sign in to Zoom</body></html>", content_type="text/html"
            )
        if behaviour == "html_n_times_then_ok" and served.served_failures < served.fail_times:
            served.served_failures += 1
            return web.Response(
                text="<html><body>Something went wrong</body></html>", content_type="text/html"
            )
        if behaviour == "fail_n_times_then_ok" and served.served_failures < served.fail_times:
            served.served_failures += 1
            headers = {}
            if served.retry_after is not None:
                headers["Retry-After"] = str(served.retry_after)
            return _json_error(served.fail_status, served.fail_status, "Simulated", **headers)
        data_size = served.path.stat().st_size
        start = 0
        status = 200
        range_header = request.headers.get("Range")
        if range_header and served.support_range and range_header.startswith("bytes="):
            first = range_header[6:].split("-", 1)[0]
            start = int(first or 0)
            if start >= data_size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{data_size}"})
            status = 206
        resp = web.StreamResponse(status=status)
        resp.content_type = served.content_type
        resp.content_length = data_size - start
        resp.headers["Accept-Ranges"] = "bytes" if served.support_range else "none"
        if status == 206:
            resp.headers["Content-Range"] = f"bytes {start}-{data_size - 1}/{data_size}"
        await resp.prepare(request)
        truncate = behaviour == "truncated_body" and served.served_failures < served.fail_times
        with open(served.path, "rb") as fh:
            fh.seek(start)
            if truncate:
                served.served_failures += 1
                await resp.write(fh.read(max(0, served.truncate_at - start)))
                await asyncio.sleep(0.05)
                if request.transport is not None:
                    request.transport.close()
                return resp
            chunk_size = served.slow_chunk if behaviour == "slow_body" else 64 * 1024
            while chunk := fh.read(chunk_size):
                await resp.write(chunk)
                if behaviour == "slow_body":
                    await asyncio.sleep(served.slow_delay)
        await resp.write_eof()
        return resp


def build_app(state: FakeZoomState) -> web.Application:
    """The aiohttp application for ``state`` (routes as Zoom spells them)."""
    handler = _App(state, secrets.token_bytes(16))
    app = web.Application()
    app.router.add_post("/oauth/token", handler.oauth_token)
    app.router.add_get("/v2/users", handler.users)
    app.router.add_get("/v2/users/{user_id}/recordings", handler.recordings)
    app.router.add_get("/v2/meetings/{meeting_id}/recordings", handler.meeting_recordings)
    app.router.add_get("/v2/report/meetings/{meeting_id}/participants", handler.participants)
    app.router.add_get("/rec/download/{file_id}", handler.download)
    app.router.add_get("/rec/signed/{file_id}", handler.signed)
    return app


class FakeZoomServer:
    """Runs the fake on 127.0.0.1 (random free port) in a thread with its own loop.

    Use as ``with FakeZoomServer(state) as zoom:`` (sync tests, zoomus code) or
    ``async with`` (async tests). ``alt_base_url`` reaches the same server as
    ``localhost`` -- a second host name for redirect and allow-list tests.
    """

    def __init__(self, state: FakeZoomState) -> None:
        self.state = state
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alt_base_url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def oauth_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def download_url(self, file_id: str, *, alt: bool = False) -> str:
        return f"{self.alt_base_url if alt else self.base_url}/rec/download/{file_id}"

    def start(self) -> FakeZoomServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fakezoom", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Zoom did not start within 10 s")
        if errors:
            raise errors[0]
        return self

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeZoomServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def __aenter__(self) -> FakeZoomServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: Any) -> None:
        await asyncio.to_thread(self.stop)
