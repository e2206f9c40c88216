"""`rollcall serve` end to end against the fake Zoom, as a real process.

The fake serves a gallery-view recording rendered by the meeting generator;
the service learns of it by webhook (delivered three times), and by polling,
downloads it, analyses it and stores a matrix that must match the ground truth.
It is killed with SIGKILL in the middle of a download and of an analysis and
must still finish the meeting exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from rollcall.enrollment.enroll import enroll_photos
from rollcall.pipeline.counter_evidence import NOT_IN_REPORT
from rollcall.reports.results import meeting_report
from rollcall.store import jobs, storage
from rollcall.synthetic.evaluation import build_test_meeting, save_photos, score_report
from rollcall.synthetic.meeting import render_meeting
from tests.fakezoom import (
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeZoomServer,
)
from tests.fakezoom.events import WebhookSender, recording_completed, recording_file
from tests.service_process import (
    Service,
    fake_zoom_env,
    fake_zoom_state,
    free_port,
    participant,
    wait_for,
)

SECRET = "webhook-secret"
COURSE = "BIO101"
MEETING_ID = 81234567890


def rendered_class(tmp_path_factory, faces_dir, name: str, **meeting):
    """(test meeting, its rendered gallery video, ground truth) in a folder ``name``."""
    work = tmp_path_factory.mktemp(name)
    built = build_test_meeting(faces_dir, crf=30, **meeting)
    video = work / "gallery.mp4"
    truth = render_meeting(built.script, video)
    return built, video, truth


@pytest.fixture(scope="session")
def recorded_class(tmp_path_factory, faces_dir):
    return rendered_class(
        tmp_path_factory,
        faces_dir,
        "zoomclass",
        seed=21,
        n_students=6,
        n_absent=1,
        n_strangers=2,
        duration_s=120.0,
    )


def enroll(home: Path, meeting, config, face_models, plugin_manager) -> None:
    db = storage.open_db(home)
    storage.add_course(db, COURSE, "Biology")
    for student_id, images in meeting.enroll.items():
        paths = save_photos(images, home / "photos-in" / student_id)
        enroll_photos(
            db, plugin_manager, face_models.model_key, COURSE, student_id, paths, config.enrollment
        )
    db.conn.close()


def job_states(home: Path) -> list[str]:
    db = storage.open_db(home)
    try:
        return [j.state for j in jobs.list_jobs(db)]
    finally:
        db.conn.close()


@pytest.fixture
def zoom_setup(tmp_path, recorded_class, base_env, config, face_models, plugin_manager):
    meeting, video, truth = recorded_class
    state = fake_zoom_state(token_lifetime=5.0)
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
        participant(str(i), sid, start, 2)
        for i, sid in enumerate(present_students[1:])
    ] + [
        # the absent student's account was connected the whole time: "camera off?"
        participant("-absent", meeting.students[0], start, 2),
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
                **fake_zoom_env(zoom, COURSE),
                "ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN": SECRET,
                "ROLLCALL_ZOOM_POLL_MINUTES": "1",
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
        absent = setup["meeting"].students[0]
        unlisted = setup["meeting"].students[1]
        # Zoom's participants report doubts the face: the student it does not list was
        # recognised in every minute they were there, and each of those minutes needs review
        expected = setup["truth"].presence_matrix(config.attendance.min_seconds_per_minute)
        (row,) = [r for r in report.students if r.student_id == unlisted]
        assert row.minutes == (0, 0) and row.present_minutes == 0
        assert set(row.review_minutes) == {m for m, p in enumerate(expected[unlisted]) if p}
        assert row.evidence and all(NOT_IN_REPORT in e.reason for e in row.evidence)
        assert all(e.state == "review" for e in row.evidence)
        listed = dataclasses.replace(
            report, students=tuple(r for r in report.students if r.student_id != unlisted)
        )
        score = score_report(listed, setup["truth"], config.attendance.min_seconds_per_minute)
        assert score.precision >= 0.99 and score.recall >= 0.95, score
        assert score.absent_marked == 0 and score.review == 0  # listed students stay present
        assert not list((setup["home"] / "downloads").glob("*.mp4"))  # video deleted after analysis
        # Zoom's participants report, reconciled with the faces
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
        assert f"{unlisted} " in warnings and "not in Zoom's participants list" in warnings
    finally:
        db.conn.close()


def test_webhook_websocket_and_polling_make_one_job(zoom_setup, config):
    """...while the events' download token has expired (the service falls back to the
    OAuth token) and the participants report is not ready at first (asked again)."""
    state = zoom_setup["state"]
    state.expired_download_tokens.add(state.meetings[0].download_access_token)
    state.meetings[0].participants_not_ready = 1
    events = EventServerThread("sub-1").__enter__()
    env = dict(
        zoom_setup["env"],
        ROLLCALL_ZOOM_WEBSOCKET_SUBSCRIPTION_ID="sub-1",
        ROLLCALL_ZOOM_WEBSOCKET_URL=events.server.url,
        ROLLCALL_ZOOM_PARTICIPANTS_RETRY_S="1",
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
        wait_for(
            lambda: with_db(zoom_setup["home"], lambda db: db["participants"].count),
            60,
            "the participants report, asked again",
            zoom_setup["log"],
        )
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert health["queue"]["done"] == 1 and health["scheduler"] == "running"
        assert health["workers"] == {"running": 1, "stopped": 0}
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
    (job,) = with_db(zoom_setup["home"], jobs.list_jobs)
    assert job.attempts == 0  # no attempt failed on the expired token
    assert state.requests["participants"] == 2
    log_text = zoom_setup["log"].read_text()
    assert "client-secret" not in log_text and SECRET not in log_text


class MailSink:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


AUDIT = """
create table test_presence_changes (student_pk integer, minute integer, present integer,
    review integer);
