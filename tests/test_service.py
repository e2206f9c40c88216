"""`rollcall serve` end to end against the fake Zoom, as a real process.

The fake serves a gallery-view recording rendered by the meeting generator;
the service learns of it by webhook (delivered three times), and by polling,
downloads it, analyses it and stores a matrix that must match the ground truth.
It is killed with SIGKILL in the middle of a download and of an analysis and
must still finish the meeting exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from rollcall.enrollment.enroll import enroll_photos
from rollcall.reports.results import meeting_report
from rollcall.store import jobs, storage
from rollcall.synthetic.evaluation import build_test_meeting, save_photos, score_report
from rollcall.synthetic.meeting import render_meeting
from tests.fakezoom import (
    FakeAccount,
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeUser,
    FakeZoomServer,
    FakeZoomState,
)
from tests.fakezoom.events import WebhookSender, recording_completed, recording_file

SECRET = "webhook-secret"
COURSE = "BIO101"
MEETING_ID = 81234567890


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def recorded_class(tmp_path_factory, faces_dir):
    work = tmp_path_factory.mktemp("zoomclass")
    meeting = build_test_meeting(
        faces_dir, seed=21, n_students=6, n_absent=1, n_strangers=2, duration_s=120.0, crf=30
    )
    video = work / "gallery.mp4"
    truth = render_meeting(meeting.script, video)
    return meeting, video, truth


def enroll(home: Path, meeting, config, face_models, plugin_manager) -> None:
    db = storage.open_db(home)
    storage.add_course(db, COURSE, "Biology")
    for student_id, images in meeting.enroll.items():
        paths = save_photos(images, home / "photos-in" / student_id)
        enroll_photos(
            db, plugin_manager, face_models.model_key, COURSE, student_id, paths, config.enrollment
        )
    db.conn.close()


class Service:
    """`rollcall serve` in a subprocess."""

    def __init__(self, env: dict[str, str], port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self._out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rollcall", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url("/healthz"), timeout=1).status_code in (200, 503):
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
            assert self.proc.poll() is None, self.log.read_text()
        raise AssertionError("service did not start: " + self.log.read_text())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(60)
        return self.proc.returncode if self.proc else 0


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(
        f"timed out waiting for {what}\n" + (log.read_text()[-4000:] if log else "")
    )


def job_states(home: Path) -> list[str]:
    db = storage.open_db(home)
    try:
        return [j.state for j in jobs.list_jobs(db)]
    finally:
        db.conn.close()


@pytest.fixture
def zoom_setup(tmp_path, recorded_class, base_env, config, face_models, plugin_manager):
    meeting, video, truth = recorded_class
    state = FakeZoomState(
        accounts=[FakeAccount("acc-1", "client-1", "client-secret")],
        token_lifetime=5.0,
        users=[FakeUser(id="host-1", email="teacher@example.edu")],
    )
    uuid = "/abcDEF//ghi=="  # a UUID that needs double encoding
    state.meetings.append(
        FakeMeeting(
            uuid=uuid,
            id=MEETING_ID,
            host_id="host-1",
            topic="Biology 101 - week 3",
            start_time=datetime.now(UTC).replace(microsecond=0),
            duration=2,
            host_email="teacher@example.edu",
            files=[
                FakeRecordingFile("file-gallery"),
                FakeRecordingFile("file-speaker", recording_type="active_speaker"),
            ],
        )
    )
    start = state.meetings[0].start_time
    present_students = [k for k in meeting.students if k not in meeting.students[:1]]
    state.meetings[0].participants = [
        # every student who came joined under their name; one of them is listed twice (rejoin)
        {
            "id": f"p{i}",
            "user_id": f"u{i}",
            "name": sid,
            "user_email": "",
            "join_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "leave_time": (start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": 120,
        }
        for i, sid in enumerate(present_students[1:])
    ] + [
        # the absent student's account was connected the whole time: "camera off?"
        {
            "id": "p-absent",
            "user_id": "u-absent",
            "name": meeting.students[0],
            "user_email": "",
            "join_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "leave_time": (start + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": 120,
        },
    ]
    state.files["file-gallery"] = FakeFile(video)
    state.files["file-speaker"] = FakeFile(video)
    home = tmp_path / "home"
    enroll(home, meeting, config, face_models, plugin_manager)
    with FakeZoomServer(state) as zoom:
        env = dict(os.environ, **base_env)
        env.update(
            {
                "ROLLCALL_HOME": str(home),
                "ROLLCALL_ZOOM_ACCOUNT_ID": "acc-1",
                "ROLLCALL_ZOOM_CLIENT_ID": "client-1",
                "ROLLCALL_ZOOM_CLIENT_SECRET": "client-secret",
                "ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN": SECRET,
                "ROLLCALL_ZOOM_API_BASE_URL": zoom.api_base_url,
                "ROLLCALL_ZOOM_OAUTH_URL": zoom.oauth_url,
                "ROLLCALL_ZOOM_USERS": "host-1",
                "ROLLCALL_ZOOM_POLL_MINUTES": "1",
                "ROLLCALL_ZOOM_DOWNLOAD_HOSTS": "127.0.0.1,localhost",
                "ROLLCALL_ZOOM_COURSE_MAP": json.dumps(
                    [{"course": COURSE, "topics": ["Biology 101*"]}]
                ),
                "ROLLCALL_JOBS_RETRY_BASE_S": "1",
                "ROLLCALL_JOBS_LEASE_S": "6",
                "ROLLCALL_LOGGING_FORMAT": "json",
            }
        )
        yield {
            "state": state,
            "zoom": zoom,
            "env": env,
            "home": home,
            "uuid": uuid,
            "truth": truth,
            "meeting": meeting,
            "log": tmp_path / "service.log",
        }


class EventServerThread:
    """The fake WebSocket event endpoint on its own event loop in a thread."""

    def __init__(self, subscription_id: str):
        import threading

        from tests.fakezoom.events import FakeEventServer

        self.loop = asyncio.new_event_loop()
        self.server = FakeEventServer(subscription_id)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> EventServerThread:
        self.thread.start()
        self.call(self.server.start())
        return self

    def __exit__(self, *exc) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)


def webhook_body(setup) -> dict:
    m = setup["state"].meetings[0]
    size = Path(setup["state"].files["file-gallery"].path).stat().st_size
    files = [
        recording_file(
            "file-gallery",
            m.uuid,
            download_url=setup["zoom"].download_url("file-gallery"),
            file_size=size,
        )
    ]
    return recording_completed(
        m.uuid,
        m.id,
        topic=m.topic,
        host_email=m.host_email,
        files=files,
        download_token=m.download_access_token,
        start_time=m.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


async def deliver(url: str, body: dict, times: int, secret: str = SECRET) -> list[int]:
    async with WebhookSender(url, secret) as sender:
        return [d.status for d in await sender.deliver(body, times=times)]


def check_result(setup, config) -> None:
    db = storage.open_db(setup["home"])
    try:
        done = jobs.list_jobs(db, jobs.DONE)
        assert len(done) == 1 and len(jobs.list_jobs(db)) == 1
        done_events = [e for e in jobs.events(db, done[0].id) if e.state == jobs.DONE]
        assert len(done_events) == 1
        meetings = storage.list_meetings(db, COURSE)
        assert len(meetings) == 1 and meetings[0]["source"] == "zoom"
        report = meeting_report(db, meetings[0]["id"])
        n_students = len(setup["meeting"].students)
        assert db["presence"].count == n_students * 2  # two minutes, no duplicate rows
        score = score_report(report, setup["truth"], config.attendance.min_seconds_per_minute)
        assert score.precision >= 0.99 and score.recall >= 0.95, score
        assert score.absent_marked == 0
        assert not list((setup["home"] / "downloads").glob("*.mp4"))  # video deleted after analysis
        # Zoom's participants report, reconciled with the faces
        absent = setup["meeting"].students[0]
        unlisted = setup["meeting"].students[1]
        recon = {
            storage.get_student(db, COURSE, r["student_id"])["student_id"]: r
            for r in db.query(
                "select s.student_id, r.* from reconciliation r join students s on s.id = r.student_pk "
                "where r.meeting_id = ?",
                [meetings[0]["id"]],
            )
        }
        assert (
            recon[absent]["connected_minutes"] == 2 and recon[absent]["unrecognized_minutes"] == 2
        )
        assert db["participants"].count == len(setup["state"].meetings[0].participants)
        warnings = "\n".join(report.warnings)
        assert f"{absent} " in warnings and "camera off" in warnings
        if any(
            row.minutes[0] or row.minutes[1]
            for row in report.students
            if row.student_id == unlisted
        ):
            assert f"{unlisted} " in warnings and "not in Zoom's participants list" in warnings
    finally:
        db.conn.close()


def test_webhook_websocket_and_polling_make_one_job(zoom_setup, config):
    events = EventServerThread("sub-1").__enter__()
    env = dict(
        zoom_setup["env"],
        ROLLCALL_ZOOM_WEBSOCKET_SUBSCRIPTION_ID="sub-1",
        ROLLCALL_ZOOM_WEBSOCKET_URL=events.server.url,
    )
    service = Service(env, free_port(), zoom_setup["log"]).start()
    try:
        # the same recording by WebSocket (with a fresh OAuth token in the query)...
        wait_for(
            lambda: events.server.connections, 30, "the WebSocket connection", zoom_setup["log"]
        )
        assert events.call(events.server.push(webhook_body(zoom_setup))) == 1
        url = service.url("/zoom/webhook")
        # ...by webhook three times (refused deliveries leave no trace)...
        assert asyncio.run(deliver(url, webhook_body(zoom_setup), 1, secret="wrong")) == [401]
        assert asyncio.run(deliver(url, webhook_body(zoom_setup), 3)) == [200, 200, 200]
        wait_for(
            lambda: (
                zoom_setup["state"].requests.get("recordings")
                or any(c.route.startswith("user") for c in zoom_setup["state"].calls)
            ),
            30,
            "a poll",
        )
        wait_for(
            lambda: job_states(zoom_setup["home"]) == ["done"],
            240,
            "the job to finish",
            zoom_setup["log"],
        )
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert health["queue"]["done"] == 1 and health["scheduler"] == "running"
        assert health["last_successful_poll"]
        assert service.stop() == 0
    finally:
        service.stop()
        events.__exit__(None)
    assert events.server.accepted_tokens and all(events.server.accepted_tokens)
    records = [
        json.loads(line)
        for line in zoom_setup["log"].read_text().splitlines()
        if line.startswith("{")
    ]
    sources = {r.get("source") for r in records if r.get("meeting_uuid") == zoom_setup["uuid"]}
    assert {"websocket", "webhook", "poll"} <= sources  # all three paths reached the intake
    check_result(zoom_setup, config)
    log_text = zoom_setup["log"].read_text()
    assert "client-secret" not in log_text and SECRET not in log_text


def test_sigkill_during_download_and_analysis_finishes_once(zoom_setup, config):
    zoom_setup["state"].files["file-gallery"].behaviour = "slow_body"
    zoom_setup["state"].files["file-gallery"].slow_chunk = 64 * 1024
    zoom_setup["state"].files["file-gallery"].slow_delay = 0.3
    env = dict(zoom_setup["env"], ROLLCALL_ZOOM_POLL_MINUTES="0")
    log = zoom_setup["log"]
    service = Service(env, free_port(), log).start()
    assert asyncio.run(deliver(service.url("/zoom/webhook"), webhook_body(zoom_setup), 1)) == [200]
    wait_for(lambda: job_states(zoom_setup["home"]) == ["downloading"], 30, "downloading", log)
    time.sleep(1.0)
    service.kill()
    zoom_setup["state"].files["file-gallery"].behaviour = "normal"
    service = Service(env, free_port(), log).start()
    wait_for(lambda: job_states(zoom_setup["home"]) == ["analyzing"], 60, "analyzing", log)
    time.sleep(2.0)
    service.kill()
    # the last start analyses in worker processes ([analysis] workers = 2)
    service = Service(dict(env, ROLLCALL_ANALYSIS_WORKERS="2"), free_port(), log).start()
    try:
        wait_for(
            lambda: job_states(zoom_setup["home"]) == ["done"], 300, "done after restarts", log
        )
    finally:
        assert service.stop() == 0
    assert "recording analysed in a worker process" in log.read_text()
    check_result(zoom_setup, config)


def test_missing_zoom_credentials_start_local_parts(tmp_path, base_env):
    env = dict(os.environ, **base_env, ROLLCALL_HOME=str(tmp_path / "home"))
    for key in [k for k in env if k.startswith("ROLLCALL_ZOOM_")]:
        del env[key]
    service = Service(env, free_port(), tmp_path / "log").start()
    try:
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert "account_id" in health["disabled"]["polling"]
        assert "webhook_secret_token" in health["disabled"]["webhook"]
        response = requests.post(service.url("/zoom/webhook"), data=b"{}", timeout=5)
        assert response.status_code == 503
    finally:
        assert service.stop() == 0
    assert "disabled" in (tmp_path / "log").read_text()


def test_event_loop_answers_while_another_process_holds_the_write_lock(tmp_path, base_env):
    """A webhook whose intake waits for SQLite's write lock (held here by another
    connection, as another process would) neither stalls /healthz nor misses Zoom's
    3 s: the intake waits off the event loop, and its job is recorded once the lock
    is free."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    home = tmp_path / "home"
    env = dict(os.environ, **base_env, ROLLCALL_HOME=str(home))
    for key in [k for k in env if k.startswith("ROLLCALL_ZOOM_")]:
        del env[key]
    env["ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN"] = SECRET
    log = tmp_path / "log"
    service = Service(env, free_port(), log).start()
    hold_s = 6.0
    locker = sqlite3.connect(home / storage.DB_NAME, isolation_level=None)
    try:
        locker.execute("begin immediate")  # SQLite's write lock, until the rollback below
        locked_at = time.monotonic()

        def send() -> tuple[list[int], float]:
            started = time.monotonic()
            body = recording_completed("lock-uuid==", 123456789, topic="Unmapped topic")
            try:
                statuses: list = asyncio.run(deliver(service.url("/zoom/webhook"), body, times=1))
            except Exception as exc:  # no answer at all
                statuses = [repr(exc)]
            return statuses, time.monotonic() - started

        with ThreadPoolExecutor(1) as pool:
            webhook = pool.submit(send)
            time.sleep(0.8)  # the delivery is in, its intake waits for the lock
            assert not webhook.done()
            started = time.monotonic()
            try:
                health = requests.get(service.url("/healthz"), timeout=3)
            except requests.Timeout:  # the event loop waits for the lock
                health = None
            health_s = time.monotonic() - started
            assert time.monotonic() - locked_at < hold_s  # still locked while it answered
            statuses, webhook_s = webhook.result(timeout=hold_s * 3)
            time.sleep(max(0.0, hold_s - (time.monotonic() - locked_at)))
        locker.execute("rollback")
    finally:
        locker.close()
    try:
        assert health is not None, "/healthz did not answer while the database was locked"
        assert health_s < 1.0, f"/healthz took {health_s:.1f} s while the database was locked"
        assert health.status_code == 200 and health.json()["database"] == "ok"
        # Zoom's 3 s: not recorded yet, so 500 and Zoom retries (the retry is a no-op)
        assert webhook_s < 3.0, f"the webhook took {webhook_s:.1f} s"
        assert statuses == [500]
        wait_for(lambda: job_states(home) == ["skipped"], 30, "the job after the lock", log)
    finally:
        assert service.stop() == 0


