"""Fault soak of the whole Zoom service (issue 16's proof).

    python benchmarks/soak.py --recordings 20 --seed 1 [--kills 5] [--clip-seconds 60]

Run by hand; ``tests/test_soak.py`` runs a short form (a few recordings, two
kills) with a fixed seed inside ``make test``. Needs the test data
(``ROLLCALL_MODELS_DIR``, ``ROLLCALL_MODELS_PACK``, ``ROLLCALL_FACES_DIR``).

One short class recording is rendered by the meeting generator (its ground
truth kept) and served by the fake Zoom (``tests/fakezoom``) as many Zoom
meetings, each with its own meeting id, file and download token. A real
``rollcall serve`` subprocess learns of them by signed webhooks and by polling,
downloads, analyses and reports them to the course's instructors through a
real SMTP server (aiosmtpd) and a chat webhook (``tests/http_receiver``).

Faults are drawn from the seed (:func:`make_plan`): per recording a download
that answers an HTML page, stops half-way, or answers 500/429 first; an
expired webhook download token (Zoom's sign-in page); the OAuth token revoked;
REST calls answered 429/500; the participants report not ready; the webhook
delivered again; the recording trashed (it must end cancelled, with nothing
stored) or trashed and recovered (it must end analysed). Between batches of
recordings the service is killed with SIGKILL (right after deliveries, in the
middle of a slow download, of an analysis or of sending a summary) and restarted; webhooks sent
while it is down are delivered again, as Zoom does. The mail server and the
chat webhook go down and come back up.

At the end (quiescence, with a bounded deadline) every recording must be
exactly one job and one meeting with the ground truth's attendance and Zoom's
participants report, or cancelled with nothing stored; every instructor must
have exactly one email and the chat exactly one message per analysed meeting;
no job, message or participants report may be left waiting; and SQLite's
``PRAGMA integrity_check`` must say ``ok``. :func:`format_table` prints the
numbers; :class:`SoakResult` holds them for the test's exact assertions.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402

from rollcall.store import jobs, outbox, storage  # noqa: E402
from rollcall.synthetic.meeting import GroundTruth  # noqa: E402
from tests.fakezoom import (  # noqa: E402
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeZoomServer,
)
from tests.fakezoom.events import (  # noqa: E402
    encode_body,
    recording_completed,
    recording_file,
    recording_recovered,
    recording_trashed,
    sign,
)
from tests.http_receiver import Receiver  # noqa: E402
from tests.service_process import (  # noqa: E402
    Service,
    fake_zoom_env,
    fake_zoom_state,
    free_port,
    participant,
)

COURSE = "BIO101"
TOPIC = "Biology 101 - soak {:03d}"
SECRET = "soak-webhook-secret"
INSTRUCTORS = ("prof@example.edu", "ta@example.edu")
FIRST_MEETING_ID = 86660000000

#: A recording's download misbehaves in one of these ways (or not at all).
DOWNLOAD_FAULTS = ("download_html", "download_truncated", "download_500", "download_429")
#: Faults drawn independently for each recording, with this probability.
FLAG_FAULTS = {
    "download_token_expired": 0.35,
    "oauth_token_revoked": 0.25,
    "rest_429": 0.25,
    "rest_500": 0.25,
    "participants_not_ready": 0.35,
    "webhook_redelivered": 0.4,
}
KILL_MOMENTS = ("between_deliveries", "mid_download", "mid_analysis", "mid_sending")
NORMAL, TRASHED, RECOVERED = "normal", "trashed", "trashed_recovered"


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class RecordingPlan:
    index: int
    fate: str  # NORMAL, TRASHED (must end cancelled) or RECOVERED (must end done)
    faults: tuple[str, ...]
    slow: bool = False  # a slow download, so that a kill lands in the middle of it

    @property
    def uuid(self) -> str:
        return f"soak{self.index:03d}+uuid=="

    @property
    def meeting_id(self) -> int:
        return FIRST_MEETING_ID + self.index

    @property
    def topic(self) -> str:
        return TOPIC.format(self.index)

    @property
    def file_id(self) -> str:
        return f"soak-file-{self.index:03d}"


@dataclass(frozen=True)
class KillPlan:
    after_batch: int
    moment: str  # one of KILL_MOMENTS
    delay_s: float  # after the moment is reached
    down_s: float  # before the restart


@dataclass(frozen=True)
class OutagePlan:
    target: str  # "mail" or "chat"
    after_batch: int
    down_s: float


@dataclass(frozen=True)
class SoakPlan:
    seed: int
    recordings: tuple[RecordingPlan, ...]
    batches: tuple[tuple[int, ...], ...]  # recording indexes announced together
    kills: tuple[KillPlan, ...]
    outages: tuple[OutagePlan, ...]

    def faults(self) -> Counter:
        counts: Counter = Counter()
        for rec in self.recordings:
            counts.update(rec.faults)
            if rec.fate != NORMAL:
                counts["recording_" + rec.fate] += 1
        return counts

    def expected_done(self) -> list[RecordingPlan]:
        return [r for r in self.recordings if r.fate != TRASHED]


def make_plan(n_recordings: int, n_kills: int, seed: int) -> SoakPlan:
    """Faults, kills and outages drawn from ``seed``: the same seed, the same soak."""
    if n_recordings < n_kills + 1:
        raise ValueError("need at least one recording per batch (kills + 1)")
    rng = random.Random(seed)
    indexes = list(range(n_recordings))
    order = indexes[:]
    rng.shuffle(order)
    n_trashed = max(1, round(n_recordings * 0.1)) if n_recordings >= 3 else 0
    n_recovered = max(1, round(n_recordings * 0.15)) if n_recordings >= 3 else 0
    fates = {i: NORMAL for i in indexes}
    for i in order[:n_trashed]:
        fates[i] = TRASHED
    for i in order[n_trashed : n_trashed + n_recovered]:
        fates[i] = RECOVERED
    size, extra = divmod(n_recordings, n_kills + 1)
    batches, start = [], 0
    for b in range(n_kills + 1):
        end = start + size + (1 if b < extra else 0)
        batches.append(tuple(indexes[start:end]))
        start = end
    cycle = list(KILL_MOMENTS)
    rng.shuffle(cycle)
    moments = [cycle[k % len(cycle)] for k in range(n_kills)]
    kills = []
    slow: set[int] = set()
    for k, moment in enumerate(moments):
        eligible = [i for i in batches[k] if fates[i] == NORMAL]
        if moment == "mid_download":
            if not eligible:
                moment = "mid_analysis"
            else:
                slow.add(eligible[-1])
        kills.append(
            KillPlan(
                after_batch=k,
                moment=moment,
                delay_s=round(rng.uniform(0.2, 1.2), 2),
                down_s=round(rng.uniform(0.5, 2.0), 2),
            )
        )
    recordings = []
    for i in indexes:
        faults = [f for f, p in FLAG_FAULTS.items() if rng.random() < p]
        download = rng.choice((None, *DOWNLOAD_FAULTS))
        if download is not None and i not in slow:
            faults.append(download)
        recordings.append(RecordingPlan(i, fates[i], tuple(sorted(faults)), slow=i in slow))
    outages = []
    for target in ("mail", "chat"):
        for _ in range(max(1, n_kills // 2)):
            outages.append(
                OutagePlan(target, rng.randrange(n_kills + 1), round(rng.uniform(3.0, 10.0), 1))
            )
    return SoakPlan(seed, tuple(recordings), tuple(batches), tuple(kills), tuple(outages))


# ---------------------------------------------------------------- the class recording


@dataclass(frozen=True)
class Clip:
    """The rendered class every fake Zoom meeting serves, its ground truth and who is
    enrolled (photos other than the ones shown in the video)."""

    video: Path
    truth: GroundTruth
    students: tuple[str, ...]
    photos: dict[str, tuple[Path, ...]]


def render_clip(work: Path, faces_dir: Path, *, seed: int = 33, duration_s: float = 60.0) -> Clip:
    from rollcall.synthetic.evaluation import build_test_meeting, save_photos
    from rollcall.synthetic.meeting import render_meeting

    meeting = build_test_meeting(
        faces_dir,
        seed=seed,
        n_students=3,
        n_absent=1,
        n_strangers=0,
        duration_s=duration_s,
        crf=30,
    )
    work.mkdir(parents=True, exist_ok=True)
    video = work / "class.mp4"
    truth = render_meeting(meeting.script, video)
    photos = {
        sid: tuple(save_photos(images, work / "photos" / sid))
        for sid, images in meeting.enroll.items()
    }
    return Clip(video, truth, tuple(meeting.students), photos)


def enroll(home: Path, clip: Clip, env: dict[str, str]) -> None:
    from rollcall.config import load_config
    from rollcall.enrollment.enroll import enroll_photos
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

    config = load_config(None, env)
    models = resolve_face_models(config, progress=False)
    pm = make_plugin_manager(config, models)
    db = storage.open_db(home)
    try:
        storage.add_course(db, COURSE, "Biology")
        for sid, paths in clip.photos.items():
            enroll_photos(db, pm, models.model_key, COURSE, sid, list(paths), config.enrollment)
    finally:
        db.conn.close()


# ---------------------------------------------------------------- the result


@dataclass
class SoakResult:
    recordings: int = 0
    done: int = 0
    cancelled: int = 0
    failed: int = 0
    correct_attendance: int = 0
    faults: Counter = field(default_factory=Counter)
    kills: Counter = field(default_factory=Counter)  # by the moment reached
    outages: Counter = field(default_factory=Counter)
    deliveries_refused: int = 0  # webhook deliveries that found the service down
    emails_received: int = 0  # (recipient, message) pairs
    chat_received: int = 0
    messages_expected: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    integrity: str = ""
    exit_code: int | None = None
    elapsed_s: float = 0.0

    @property
    def messages_sent(self) -> int:
        return self.emails_received + self.chat_received

    def summary(self) -> dict[str, Any]:
        """The numbers a run is judged by (what the test compares exactly)."""
        return {
            "recordings": self.recordings,
            "done": self.done,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "correct_attendance": self.correct_attendance,
            "faults": dict(sorted(self.faults.items())),
            "kills": dict(sorted(self.kills.items())),
            "outages": dict(sorted(self.outages.items())),
            "messages_sent": self.messages_sent,
            "messages_expected": self.messages_expected,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "stuck": self.stuck,
            "wrong": self.wrong,
            "integrity": self.integrity,
            "exit_code": self.exit_code,
        }


def format_table(result: SoakResult) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items()))
    kills = ", ".join(f"{k} {v}" for k, v in sorted(result.kills.items()))
    outages = ", ".join(f"{k} {v}" for k, v in sorted(result.outages.items()))
    rows = [
        ("recordings", str(result.recordings)),
        (
            "  done / cancelled / failed",
            f"{result.done} / {result.cancelled} / {result.failed}",
        ),
        ("  correct attendance", f"{result.correct_attendance} of {result.done}"),
        ("faults injected", f"{sum(result.faults.values())} ({faults})"),
        ("SIGKILLs", f"{sum(result.kills.values())} ({kills})"),
        ("outages (down, up)", f"{sum(result.outages.values())} ({outages})"),
        (
            "webhook attempts refused",
            f"{result.deliveries_refused} (service down; Zoom delivers again)",
        ),
        (
            "messages sent / expected",
            f"{result.messages_sent} / {result.messages_expected} "
            f"({result.emails_received} emails to instructors, {result.chat_received} chat)",
        ),
        ("lost", str(len(result.lost))),
        ("duplicated", str(len(result.duplicated))),
        ("wrong", str(len(result.wrong))),
        ("stuck", str(len(result.stuck))),
        ("integrity_check", result.integrity),
        ("serve exit code (SIGTERM)", str(result.exit_code)),
        ("elapsed", f"{result.elapsed_s:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    for title, items in (
        ("lost", result.lost),
        ("duplicated", result.duplicated),
        ("wrong", result.wrong),
        ("stuck", result.stuck),
    ):
        lines += [f"{title}: {item}" for item in items]
    return "\n".join(lines)


# ---------------------------------------------------------------- the world around the service


class MailServer:
    """aiosmtpd on a fixed port that can go down and come back up; messages accumulate."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[list[str], email.message.EmailMessage]] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    @property
    def up(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class ChatServer:
    """The chat webhook (tests/http_receiver.py) on a fixed port that can go down and up."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict]] = []
        self._receiver: Receiver | None = None

    @property
    def up(self) -> bool:
        return self._receiver is not None

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/T000/B000/soak"

    def start(self) -> None:
        receiver = Receiver()
        receiver.port = self.port
        receiver.requests = self.received  # one list across restarts
        receiver.__enter__()
        self._receiver = receiver

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.__exit__(None, None, None)
            self._receiver = None


@dataclass
class Delivery:
    """A webhook Zoom has to deliver (again, until it is answered 200)."""

    recording: int
    body: dict


def with_db(home: Path, fn: Callable[[Any], Any]) -> Any:
    db = storage.open_db(home)
    try:
        return fn(db)
    finally:
        db.conn.close()


def on_loop(zoom: FakeZoomServer, fn: Callable[[], None]) -> None:
    """Change the fake's state in its own thread (it is read there)."""
    import asyncio

    async def call() -> None:
        fn()

    assert zoom._loop is not None
    asyncio.run_coroutine_threadsafe(call(), zoom._loop).result(10)


class Soak:
    """One run of a :class:`SoakPlan` in ``work``."""

    def __init__(
        self, plan: SoakPlan, clip: Clip, work: Path, base_env: dict[str, str], *, workers: int = 1
    ) -> None:
        self.plan, self.clip, self.work = plan, clip, work
        self.home = work / "home"
        self.log = work / "serve.log"
        self.base_env = base_env
        self.workers = workers
        self.rng = random.Random(plan.seed + 1)
        self.result = SoakResult(recordings=len(plan.recordings))
        self.pending: list[Delivery] = []
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.service: Service | None = None
        self.webhook_url = ""
        self.state = fake_zoom_state(token_lifetime=30.0)
        self.parked: dict[int, FakeMeeting] = {}  # trashed: not listed by the API
        self.mail = MailServer(free_port())
        self.chat = ChatServer(free_port())

    # -- the service ---------------------------------------------------------

    def env(self, zoom: FakeZoomServer) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCALL_")}
        env.update(self.base_env)
        env.update(
            {
                "ROLLCALL_HOME": str(self.home),
                "ROLLCALL_MODELS_ALLOW_DOWNLOAD": "false",
                "ROLLCALL_LOGGING_FORMAT": "json",
                "ROLLCALL_ANALYSIS_WORKERS": str(self.workers),
                **fake_zoom_env(zoom, COURSE),
                "ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN": SECRET,
                "ROLLCALL_ZOOM_POLL_MINUTES": "1",
                "ROLLCALL_ZOOM_PARTICIPANTS_RETRY_S": "1",
                "ROLLCALL_JOBS_RETRY_BASE_S": "1",
                "ROLLCALL_JOBS_RETRY_MAX_S": "4",
                "ROLLCALL_JOBS_LEASE_S": "5",
                "ROLLCALL_SMTP_HOST": "127.0.0.1",
                "ROLLCALL_SMTP_PORT": str(self.mail.port),
                "ROLLCALL_SMTP_SECURITY": "none",
                "ROLLCALL_SMTP_FROM_ADDRESS": "rollcall@example.edu",
                "ROLLCALL_SMTP_TIMEOUT_S": "5",
                "ROLLCALL_NOTIFY_COURSES": json.dumps(
                    [
                        {
                            "course": COURSE,
                            "emails": list(INSTRUCTORS),
                            "slack_webhook": self.chat.url(),
                        }
                    ]
                ),
                "ROLLCALL_NOTIFY_SEND_INTERVAL_S": "1",
                "ROLLCALL_NOTIFY_RETRY_BASE_S": "1",
                "ROLLCALL_NOTIFY_RETRY_MAX_S": "3",
                "ROLLCALL_NOTIFY_MAX_ATTEMPTS": "40",
            }
        )
        return env

    def start_service(self, env: dict[str, str]) -> None:
        self.service = Service(env, free_port(), self.log).start()
        self.webhook_url = self.service.url("/zoom/webhook")
        self.deliver_pending()

    def kill(self, moment: str) -> None:
        assert self.service is not None
        self.service.kill()
        self.service = None
        self.result.kills[moment] += 1

    # -- Zoom's side -----------------------------------------------------------

    def add_meeting(self, zoom: FakeZoomServer, rec: RecordingPlan) -> FakeMeeting:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        minutes = max(1, round(self.clip.truth.duration_s / 60))
        meeting = FakeMeeting(
            uuid=rec.uuid,
            id=rec.meeting_id,
            host_id="host-1",
            topic=rec.topic,
            start_time=start,
            duration=minutes,
            host_email="teacher@example.edu",
            files=[FakeRecordingFile(rec.file_id)],
            participants=[
                participant(str(i), sid, start, minutes) for i, sid in enumerate(self.clip.students)
            ],
            participants_not_ready=2 if "participants_not_ready" in rec.faults else 0,
        )
        served = FakeFile(self.clip.video)
        if rec.slow:
            served.behaviour, served.slow_chunk, served.slow_delay = "slow_body", 64 * 1024, 0.25
        elif "download_html" in rec.faults:
            served.behaviour, served.fail_times = "html_n_times_then_ok", 1
        elif "download_truncated" in rec.faults:
            served.behaviour, served.fail_times = "truncated_body", 1
            served.truncate_at = self.clip.video.stat().st_size // 2
        elif "download_500" in rec.faults:
            served.behaviour, served.fail_times, served.fail_status = "fail_n_times_then_ok", 2, 500
        elif "download_429" in rec.faults:
            served.behaviour, served.fail_times = "fail_n_times_then_ok", 1
            served.fail_status, served.retry_after = 429, 1

        def change() -> None:
            self.state.files[rec.file_id] = served
            self.state.meetings.append(meeting)
            if "download_token_expired" in rec.faults:
                self.state.expired_download_tokens.add(meeting.download_access_token)
            if "oauth_token_revoked" in rec.faults:
                self.state.revoke_tokens()
            if "rest_429" in rec.faults:
                self.state.fail_next_rest(2, 429, retry_after=1)
            if "rest_500" in rec.faults:
                self.state.fail_next_rest(1, 500, retry_after=None)

        on_loop(zoom, change)
        return meeting

    def files_of(self, zoom: FakeZoomServer, rec: RecordingPlan) -> list[dict]:
        return [
            recording_file(
                rec.file_id,
                rec.uuid,
                download_url=zoom.download_url(rec.file_id),
                file_size=self.clip.video.stat().st_size,
            )
        ]

    def announce(self, zoom: FakeZoomServer, rec: RecordingPlan) -> None:
        meeting = self.add_meeting(zoom, rec)
        body = recording_completed(
            rec.uuid,
            rec.meeting_id,
            topic=rec.topic,
            host_email=meeting.host_email,
            files=self.files_of(zoom, rec),
            download_token=meeting.download_access_token,
            start_time=meeting.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        times = 2 if "webhook_redelivered" in rec.faults else 1
        self.pending += [Delivery(rec.index, body) for _ in range(times)]
        if rec.fate != NORMAL:
            self.pending.append(
                Delivery(rec.index, recording_trashed(rec.uuid, rec.meeting_id, topic=rec.topic))
            )
            on_loop(zoom, lambda: self.park(rec))
        if rec.fate == RECOVERED:
            wait = self.rng.uniform(2.0, 8.0)
            self.timers.append((time.monotonic() + wait, lambda: self.recover(zoom, rec)))
        self.deliver_pending()

    def park(self, rec: RecordingPlan) -> None:
        meeting = next(m for m in self.state.meetings if m.uuid == rec.uuid)
        self.state.meetings.remove(meeting)
        self.parked[rec.index] = meeting

    def recover(self, zoom: FakeZoomServer, rec: RecordingPlan) -> None:
        on_loop(zoom, lambda: self.state.meetings.append(self.parked.pop(rec.index)))
        body = recording_recovered(
            rec.uuid, rec.meeting_id, topic=rec.topic, files=self.files_of(zoom, rec)
        )
        self.pending.append(Delivery(rec.index, body))
        self.deliver_pending()

    def deliver_pending(self) -> None:
        """Deliver what Zoom still has to, in order per recording; a delivery that is
        not answered 200 (the service is down, say) is tried again later."""
        blocked: set[int] = set()
        left = []
        for delivery in self.pending:
            if delivery.recording in blocked or not self.post(delivery.body):
                blocked.add(delivery.recording)
                left.append(delivery)
        self.pending = left

    def post(self, body: dict) -> bool:
        """One delivery to where the service listens (or listened, before it was killed)."""
        raw = encode_body(body)
        headers = {"content-type": "application/json", **sign(SECRET, int(time.time()), raw)}
        try:
            answer = requests.post(self.webhook_url, data=raw, headers=headers, timeout=10)
        except requests.RequestException:
            self.result.deliveries_refused += 1
            return False
        return answer.status_code == 200

    # -- time passing ----------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, action in due:
            action()
        if self.pending and self.service is not None:
            self.deliver_pending()

    def outage(self, target: str, down_s: float) -> None:
        server = self.mail if target == "mail" else self.chat
        if server.up:
            server.stop()
            self.result.outages[target] += 1
        self.timers.append((time.monotonic() + down_s, self.restore(server)))

    @staticmethod
    def restore(server: MailServer | ChatServer) -> Callable[[], None]:
        def up() -> None:
            if not server.up:
                server.start()

        return up

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick()
            if predicate():
                return True
            time.sleep(0.2)
        return False

    def sleep(self, seconds: float) -> None:
        self.wait(lambda: False, seconds)

    def states_of(self, uuids: set[str]) -> list[str]:
        def query(db) -> list[str]:
            return [j.state for j in jobs.list_jobs(db) if j.meeting_uuid in uuids]

        return with_db(self.home, query)

    def reach(self, kill: KillPlan, batch: tuple[int, ...]) -> bool:
        """Wait for the kill's moment: a slow download under way, an analysis running,
        or (between deliveries) now."""
        if kill.moment == "between_deliveries":
            return True
        if kill.moment == "mid_download":
            slow = [self.plan.recordings[i] for i in batch if self.plan.recordings[i].slow]
            uuids = {r.uuid for r in slow}
            files = {r.file_id for r in slow}

            def downloading() -> bool:
                started = any(
                    c.match.get("file_id") in files for c in self.state.calls_to("download")
                )
                return started and jobs.DOWNLOADING in self.states_of(uuids)

            return self.wait(downloading, 120)
        if kill.moment == "mid_sending":

            def sending() -> bool:
                query = "select count(*) from outbox where state = 'sending'"
                return with_db(self.home, lambda db: db.execute(query).fetchone()[0] > 0)

            return self.wait(sending, 120)
        uuids = {r.uuid for r in self.plan.recordings}
        return self.wait(lambda: jobs.ANALYZING in self.states_of(uuids), 120)

    # -- quiescence and the verdict --------------------------------------------

    def unfinished(self) -> list[str]:
        """What keeps the system from being quiet (empty when it is)."""
        left = [f"webhook for recording {d.recording} not delivered" for d in self.pending]
        left += [f"{len(self.timers)} timed event(s) to come"] if self.timers else []
        uuids = {r.uuid for r in self.plan.recordings}

        def query(db) -> list[str]:
            out = []
            seen = {j.meeting_uuid for j in jobs.list_jobs(db)}
            out += [f"no job for {u}" for u in sorted(uuids - seen)]
            out += [
                f"job {j.id} ({j.topic}) {j.state}"
                for j in jobs.list_jobs(db)
                if j.state not in jobs.TERMINAL
            ]
            out += [
                f"outbox message {r['id']} (meeting {r['meeting_id']}, {r['channel']}) {r['state']}"
                for r in db.query("select * from outbox where state in ('pending', 'sending')")
            ]
            out += [
                f"participants report of meeting {r['meeting_id']} {r['state']}"
                for r in db.query("select * from participant_reports where state = 'pending'")
            ]
            return out

        return left + with_db(self.home, query)

    def verdict(self) -> None:
        from rollcall.reports.results import meeting_report
        from rollcall.synthetic.evaluation import score_report

        result = self.result
        n_students = len(self.clip.students)
        minutes = len(next(iter(self.clip.truth.presence_matrix(30.0).values()), [])) or 1
        db = storage.open_db(self.home)
        try:
            result.integrity = db.execute("pragma integrity_check").fetchone()[0]
            all_jobs = jobs.list_jobs(db)
            for rec in self.plan.recordings:
                name = f"recording {rec.index} ({rec.fate})"
                its_jobs = [j for j in all_jobs if j.meeting_uuid == rec.uuid]
                if len(its_jobs) > 1:
                    result.duplicated.append(f"{name}: {len(its_jobs)} jobs")
                states = [j.state for j in its_jobs]
                result.done += states[:1] == [jobs.DONE]
                result.cancelled += states[:1] == [jobs.CANCELLED]
                result.failed += states[:1] == [jobs.FAILED]
                want = jobs.CANCELLED if rec.fate == TRASHED else jobs.DONE
                if states[:1] != [want]:
                    errors = "; ".join(j.error or "" for j in its_jobs)
                    result.lost.append(f"{name}: job {states or 'missing'}, not {want} {errors}")
                meetings = list(
                    db.query(
                        "select * from meetings where source_key = ?",
                        [f"zoom:{rec.uuid}:{rec.file_id}"],
                    )
                )
                done = [m for m in meetings if m["status"] == "done"]
                if len(meetings) > 1:
                    result.duplicated.append(f"{name}: {len(meetings)} meetings")
                if want == jobs.CANCELLED:
                    if done:
                        result.wrong.append(f"{name}: attendance stored although trashed")
                    self.check_messages(name, rec, expected=0)
                    continue
                self.check_messages(name, rec, expected=1)
                if len(done) != 1:
                    continue
                meeting = done[0]
                if its_jobs and its_jobs[0].result_meeting_id != meeting["id"]:
                    result.wrong.append(
                        f"{name}: job points to meeting {its_jobs[0].result_meeting_id}"
                    )
                rows = db["presence"].count_where("meeting_id = ?", [meeting["id"]])
                if rows != n_students * minutes:
                    result.duplicated.append(f"{name}: {rows} presence rows")
                score = score_report(meeting_report(db, meeting["id"]), self.clip.truth, 30.0)
                participants = db["participants"].count_where("meeting_id = ?", [meeting["id"]])
                if score.false_present or score.missed or score.absent_marked:
                    result.wrong.append(f"{name}: attendance differs from the truth: {score}")
                elif participants != len(self.clip.students):
                    result.wrong.append(f"{name}: {participants} participants stored")
                else:
                    result.correct_attendance += 1
                outbox_rows = outbox.list_messages(db, meeting["id"])
                by_channel = Counter(r["channel"] for r in outbox_rows)
                if any(n > 1 for n in by_channel.values()):
                    result.duplicated.append(f"{name}: outbox {dict(by_channel)}")
        finally:
            db.conn.close()
        result.messages_expected = len(self.plan.expected_done()) * (len(INSTRUCTORS) + 1)
        result.faults = self.plan.faults()

    def check_messages(self, name: str, rec: RecordingPlan, *, expected: int) -> None:
        topic = re.escape(rec.topic)
        for who in INSTRUCTORS:
            got = sum(
                1
                for rcpts, message in self.mail.received
                if who in rcpts and re.search(topic, str(message["Subject"]))
            )
            self.result.emails_received += got
            self.count(f"{name}: {got} emails to {who}", got, expected)
        got = sum(1 for _, body in self.chat.received if re.search(topic, json.dumps(body)))
        self.result.chat_received += got
        self.count(f"{name}: {got} chat messages", got, expected)

    def count(self, what: str, got: int, expected: int) -> None:
        if got > expected:
            self.result.duplicated.append(what)
        elif got < expected:
            self.result.lost.append(what)

    # -- the run ---------------------------------------------------------------

    def run(self, *, deadline_s: float | None = None) -> SoakResult:
        started = time.monotonic()
        enroll(self.home, self.clip, self.base_env)
        # a client killed mid-download makes the fake Zoom log a traceback: expected here
        quiet = logging.getLogger("aiohttp.server")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        self.mail.start()
        self.chat.start()
        zoom = FakeZoomServer(self.state).start()
        try:
            env = self.env(zoom)
            self.start_service(env)
            down_s = 0.0
            for b, batch in enumerate(self.plan.batches):
                # after a kill the batch is announced while the service is down: Zoom's
                # deliveries fail and are made again once it is back
                for i in batch:
                    self.announce(zoom, self.plan.recordings[i])
                for outage in self.plan.outages:
                    if outage.after_batch == b:
                        self.outage(outage.target, outage.down_s)
                if self.service is None:
                    self.sleep(down_s)
                    self.start_service(env)
                kill = next((k for k in self.plan.kills if k.after_batch == b), None)
                if kill is None:
                    continue
                moment = kill.moment if self.reach(kill, batch) else "moment_not_reached"
                if moment != "mid_sending":  # a message is rendered and sent in a second
                    self.sleep(kill.delay_s)
                self.kill(moment)
                down_s = kill.down_s
            limit = deadline_s or 90.0 + 30.0 * len(self.plan.recordings)
            if not self.wait(lambda: not self.unfinished(), limit):
                self.result.stuck = self.unfinished()
            assert self.service is not None
            self.result.exit_code = self.service.stop()
            self.service = None
            self.verdict()
        finally:
            if self.service is not None:
                self.service.kill()
            zoom.stop()
            self.mail.stop()
            self.chat.stop()
            quiet.setLevel(level)
        self.result.elapsed_s = time.monotonic() - started
        return self.result


def run_soak(
    plan: SoakPlan, clip: Clip, work: Path, base_env: dict[str, str], *, workers: int = 1
) -> SoakResult:
    """Run ``plan`` against a fresh data directory in ``work``; the numbers."""
    return Soak(plan, clip, work, base_env, workers=workers).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, help="SIGKILLs (default: recordings // 4, >= 2)")
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1, help="[analysis] workers")
    parser.add_argument("--work", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    kills = args.kills if args.kills is not None else max(2, args.recordings // 4)
    for var in ("ROLLCALL_MODELS_DIR", "ROLLCALL_FACES_DIR"):
        if not os.environ.get(var):
            parser.error(f"set {var} (the test data, see README)")
    base_env = {
        "ROLLCALL_MODELS_DIR": os.environ["ROLLCALL_MODELS_DIR"],
        "ROLLCALL_MODELS_PACK": os.environ.get("ROLLCALL_MODELS_PACK", "lite"),
    }
    plan = make_plan(args.recordings, kills, args.seed)
    with tempfile.TemporaryDirectory(prefix="rollcall-soak-") as tmp:
        work = args.work or Path(tmp)
        clip = render_clip(
            work / "clip", Path(os.environ["ROLLCALL_FACES_DIR"]), duration_s=args.clip_seconds
        )
        result = run_soak(plan, clip, work / "run", base_env, workers=args.workers)
        print(format_table(result))
        if args.json:
            args.json.write_text(json.dumps(result.summary(), indent=2) + "\n")
        if result.stuck or result.lost or result.duplicated or result.wrong:
            print(f"log: {work / 'run' / 'serve.log'}" if args.work else "")
    bad = result.lost or result.duplicated or result.stuck or result.wrong
    return 1 if bad or result.integrity != "ok" or result.exit_code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