create trigger test_presence_changed after update on presence begin
    insert into test_presence_changes
    values (new.student_pk, new.minute, new.present, new.review);
end;
create table test_summary_queued (presence_changes integer);
create trigger test_summary_queued after insert on outbox begin
    insert into test_summary_queued select count(*) from test_presence_changes;
end;
"""


def test_summary_email_waits_for_the_participants_report_and_shows_the_final_state(
    zoom_setup, config
):
    """Issue 15, in a real service: Zoom's participants report is not ready before the
    analysis nor at the first retry. The meeting is analysed without it; when it comes,
    the minutes of the recognised student it does not list go to review, each stored
    minute changing once, and only then is the instructor summary queued: the one email
    shows the final state (the student in review, in the text and the CSV)."""
    import csv
    import email
    import email.policy
    import io

    from aiosmtpd.controller import Controller

    state = zoom_setup["state"]
    state.meetings[0].participants_not_ready = 2
    home, log = zoom_setup["home"], zoom_setup["log"]
    unlisted = zoom_setup["meeting"].students[1]
    with_db(home, lambda db: db.conn.executescript(AUDIT))
    sink, port = MailSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = dict(
        zoom_setup["env"],
        ROLLCALL_ZOOM_POLL_MINUTES="0",
        ROLLCALL_ZOOM_PARTICIPANTS_RETRY_S="1",
        ROLLCALL_SMTP_HOST="127.0.0.1",
        ROLLCALL_SMTP_PORT=str(port),
        ROLLCALL_SMTP_SECURITY="none",
        ROLLCALL_SMTP_FROM_ADDRESS="rollcall@example.edu",
        ROLLCALL_NOTIFY_SEND_INTERVAL_S="1",
        ROLLCALL_NOTIFY_COURSES=json.dumps([{"course": COURSE, "emails": ["prof@example.edu"]}]),
    )
    service = Service(env, free_port(), log).start()
    try:
        url = service.url("/zoom/webhook")
        assert asyncio.run(deliver(url, webhook_body(zoom_setup), 1)) == [200]
        wait_for(lambda: job_states(home) == ["done"], 240, "the job to finish", log)
        wait_for(lambda: sink.envelopes, 120, "the summary email", log)
        time.sleep(3.0)  # several delivery runs: nothing more is sent
        assert service.stop() == 0
    finally:
        service.stop()
        controller.stop()
    assert state.requests["participants"] == 3  # before the analysis, then two retries
    assert len(sink.envelopes) == 1
    check_result(zoom_setup, config)
    changes = with_db(home, lambda db: list(db.query("select * from test_presence_changes")))
    pk = with_db(home, storage.get_student, COURSE, unlisted)["id"]
    assert changes and {c["student_pk"] for c in changes} == {pk}
    assert len({c["minute"] for c in changes}) == len(changes)  # each minute changed once
    assert all(c["present"] == 0 and c["review"] == 1 for c in changes)
    queued = with_db(home, lambda db: list(db.query("select * from test_summary_queued")))
    assert queued == [{"presence_changes": len(changes)}]  # queued once, after the doubt
    msg = email.message_from_bytes(sink.envelopes[0].original_content, policy=email.policy.default)
    text = " ".join(msg.get_body(("plain",)).get_content().split())
    n = len(changes)
    assert f"{n} minute{'s' if n != 1 else ''} need{'' if n != 1 else 's'} review" in text
    assert f"? {unlisted} " in text
    (part,) = [p for p in msg.iter_attachments() if (p.get_filename() or "").endswith(".csv")]
    rows = {
        r["student_id"]: r
        for r in csv.DictReader(io.StringIO(part.get_payload(decode=True).decode("utf-8-sig")))
    }
    assert rows[unlisted]["present_minutes"] == "0" and rows[unlisted]["review_minutes"] == str(n)
    assert list(rows[unlisted].values()).count("?") == n


def test_sigkill_during_download_and_analysis_finishes_once(zoom_setup, config):
    # the webhook's download token expired: Zoom's sign-in page, then the OAuth path
    zoom_setup["state"].expired_download_tokens.add(
        zoom_setup["state"].meetings[0].download_access_token
    )
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
    assert "Zoom refused the download token; using the OAuth token" in log.read_text()
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


# ---------------------------------------------------------------- the job path under faults
# A worker of the service run in this process against the fake Zoom over loopback:
# real downloads, real OAuth, the real analysis where the results matter.

SHORT_UUID = "short-uuid=="
SHORT_ID = 85550001111


@pytest.fixture(scope="session")
def short_class(tmp_path_factory, faces_dir):
    return rendered_class(
        tmp_path_factory,
        faces_dir,
        "shortclass",
        seed=33,
        n_students=3,
        n_absent=1,
        n_strangers=0,
        duration_s=60.0,
    )


@pytest.fixture
def worker_setup(tmp_path, short_class, base_env, config, face_models, plugin_manager):
    """An enrolled course, a fake Zoom with its recording, and the worker's config."""
    from rollcall.config import load_config

    meeting, video, truth = short_class
    state = fake_zoom_state(token_lifetime=30.0)
    start = datetime.now(UTC).replace(microsecond=0)
    state.meetings.append(
        FakeMeeting(
            uuid=SHORT_UUID,
            id=SHORT_ID,
            host_id="host-1",
            topic="Biology 101 - short",
            start_time=start,
            duration=1,
            host_email="teacher@example.edu",
            files=[FakeRecordingFile("short-gallery")],
            participants=[
                participant(str(i), sid, start, 1) for i, sid in enumerate(meeting.students)
            ],
        )
    )
    state.files["short-gallery"] = FakeFile(video)
    home = tmp_path / "home"
    enroll(home, meeting, config, face_models, plugin_manager)
    with FakeZoomServer(state) as zoom:
        env = dict(
            base_env,
            **fake_zoom_env(zoom, COURSE),
            ROLLCALL_HOME=str(home),
            ROLLCALL_JOBS_RETRY_BASE_S="0",
        )
        yield {
            "state": state,
            "zoom": zoom,
            "config": load_config(None, env),
            "home": home,
            "meeting": meeting,
            "video": video,
        }