def _read_until_closed(
    sock: socket.socket, limit_s: float, trickle: bytes = b""
) -> tuple[bytes, float | None]:
    """What the server sends until it closes the connection, and after how many seconds
    (None if still open after ``limit_s``). ``trickle`` is sent one byte per 0.2 s."""
    started = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    for i in range(int(limit_s / 0.2) + 1):  # bounded: at most limit_s
        if i < len(trickle):
            try:
                sock.sendall(trickle[i : i + 1])
            except OSError:  # closed by the server
                return received, time.monotonic() - started
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, None


def test_slow_and_idle_clients_are_cut_off_and_connections_are_limited(tmp_path, base_env):
    """Raw sockets on 127.0.0.1 against `rollcall serve` with [server] header_timeout_s = 1,
    body_timeout_s = 1, max_connections = 4: an idle connection, trickled headers, an idle
    kept-alive connection and a trickled body are all closed within seconds; a fifth
    connection is answered 503 at once, and the service answers normally afterwards."""
    env = dict(os.environ, **base_env, ROLLCALL_HOME=str(tmp_path / "home"))
    for key in [k for k in env if k.startswith("ROLLCALL_ZOOM_")]:
        del env[key]
    env.update(
        ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN=SECRET,
        ROLLCALL_SERVER_HEADER_TIMEOUT_S="1.0",
        ROLLCALL_SERVER_BODY_TIMEOUT_S="1.0",
        ROLLCALL_SERVER_MAX_CONNECTIONS="4",
    )
    log = tmp_path / "log"
    service = Service(env, free_port(), log).start()
    address = ("127.0.0.1", service.port)
    try:
        with socket.create_connection(address) as idle:
            _, closed_after = _read_until_closed(idle, 10)
        assert closed_after is not None and closed_after < 4, "idle connection held"

        with socket.create_connection(address) as slow:
            trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            _, closed_after = _read_until_closed(slow, 10, trickle)
        assert closed_after is not None and closed_after < 4, "trickled headers held"

        with socket.create_connection(address) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer, closed_after = _read_until_closed(kept, 10)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        assert closed_after is not None and closed_after < 4, "idle kept-alive connection held"

        with socket.create_connection(address) as body:
            body.sendall(b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            answer, closed_after = _read_until_closed(body, 10, b"{" * 100)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert closed_after is not None and closed_after < 4, "trickled body held"

        held = [socket.create_connection(address) for _ in range(4)]
        try:
            time.sleep(0.2)
            with socket.create_connection(address) as extra:
                answer, closed_after = _read_until_closed(extra, 3)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
            assert closed_after is not None and closed_after < 1
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        assert requests.get(service.url("/healthz"), timeout=5).status_code == 200
    finally:
        assert service.stop() == 0
    text = log.read_text()
    assert "no complete request headers in time" in text
    assert "connection limit reached" in text