def event_of(body: dict):
    from rollcall.bot.events import parse_event

    return parse_event(body, "webhook")


def short_completed(setup, *, download_token: str) -> dict:
    m = setup["state"].meetings[0]
    files = [
        recording_file(
            "short-gallery",
            m.uuid,
            download_url=setup["zoom"].download_url("short-gallery"),
            file_size=setup["video"].stat().st_size,
        )
    ]
    return recording_completed(
        m.uuid,
        m.id,
        topic=m.topic,
        host_email=m.host_email,
        files=files,
        download_token=download_token,
        start_time=m.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def worker_context(setup, analyze=None, *, wrap=None, oauth: bool = True):
    """The service's WorkerContext for this setup: the real analysis unless ``analyze``
    stands in for it, wrapped by ``wrap`` if given."""
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.service.worker import WorkerContext, analysis_for, in_thread

    config = setup["config"]
    client = ZoomClient.from_config(config.zoom)
    step = analyze or analysis_for(config)
    if wrap is not None:
        step = wrap(step)
    ctx = WorkerContext(
        config=config,
        analyze=in_thread(step),
        get_token=client.tokens.token if oauth else None,
        fetch_participants=client.participants_report,
    )
    ctx.refresh_recording = client.get_meeting_recordings
    return ctx


def run_one_job(setup, ctx) -> jobs.Job | None:
    """Claim the next due job and run it as a service worker does; the job afterwards."""
    from rollcall.service.db_thread import DbThread
    from rollcall.service.worker import run_job

    async def go():
        db = DbThread(setup["home"])
        try:
            job = await db.run(jobs.claim, "test-worker", lease_s=60)
            if job is None:
                return None
            await run_job(db, ctx, job, "test-worker")
            return await db.run(jobs.get, job.id)
        finally:
            await db.close()

    return asyncio.run(go())


def copy_analysis(video_of: list):
    """A stand-in analysis (the download is what is tested): keeps the downloaded bytes."""

    def analyze(video: Path, job: jobs.Job, **options) -> int:
        video_of.append(video.read_bytes())
        return 1

    return analyze


def with_db(home: Path, fn, *args, **kwargs):
    """``fn(db, ...)`` with a connection of its own; what it changed is committed."""
    db = storage.open_db(home)
    try:
        result = fn(db, *args, **kwargs)
        if db.conn.in_transaction:
            db.conn.commit()
        return result
    finally:
        db.conn.close()


def test_expired_download_token_falls_back_to_oauth_and_fresh_files(worker_setup):
    """Issue 16.1: the webhook's token has expired (Zoom answers with its sign-in page):
    the worker reads the recording's files again from the API and downloads them with
    the OAuth token, without a second failed attempt."""
    from rollcall.bot.intake import Intake

    setup = worker_setup
    setup["state"].expired_download_tokens.add("expired-token")
    Intake(setup["config"]).record(event_of(short_completed(setup, download_token="expired-token")))
    got: list[bytes] = []
    job = run_one_job(setup, worker_context(setup, copy_analysis(got)))
    assert job.state == jobs.DONE, job.error
    assert job.attempts == 0 and got == [setup["video"].read_bytes()]
    assert "download_token" not in job.payload  # the refused credential is not kept
    downloads = setup["state"].calls_to("download")
    assert [c.headers["Authorization"] for c in downloads][0] == "Bearer expired-token"
    assert downloads[-1].headers["Authorization"].startswith("Bearer tok")  # OAuth
    assert setup["state"].requests["meeting_recordings"] == 1  # files read again


def test_old_download_token_is_not_tried(worker_setup):
    """A token older than its lifetime goes straight to the OAuth path."""
    from rollcall.bot.intake import Intake

    setup = worker_setup
    Intake(setup["config"]).record(event_of(short_completed(setup, download_token="old-token")))
    old = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    with_db(
        setup["home"],
        lambda db: db.execute(
            "update jobs set payload = json_set(payload, '$.token_received_at', ?)", [old]
        ),
    )
    got: list[bytes] = []
    job = run_one_job(setup, worker_context(setup, copy_analysis(got)))
    assert job.state == jobs.DONE, job.error
    downloads = setup["state"].calls_to("download")
    assert downloads and all("old-token" not in c.headers["Authorization"] for c in downloads)


def test_jobs_retry_and_polling_revive_a_job_failed_on_an_expired_token(worker_setup, monkeypatch):
    """A job that failed for good on an expired token (no OAuth then) runs again after
    `rollcall jobs retry`, and polling requeues a failed job with fresh download data,
    a bounded number of times."""
    from rollcall.bot.intake import Intake
    from rollcall.bot.poller import poll_once
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.cli.main import main

    setup = worker_setup
    setup["state"].expired_download_tokens.add("expired-token")
    Intake(setup["config"]).record(event_of(short_completed(setup, download_token="expired-token")))
    with_db(setup["home"], lambda db: db.execute("update jobs set max_attempts = 1"))
    got: list[bytes] = []
    job = run_one_job(setup, worker_context(setup, copy_analysis(got), oauth=False))
    assert job.state == jobs.FAILED and "instead of a video" in job.error
    # `rollcall jobs retry`, now with OAuth credentials: done
    monkeypatch.setenv("ROLLCALL_HOME", str(setup["home"]))
    assert main(["jobs", "retry", str(job.id)]) == 0
    job = run_one_job(setup, worker_context(setup, copy_analysis(got)))
    assert job.state == jobs.DONE, job.error
    # polling: a failed job is requeued with the recording's current download data
    config = setup["config"].model_copy(
        update={"jobs": setup["config"].jobs.model_copy(update={"poll_revivals": 1})}
    )
    with_db(
        setup["home"],
        lambda db: db.execute(
            "update jobs set state = 'failed', error = 'sign-in page', finished_at = updated_at"
        ),
    )
    client = ZoomClient.from_config(config.zoom)
    assert with_db(setup["home"], poll_once, config, client) == 0
    revived = with_db(setup["home"], jobs.get, job.id)
    assert revived.state == jobs.QUEUED and revived.payload["revivals"] == 1
    assert revived.payload["download_url"] == setup["zoom"].download_url("short-gallery")
    assert not revived.payload.get("download_token")
    job = run_one_job(setup, worker_context(setup, copy_analysis(got)))
    assert job.state == jobs.DONE, job.error
    with_db(setup["home"], lambda db: db.execute("update jobs set state = 'failed'"))
    with_db(setup["home"], poll_once, config, client)
    assert with_db(setup["home"], jobs.get, job.id).state == jobs.FAILED  # bounded


def meeting_rows(home: Path) -> list[dict]:
    return with_db(home, lambda db: list(db.query("select * from meetings order by id")))


def test_recording_trashed_during_analysis_stores_nothing_and_recovered_runs_again(
    worker_setup,
):
    """Issue 16.2: a trash event that arrives while the recording is analysed cancels the
    job; the analysis then stores no attendance, queues no message and stores no
    participants report (it was asked for before the analysis, to doubt face matches).
    `recording.recovered` makes the job run again."""
    from rollcall.bot.intake import Intake
    from tests.fakezoom.events import recording_recovered, recording_trashed

    setup = worker_setup
    intake = Intake(setup["config"])
    m = setup["state"].meetings[0]
    intake.record(event_of(short_completed(setup, download_token=m.download_access_token)))

    def trashed_midway(real):
        def analyze(video: Path, job: jobs.Job, **options) -> int:
            intake.record(event_of(recording_trashed(m.uuid, m.id, topic=m.topic)))
            return real(video, job, **options)

        return analyze

    job = run_one_job(setup, worker_context(setup, wrap=trashed_midway))
    assert job.state == jobs.CANCELLED, job.error
    assert [e.state for e in with_db(setup["home"], jobs.events, job.id)][-1] == jobs.CANCELLED
    for table in ("presence", "attendance", "unknown_clusters", "outbox", "participants"):
        assert with_db(setup["home"], lambda db, t=table: db[t].count) == 0, table
    (meeting,) = meeting_rows(setup["home"])
    assert meeting["status"] == "cancelled"
    assert not (setup["home"] / "evidence" / str(meeting["id"])).exists()
    assert setup["state"].requests["participants"] == 1  # before the analysis; not stored
    assert with_db(setup["home"], lambda db: db["participant_reports"].count) == 0

    intake.record(event_of(recording_recovered(m.uuid, m.id, topic=m.topic)))
    assert with_db(setup["home"], jobs.get, job.id).state == jobs.QUEUED
    job = run_one_job(setup, worker_context(setup))
    assert job.state == jobs.DONE, job.error
    (meeting,) = meeting_rows(setup["home"])
    assert meeting["status"] == "done" and job.result_meeting_id == meeting["id"]
    assert with_db(setup["home"], lambda db: db["attendance"].count) == len(
        setup["meeting"].students
    )
    assert setup["state"].requests["participants"] == 2


def test_recovered_recording_that_was_never_queued_becomes_a_job(worker_setup):
    from rollcall.bot.intake import Intake
    from tests.fakezoom.events import recording_recovered

    setup = worker_setup
    m = setup["state"].meetings[0]
    body = recording_recovered(
        m.uuid,
        m.id,
        topic=m.topic,
        files=short_completed(setup, download_token="x")["payload"]["object"]["recording_files"],
    )
    (result,) = Intake(setup["config"]).record(event_of(body))
    assert result.created and result.state == jobs.QUEUED


def test_participants_report_not_ready_is_asked_again_until_it_comes(
    worker_setup, monkeypatch, capsys
):
    """Issue 16.4: Zoom has not built the participants report yet when the analysis ends:
    the meeting says it is missing (warnings, `meeting list`) and it is asked for again
    every `[zoom] participants_retry_s` until it comes."""
    from rollcall.bot.intake import Intake
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.cli.main import main

    setup = worker_setup
    m = setup["state"].meetings[0]
    m.participants_not_ready = 2
    Intake(setup["config"]).record(
        event_of(short_completed(setup, download_token=m.download_access_token))
    )
    job = run_one_job(setup, worker_context(setup))
    assert job.state == jobs.DONE, job.error
    (meeting,) = meeting_rows(setup["home"])
    assert "Zoom participants report not available yet" in meeting["warnings"]
    report = with_db(setup["home"], meeting_report, meeting["id"])
    assert any("participants report" in w for w in report.warnings)
    monkeypatch.setenv("ROLLCALL_HOME", str(setup["home"]))
    monkeypatch.setenv("COLUMNS", "250")
    capsys.readouterr()
    assert main(["meeting", "list"]) == 0
    assert "participants report pending" in " ".join(capsys.readouterr().out.split())

    from rollcall.bot.participants import retry_due_reports
    from rollcall.store import participant_reports

    config = setup["config"]
    fetch = ZoomClient.from_config(config.zoom).participants_report
    now = datetime.now(UTC)
    assert with_db(setup["home"], retry_due_reports, config, fetch, now=now) == 0  # not due yet
    assert setup["state"].requests["participants"] == 1
    later = now + timedelta(seconds=config.zoom.participants_retry_s + 1)
    assert with_db(setup["home"], retry_due_reports, config, fetch, now=later) == 0  # not ready
    assert with_db(setup["home"], participant_reports.status_by_meeting) == {
        meeting["id"]: "pending"
    }
    later += timedelta(seconds=config.zoom.participants_retry_s + 1)
    assert with_db(setup["home"], retry_due_reports, config, fetch, now=later) == 1
    assert setup["state"].requests["participants"] == 3
    (meeting,) = meeting_rows(setup["home"])
    assert "Zoom participants report" not in (meeting["warnings"] or "")
    assert with_db(setup["home"], lambda db: db["participants"].count) == len(m.participants)
    assert with_db(setup["home"], participant_reports.status_by_meeting) == {}


def student_rows(home: Path, meeting_id: int) -> dict:
    """student id -> the meeting's report row (corrections applied), read anew."""
    return {r.student_id: r for r in with_db(home, meeting_report, meeting_id).students}


def csv_rows(home: Path, meeting_id: int, tmp_path: Path) -> dict[str, dict[str, str]]:
    """student id -> the meeting's CSV row as the report writer writes it."""
    import csv

    from rollcall.reports.csv_report import write_csv

    path = write_csv(with_db(home, meeting_report, meeting_id), tmp_path / "attendance.csv")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def explain(home: Path, meeting_id: int, student_id: str, monkeypatch, capsys) -> str:
    from rollcall.cli.main import main

    monkeypatch.setenv("ROLLCALL_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "250")
    capsys.readouterr()
    assert main(["explain", str(meeting_id), student_id]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_a_recognised_student_the_participants_report_does_not_list_needs_review(
    worker_setup, monkeypatch, capsys, tmp_path
):
    """Issue 15: the service asks Zoom for the participants report before analysing and
    the analysis uses it: a student recognised on camera whom the report does not list
    ends in needs review with the reason (explain, CSV); a listed student stays present."""
    from rollcall.bot.intake import Intake

    setup = worker_setup
    m = setup["state"].meetings[0]
    _, unlisted, listed = setup["meeting"].students  # the first never comes
    m.participants = [p for p in m.participants if p["name"] != unlisted]
    Intake(setup["config"]).record(
        event_of(short_completed(setup, download_token=m.download_access_token))
    )
    job = run_one_job(setup, worker_context(setup))
    assert job.state == jobs.DONE, job.error
    assert setup["state"].requests["participants"] == 1  # asked once, before the analysis
    (meeting,) = meeting_rows(setup["home"])
    rows = student_rows(setup["home"], meeting["id"])
    assert rows[unlisted].minutes == (0,) and rows[unlisted].review_minutes == (0,)
    assert rows[unlisted].status == "absent"
    assert rows[listed].minutes == (1,) and rows[listed].review_minutes == ()
    out = explain(setup["home"], meeting["id"], unlisted, monkeypatch, capsys)
    assert "needs review" in out and NOT_IN_REPORT in out
    assert NOT_IN_REPORT not in explain(setup["home"], meeting["id"], listed, monkeypatch, capsys)
    table = csv_rows(setup["home"], meeting["id"], tmp_path)
    assert table[unlisted]["review_minutes"] == "1" and table[unlisted]["present_minutes"] == "0"
    assert "?" in table[unlisted].values()
    assert table[listed]["present_minutes"] == "1" and table[listed]["review_minutes"] == "0"
    assert with_db(setup["home"], lambda db: db["participants"].count) == len(m.participants)
    assert "not in Zoom's participants list" in (meeting["warnings"] or "")


def test_a_late_participants_report_doubts_the_stored_minutes_once_and_corrections_win(
    worker_setup, monkeypatch, capsys
):
    """Issue 15: the report is not ready before the analysis, so the meeting is analysed
    without it; when it comes, the stored minutes it contradicts go to review in one
    transaction (a failure half-way changes nothing), only once, and a minute the
    instructor corrected meanwhile stays as corrected."""
    from rollcall.bot import participants as bot_participants
    from rollcall.bot.intake import Intake
    from rollcall.bot.participants import retry_due_reports
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.store import participant_reports
    from rollcall.store.corrections import add_correction, remove_correction

    setup = worker_setup
    config = setup["config"]
    m = setup["state"].meetings[0]
    _, unlisted, listed = setup["meeting"].students
    m.participants = [p for p in m.participants if p["name"] != unlisted]
    m.participants_not_ready = 1
    Intake(config).record(event_of(short_completed(setup, download_token=m.download_access_token)))
    job = run_one_job(setup, worker_context(setup))
    assert job.state == jobs.DONE, job.error
    (meeting,) = meeting_rows(setup["home"])
    assert student_rows(setup["home"], meeting["id"])[unlisted].minutes == (1,)  # face alone

    def presence(db):
        return [
            (r["student_pk"], r["minute"], r["present"], r["review"])
            for r in db.query("select * from presence order by student_pk, minute")
        ]

    before = with_db(setup["home"], presence)
    fetch = ZoomClient.from_config(config.zoom).participants_report
    later = datetime.now(UTC) + timedelta(seconds=config.zoom.participants_retry_s + 1)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:  # fails after the minutes were doubted
        patch.setattr(bot_participants, "store_participants", broken)
        assert with_db(setup["home"], retry_due_reports, config, fetch, now=later) == 0
    assert with_db(setup["home"], presence) == before  # rolled back as a whole
    assert with_db(setup["home"], participant_reports.status_by_meeting) == {
        meeting["id"]: "pending"
    }

    # meanwhile the instructor says the student was there
    with_db(
        setup["home"],
        add_correction,
        meeting["id"],
        unlisted,
        present=True,
        reason="seen in class",
        made_by="prof",
    )
    assert with_db(setup["home"], retry_due_reports, config, fetch, now=later) == 1
    after = with_db(setup["home"], presence)
    changed = [a for a, b in zip(after, before, strict=True) if a != b]
    pk = with_db(setup["home"], storage.get_student, COURSE, unlisted)["id"]
    assert changed == [(pk, 0, 0, 1)]  # the automatic result: needs review
    rows = student_rows(setup["home"], meeting["id"])
    assert rows[unlisted].minutes == (1,) and rows[unlisted].review_minutes == ()  # corrected
    assert rows[listed].minutes == (1,) and rows[listed].review_minutes == ()
    out = explain(setup["home"], meeting["id"], unlisted, monkeypatch, capsys)
    assert "corrected" in out and NOT_IN_REPORT in out
    # nothing is due any more: asked again, nothing would change twice
    later += timedelta(seconds=config.zoom.participants_retry_s + 1)
    assert with_db(setup["home"], retry_due_reports, config, fetch, now=later) == 0
    assert with_db(setup["home"], presence) == after
    # removing the correction restores the automatic result, with the report's doubt
    (correction,) = with_db(setup["home"], lambda db: list(db.query("select id from corrections")))
    with_db(setup["home"], remove_correction, correction["id"])
    rows = student_rows(setup["home"], meeting["id"])
    assert rows[unlisted].minutes == (0,) and rows[unlisted].review_minutes == (0,)
    evidence = with_db(setup["home"], storage.minute_evidence, meeting["id"], pk)
    assert [e["reason"].count(NOT_IN_REPORT) for e in evidence] == [1]


def test_participants_report_gives_up_after_the_configured_hours(tmp_path):
    from rollcall.bot.participants import retry_due_reports
    from rollcall.config import load_config
    from rollcall.store import participant_reports

    config = load_config(
        None,
        {"ROLLCALL_HOME": str(tmp_path), "ROLLCALL_ZOOM_PARTICIPANTS_GIVE_UP_H": "1"},
    )
    db = storage.open_db(tmp_path)
    storage.add_course(db, COURSE, "Biology")
    meeting_id = storage.upsert_meeting(
        db, {"course_id": COURSE, "source_key": "k", "title": "t", "status": "done"}
    )
    t0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
    participant_reports.schedule(
        db, meeting_id, "u==", None, "not ready", retry_s=600, give_up_h=1, now=t0
    )
    calls = []

    def not_ready(uuid):
        calls.append(uuid)
        raise RuntimeError("Meeting does not exist.")

    for minutes in range(10, 61, 10):
        retry_due_reports(db, config, not_ready, now=t0 + timedelta(minutes=minutes, seconds=1))
    assert len(calls) == 5  # every 10 minutes within the hour, then no more
    assert participant_reports.status_by_meeting(db) == {meeting_id: "missing"}
    warnings = db["meetings"].get(meeting_id)["warnings"]
    assert "Zoom participants report missing" in warnings and "6 attempts" in warnings
    retry_due_reports(db, config, not_ready, now=t0 + timedelta(hours=5))
    assert len(calls) == 5
    db.conn.close()


def test_worker_loop_survives_a_locked_database(worker_setup, monkeypatch):
    """Issue 16.14: another process holds SQLite's write lock longer than the busy
    timeout: the worker's claim fails with "database is locked", the worker logs it,
    backs off and goes on, and processes the job once the lock is free."""
    import sqlite3

    from rollcall.bot.intake import Intake
    from rollcall.service import worker
    from rollcall.store import db as store_db

    setup = worker_setup
    m = setup["state"].meetings[0]
    Intake(setup["config"]).record(
        event_of(short_completed(setup, download_token=m.download_access_token))
    )
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(worker, "LOOP_BACKOFF_S", (0.1, 0.2), raising=False)
    errors: list[str] = []
    got: list[bytes] = []
    ctx = worker_context(setup, copy_analysis(got))
    locker = sqlite3.connect(
        setup["home"] / storage.DB_NAME, isolation_level=None, check_same_thread=False
    )
    locker.execute("begin immediate")  # held for 2 s, as another process would

    def release() -> None:
        time.sleep(2.0)
        locker.execute("rollback")

    async def go() -> tuple[bool, list]:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.worker_loop(ctx, "w-locked", stop))
        releaser = asyncio.create_task(asyncio.to_thread(release))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not got:
            await asyncio.sleep(0.2)
        alive = not task.done()
        stop.set()
        await releaser
        await asyncio.wait_for(task, 10)
        return alive, errors

    class Grab(logging.Handler):
        def emit(self, record):
            if record.getMessage() == "worker error; backing off":
                errors.append(getattr(record, "error", ""))

    handler = Grab()
    logging.getLogger("rollcall.service.worker").addHandler(handler)
    try:
        alive, errors = asyncio.run(go())
    finally:
        logging.getLogger("rollcall.service.worker").removeHandler(handler)
        locker.close()
    assert errors and all("locked" in e for e in errors)
    assert alive and got == [setup["video"].read_bytes()]
    assert with_db(setup["home"], jobs.list_jobs)[0].state == jobs.DONE


def test_healthz_reports_a_stopped_worker(tmp_path):
    """A worker task that ended makes /healthz answer 503."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from rollcall.bot.intake import Intake
    from rollcall.config import load_config
    from rollcall.service.serve import ServiceState, build_app

    config = load_config(None, {"ROLLCALL_HOME": str(tmp_path / "home")})

    async def go() -> list[tuple[int, dict]]:
        from aiohttp import web

        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.start()

        async def dies():
            raise RuntimeError("database is locked")

        async def runs():
            await asyncio.sleep(60)

        running, dead = asyncio.create_task(runs()), asyncio.create_task(dies())
        await asyncio.sleep(0.05)
        state = ServiceState()
        runner = web.AppRunner(build_app(config, Intake(config), state, scheduler))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        out = []
        try:
            for workers in ([running], [running, dead]):
                state.workers = workers
                answer = await asyncio.to_thread(
                    requests.get, f"http://127.0.0.1:{port}/healthz", timeout=5
                )
                out.append((answer.status_code, answer.json()))
        finally:
            running.cancel()
            assert isinstance(dead.exception(), RuntimeError)
            await runner.cleanup()
            scheduler.shutdown(wait=False)
        return out

    (ok_status, ok), (bad_status, bad) = asyncio.run(go())
    assert ok_status == 200 and ok["workers"] == {"running": 1, "stopped": 0}
    assert bad_status == 503 and bad["status"] == "degraded"
    assert bad["workers"] == {"running": 1, "stopped": 1}


@pytest.mark.parametrize(
    "key, value",
    [
        ("ROLLCALL_JOBS_LEASE_S", "1e12"),
        ("ROLLCALL_JOBS_RETRY_BASE_S", "1e300"),
        ("ROLLCALL_JOBS_RETRY_MAX_S", "1e18"),
        ("ROLLCALL_ZOOM_PARTICIPANTS_RETRY_S", "1e12"),
    ],
)
def test_values_that_would_overflow_later_are_refused_at_load(tmp_path, key, value):
    """`[jobs] lease_s = 1e12` validated, then every claim overflowed in the worker."""
    from datetime import timedelta

    from rollcall.config import ConfigError, load_config

    with pytest.raises(OverflowError):
        datetime.now(UTC) + timedelta(seconds=float(value))  # what the worker would do
    with pytest.raises(ConfigError, match=key.split("_", 2)[2].lower()):
        load_config(None, {"ROLLCALL_HOME": str(tmp_path), key: value})
