"""Worker machines: `rollcall serve` coordinates, `rollcall worker` processes analyse.

Everything is real: a redis-server started here on 127.0.0.1 (a free port, its
data in a temporary folder, append-only file on so that a restart keeps the
queues), `rollcall serve` and `rollcall worker` as subprocesses, the fake Zoom
serving a rendered class. The workers get a data directory of their own: they
never see the coordinator's database or disk. Each recording must end as one
meeting with the right attendance, whatever is killed or restarted meanwhile,
and a job cancelled while a worker analyses it gets nothing stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from rollcall.cluster import messages
from rollcall.config import ConfigError, load_config
from rollcall.store import jobs, storage
from tests.test_service import (  # noqa: F401 - fixtures used by name
    Service,
    check_result,
    deliver,
    free_port,
    job_states,
    recorded_class,
    wait_for,
    webhook_body,
    with_db,
    zoom_setup,
)

CLUSTER_SECRET = "cluster-secret-0123456789"
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None and not os.environ.get("CI"),
    reason="redis-server is not installed (.ci/run installs it)",
)


class Redis:
    """A redis-server of our own on 127.0.0.1; restart() keeps its data."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=open(self.folder / "redis.log", "ab"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._pings(client), 20, "redis-server to start")
        return self

    @staticmethod
    def _pings(client) -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)

    def restart(self, down_s: float = 2.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class Worker:
    """`rollcall worker` in a subprocess, with a data directory of its own."""

    def __init__(self, env: dict[str, str], name: str, folder: Path, concurrency: int = 1):
        self.name, self.log = name, folder / f"worker-{name}.log"
        self.env = dict(env, ROLLCALL_HOME=str(folder / f"worker-{name}"))
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rollcall", "worker", "--name", self.name]
            + ["--concurrency", str(self.concurrency)],
            env=self.env,
            stdout=open(self.log, "ab"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "rollcall worker ready" in self.log.read_text(), 180, "worker", self.log)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(60)
        return self.proc.returncode if self.proc else None


@pytest.fixture
def cluster(zoom_setup, tmp_path):  # noqa: F811 - the fixture imported above
    broker = Redis(tmp_path / "redis").start()
    env = dict(
        zoom_setup["env"],
        ROLLCALL_ZOOM_POLL_MINUTES="0",
        ROLLCALL_CLUSTER_BROKER_URL=broker.url,
        ROLLCALL_CLUSTER_SECRET=CLUSTER_SECRET,
        ROLLCALL_CLUSTER_WORKER_HEARTBEAT_S="3",
        ROLLCALL_CLUSTER_TASK_TIMEOUT_S="240",
    )
    # a worker knows the broker, the secret and its model pack: no Zoom, no database
    worker_env = {
        k: v
        for k, v in env.items()
        if not k.startswith(("ROLLCALL_ZOOM_", "ROLLCALL_HOME", "ROLLCALL_JOBS_"))
    }
    started: list[Worker] = []

    def worker(name: str, concurrency: int = 1) -> Worker:
        started.append(Worker(worker_env, name, tmp_path, concurrency).start())
        return started[-1]

    try:
        yield {**zoom_setup, "env": env, "broker": broker, "worker": worker, "tmp": tmp_path}
    finally:
        for w in started:
            w.stop()
        broker.stop()


def worker_of_running_job(service: Service) -> str | None:
    """The worker /healthz names for the one task out, once one took it."""
    try:
        tasks = requests.get(service.url("/healthz"), timeout=5).json()["cluster"]["tasks"]
    except (requests.RequestException, KeyError, ValueError):
        return None
    return tasks[0]["worker"] if tasks and tasks[0]["worker"] else None


def the_job(home: Path) -> jobs.Job:
    (job,) = with_db(home, jobs.list_jobs)
    return job


def start_and_deliver(cluster, env: dict[str, str] | None = None) -> Service:
    service = Service(env or cluster["env"], free_port(), cluster["log"]).start()
    body = webhook_body(cluster)
    assert asyncio.run(deliver(service.url("/zoom/webhook"), body, 1)) == [200]
    return service


def test_a_worker_machine_analyses_the_recording_and_the_coordinator_stores_it(cluster, config):
    worker = cluster["worker"]("w1")
    service = start_and_deliver(cluster)
    try:
        taken = wait_for(lambda: worker_of_running_job(service), 60, "a worker", cluster["log"])
        assert taken == "w1"

        def listing() -> str:
            return subprocess.run(
                [sys.executable, "-m", "rollcall", "jobs", "list"],
                env=dict(cluster["env"], COLUMNS="250"),
                capture_output=True,
                text=True,
                check=True,
            ).stdout

        # rollcall jobs list shows which worker has (or had) the job
        wait_for(lambda: "w1" in listing(), 60, "the worker in rollcall jobs list")
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 240, "done", cluster["log"])
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert health["cluster"]["connected"] and health["cluster"]["tasks"] == []
        assert CLUSTER_SECRET not in json.dumps(health)
    finally:
        assert service.stop() == 0
    check_result(cluster, config)
    job = the_job(cluster["home"])
    assert job.payload["worker"] == "w1" and job.attempts == 0
    log = cluster["log"].read_text()
    assert "downloading recording" not in log  # the coordinator downloaded nothing
    assert "analysed by a cluster worker" in log
    assert CLUSTER_SECRET not in log
    # the worker kept nothing and never had a database
    worker_home = Path(worker.env["ROLLCALL_HOME"])
    assert not list(worker_home.rglob("*.mp4")) and not list(worker_home.rglob("*.db"))
    assert "task done" in worker.log.read_text()


def test_worker_killed_mid_analysis_another_finishes_it_once(cluster, config):
    workers = {name: cluster["worker"](name) for name in ("w1", "w2")}
    service = start_and_deliver(cluster)
    try:
        taken = wait_for(lambda: worker_of_running_job(service), 60, "a worker", cluster["log"])
        wait_for(lambda: job_states(cluster["home"]) == ["analyzing"], 30, "analyzing")
        time.sleep(0.5)  # downloaded, in the middle of the frames (about 3 s of analysis)
        assert "task done" not in workers[taken].log.read_text()
        workers[taken].kill()
        other = next(name for name in workers if name != taken)
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 240, "done", cluster["log"])
    finally:
        assert service.stop() == 0
    check_result(cluster, config)
    job = the_job(cluster["home"])
    assert job.payload["worker"] == other and job.attempts == 0
    assert "task done" in workers[other].log.read_text()


def test_broker_restart_loses_nothing_and_duplicates_nothing(cluster, config):
    worker = cluster["worker"]("w1")
    service = start_and_deliver(cluster)
    try:
        wait_for(lambda: worker_of_running_job(service), 60, "a worker", cluster["log"])
        cluster["broker"].restart(down_s=3.0)  # while the worker analyses
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 240, "done", cluster["log"])
    finally:
        assert service.stop() == 0
    check_result(cluster, config)
    assert the_job(cluster["home"]).payload["worker"] == "w1"
    assert "broker unreachable" in cluster["log"].read_text()
    assert worker.log.read_text().count("task done") == 1


def test_coordinator_restarts_while_a_worker_has_the_job_finish_it_once(cluster, config):
    """SIGTERM (the job goes back to the queue), then kill -9 (its lease expires)."""
    worker = cluster["worker"]("w1")
    env = dict(cluster["env"], ROLLCALL_SERVER_SHUTDOWN_GRACE_S="0")
    service = start_and_deliver(cluster, env)
    wait_for(lambda: worker_of_running_job(service), 60, "a worker", cluster["log"])
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0  # no thread is left waiting for the worker
    assert job_states(cluster["home"]) == ["queued"]
    service = Service(env, free_port(), cluster["log"]).start()
    wait_for(lambda: worker_of_running_job(service), 60, "a worker again", cluster["log"])
    service.kill()
    service = Service(env, free_port(), cluster["log"]).start()
    try:
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 300, "done", cluster["log"])
        wait_for(
            lambda: "result for no waiting task dropped" in cluster["log"].read_text(),
            60,
            "an earlier task's result to be dropped",
            cluster["log"],
        )
    finally:
        assert service.stop() == 0
    check_result(cluster, config)
    assert the_job(cluster["home"]).attempts == 1  # the killed coordinator's lease expired
    assert worker.log.read_text().count("task done") == 3  # analysed three times, stored once


def test_job_cancelled_while_a_worker_analyses_it_gets_no_late_result(cluster):
    worker = cluster["worker"]("w1")
    service = start_and_deliver(cluster)
    try:
        wait_for(lambda: worker_of_running_job(service), 60, "a worker", cluster["log"])
        with_db(cluster["home"], lambda db: jobs.cancel(db, the_job(cluster["home"]).id, "trashed"))
        wait_for(lambda: "task done" in worker.log.read_text(), 240, "the worker to finish")
        time.sleep(3.0)  # its result reaches the coordinator
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert health["cluster"]["tasks"] == []
    finally:
        assert service.stop() == 0
    assert job_states(cluster["home"]) == ["cancelled"]
    db = storage.open_db(cluster["home"])
    try:
        assert db["presence"].count == 0 and db["attendance"].count == 0
        assert [m["status"] for m in storage.list_meetings(db)] == ["cancelled"]
        assert db["participants"].count == 0
    finally:
        db.conn.close()


def test_worker_checks_its_model_pack_and_needs_the_broker(tmp_path, base_env):
    env = dict(os.environ, **base_env, ROLLCALL_HOME=str(tmp_path / "w"))
    run = subprocess.run(
        [sys.executable, "-m", "rollcall", "worker"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 1 and "[cluster] broker_url" in run.stderr
    env.update(
        ROLLCALL_CLUSTER_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
        ROLLCALL_CLUSTER_SECRET=CLUSTER_SECRET,
        ROLLCALL_MODELS_PACK="no-such-pack",
    )
    run = subprocess.run(
        [sys.executable, "-m", "rollcall", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and "no-such-pack" in run.stderr


def test_broker_url_needs_a_secret_and_messages_need_it_too(tmp_path):
    with pytest.raises(ConfigError, match="secret"):
        load_config(None, {"ROLLCALL_CLUSTER_BROKER_URL": "redis://127.0.0.1:6379/0"})
    config = load_config(
        None,
        {
            "ROLLCALL_CLUSTER_BROKER_URL": "redis://:pw@127.0.0.1:6379/0",
            "ROLLCALL_CLUSTER_SECRET": CLUSTER_SECRET,
        },
    )
    assert config.cluster.enabled
    sealed = messages.seal(CLUSTER_SECRET, "result", {"x": 1})
    assert messages.unseal(CLUSTER_SECRET, "result", sealed) == {"x": 1}
    for secret, kind in (("another-secret-0123456", "result"), (CLUSTER_SECRET, "task")):
        with pytest.raises(messages.BadSignature):
            messages.unseal(secret, kind, sealed)
    body, _, mac = sealed.rpartition(".")
    with pytest.raises(messages.BadSignature):
        messages.unseal(CLUSTER_SECRET, "result", body[:-4] + "AAA=" + "." + mac)


def bare_task(**given) -> messages.Task:
    """A task with placeholder values, ``given`` fields set (no recording behind it)."""
    fields = {
        "token": "t",
        "job_id": 1,
        "meeting_id": 2,
        "course_id": "C",
        "title": "",
        "start_time": None,
        "roster": None,
        "download": messages.DownloadSource("https://x/y", "tok", None, ()),
        "settings": {},
        "plugins": (),
        "model_key": "m",
    }
    return messages.Task(**{**fields, **given})


def test_results_reach_only_the_task_waiting_for_them(tmp_path):
    """A result is matched by its task token and job: a late or foreign one is dropped."""
    from rollcall.cluster.coordinator import Dispatcher

    class Broker:
        sent: list = []

        def enqueue(self, message, delay=None):
            self.sent.append(message)

    config = load_config(
        None,
        {
            "ROLLCALL_HOME": str(tmp_path),
            "ROLLCALL_CLUSTER_BROKER_URL": "redis://127.0.0.1:1/0",
            "ROLLCALL_CLUSTER_SECRET": CLUSTER_SECRET,
        },
    )
    dispatcher = Dispatcher(config, broker=Broker())
    task = bare_task(token="t1", job_id=7, meeting_id=1)
    pending = dispatcher.submit(task)
    (sent,) = Broker.sent
    assert messages.unseal(CLUSTER_SECRET, "task", sent.args[0]).download.token == "tok"
    assert dispatcher.deliver(messages.Result("t1", 7, "w9", messages.STARTED))
    assert dispatcher.assignments()[0]["job_id"] == 7
    assert dispatcher.assignments()[0]["worker"] == "w9"
    assert not dispatcher.deliver(messages.Result("t0", 7, "w8", messages.OK))  # an older task
    assert not dispatcher.deliver(messages.Result("t1", 8, "w8", messages.OK))  # another job
    assert not pending.future.done()
    assert dispatcher.deliver(messages.Result("t1", 7, "w9", messages.ERROR, error="boom"))
    assert pending.future.result(0).error == "boom"
    dispatcher.forget("t1")
    assert not dispatcher.deliver(messages.Result("t1", 7, "w9", messages.OK))  # too late
    assert dispatcher.assignments() == []


def meeting_rows(home: Path) -> dict[str, list[tuple]]:
    """The one meeting's per-minute, per-student and minute_evidence rows, by student id,
    floats rounded (a worker's onnxruntime may sum in another order)."""

    def rounded(row: dict) -> tuple:
        return tuple(round(v, 3) if isinstance(v, float) else v for v in row.values())

    db = storage.open_db(home)
    try:
        (meeting,) = storage.list_meetings(db)
        queries = {
            "presence": "select s.student_id, p.minute, p.present, p.review, p.seconds_seen "
            "from presence p join students s on s.id = p.student_pk where p.meeting_id = ? "
            "order by s.student_id, p.minute",
            "attendance": "select s.student_id, a.present_minutes, a.attendance_pct, a.status, "
            "a.review_minutes from attendance a join students s on s.id = a.student_pk "
            "where a.meeting_id = ? order by s.student_id",
            "minute_evidence": "select s.student_id, e.minute, e.state, e.samples, e.matched, "
            "e.best_similarity, e.median_similarity, e.margin_student, e.margin_cohort, e.path, "
            "e.tracks, e.reason from minute_evidence e join students s on s.id = e.student_pk "
            "where e.meeting_id = ? order by s.student_id, e.minute",
        }
        return {
            name: [rounded(r) for r in db.query(sql, [meeting["id"]])]
            for name, sql in queries.items()
        }
    finally:
        db.conn.close()


def test_a_cluster_analysis_is_stored_exactly_as_a_local_one(cluster, face_models):
    """The coordinator's decision rule and attendance settings (not the worker's own,
    which are the defaults here) decide on the worker: the per-minute statuses, the
    needs-review minutes and the minute_evidence rows equal a local analysis of the
    same recording with the coordinator's configuration and the participants report
    the service fetched from Zoom before the analysis (it travels in the task and
    sends the recognised student it does not list to review on the worker too)."""
    from rollcall.bot.zoom_client import parse_participant
    from rollcall.pipeline.counter_evidence import NOT_IN_REPORT
    from rollcall.pipeline.orchestrator import analyze_recording
    from rollcall.pipeline.plugin_manager import build_catalog
    from rollcall.store.plugin_admin import enabled_plugins
    from tests.test_service import COURSE

    # a strict student margin: some tracks become needs-review instead of present
    env = dict(
        cluster["env"],
        ROLLCALL_RECOGNITION_MARGIN_STUDENT="0.45",
        ROLLCALL_ATTENDANCE_MIN_SECONDS_PER_MINUTE="20",
    )
    local_home = cluster["tmp"] / "local-home"
    shutil.copytree(cluster["home"], local_home)  # the same course, before any analysis
    cluster["worker"]("w1")
    service = start_and_deliver(cluster, env)
    try:
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 240, "done", cluster["log"])
    finally:
        assert service.stop() == 0
    assert "analysed by a cluster worker" in cluster["log"].read_text()

    local_config = load_config(None, dict(env, ROLLCALL_HOME=str(local_home)))
    video = Path(cluster["state"].files["file-gallery"].path)
    db = storage.open_db(local_home)
    try:
        catalog = build_catalog(local_config, face_models, entry_points=False)
        pm = catalog.manager_for(enabled_plugins(db, COURSE))
        zoom_meeting = cluster["state"].meetings[0]
        analyze_recording(
            db,
            pm,
            face_models,
            local_config,
            video,
            COURSE,
            start_time=zoom_meeting.start_time,  # as the webhook gave it to the service
            participants=[parse_participant(p) for p in zoom_meeting.participants],
        )
    finally:
        db.conn.close()

    remote, local = meeting_rows(cluster["home"]), meeting_rows(local_home)
    assert local["minute_evidence"], "the recording gave no evidence rows to compare"
    states = {row[2] for row in local["minute_evidence"]}
    assert "present" in states and "review" in states, states
    assert any(NOT_IN_REPORT in row[-1] for row in remote["minute_evidence"])
    for name in ("presence", "attendance", "minute_evidence"):
        assert remote[name] == local[name], name


def test_an_uploaded_recording_is_analysed_on_the_coordinator(cluster, config):
    """An upload is on the coordinator's disk, which no worker machine can read: the
    coordinator analyses it itself (no worker runs here, so a task sent to the
    cluster would never finish)."""
    from rollcall.web.ops import _enqueue_upload
    from tests.test_service import COURSE

    uploads = cluster["home"] / "uploads" / "recordings"
    uploads.mkdir(parents=True)
    video = uploads / "lecture.mp4"
    shutil.copyfile(cluster["state"].files["file-gallery"].path, video)
    job = with_db(
        cluster["home"], _enqueue_upload, COURSE, video, "Uploaded lecture", None, "admin"
    )
    service = Service(cluster["env"], free_port(), cluster["log"]).start()
    try:
        wait_for(lambda: job_states(cluster["home"]) == ["done"], 240, "done", cluster["log"])
        health = requests.get(service.url("/healthz"), timeout=5).json()
        assert health["cluster"]["connected"] and health["cluster"]["tasks"] == []
    finally:
        assert service.stop() == 0
    log = cluster["log"].read_text()
    assert "uploaded recording analysed on the coordinator" in log
    assert "task sent to the cluster" not in log
    db = storage.open_db(cluster["home"])
    try:
        (meeting,) = storage.list_meetings(db, COURSE)
        assert meeting["source"] == "upload" and meeting["status"] == "done"
        assert storage.find_meeting(db, f"upload:{job.meeting_uuid}:upload")["id"] == meeting["id"]
        assert db["presence"].count == len(cluster["meeting"].students) * 2
        assert jobs.get(db, job.id).state == jobs.DONE
    finally:
        db.conn.close()


def test_a_task_carries_every_field_of_the_roster(tmp_path):
    """The roster a worker decides with equals the coordinator's, field by field: the
    templates (masked copies blended in), every photo embedding and the cohort of
    non-student faces. A field added to Roster must be given a value here."""
    import numpy as np

    from rollcall.types import Roster

    rng = np.random.default_rng(5)
    roster = Roster(
        student_keys=(3, 9),
        student_ids=("S1", "S2"),
        names=("Ann", "Bo"),
        templates=rng.standard_normal((2, 8)).astype(np.float32),
        photo_embeddings=(
            rng.standard_normal((3, 8)).astype(np.float32),
            rng.standard_normal((1, 8)).astype(np.float32),
        ),
        cohort=rng.standard_normal((4, 8)).astype(np.float32),
        masked_templates=rng.standard_normal((2, 8)).astype(np.float32),
        filled_templates=rng.standard_normal((2, 8)).astype(np.float32),
    )
    defaults = {f.name: f.default for f in dataclasses.fields(Roster)}
    for name, default in defaults.items():
        assert getattr(roster, name) is not default, f"give Roster.{name} a value in this test"
    task = bare_task(roster=roster)
    got = messages.unseal(CLUSTER_SECRET, "task", messages.seal(CLUSTER_SECRET, "task", task))
    assert type(got.roster) is Roster
    for name in defaults:
        sent, received = getattr(roster, name), getattr(got.roster, name)
        if isinstance(sent, np.ndarray):
            assert received.dtype == sent.dtype and np.array_equal(received, sent), name
        elif name == "photo_embeddings":
            pairs = zip(received, sent, strict=True)
            assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in pairs), name
        else:
            assert received == sent, name


def test_a_worker_builds_its_plugins_with_the_task_settings(tmp_path, base_env):
    """The decision rule, thresholds and attendance rules live in the core plugins: a
    worker builds them from the coordinator's settings in the task, not from its own."""
    from rollcall.cluster.remote import TaskRunner

    worker_config = load_config(None, dict(base_env, ROLLCALL_HOME=str(tmp_path / "w")))
    coordinator = load_config(
        None,
        dict(
            base_env,
            ROLLCALL_RECOGNITION_MARGIN_STUDENT="0.3",
            ROLLCALL_RECOGNITION_REVIEW="false",
            ROLLCALL_ATTENDANCE_MIN_SECONDS_PER_MINUTE="12",
        ),
    )
    runner = TaskRunner(worker_config, "w1", broker=None)
    settings = {
        name: getattr(coordinator, name).model_dump(mode="json")
        for name in messages.SETTINGS_SECTIONS
    }
    task = bare_task(settings=settings, model_key=runner.models.model_key)
    pm = runner.manager_for(task, runner.config_for(task))
    recognizer, attendance = pm.get_plugin("recognizer"), pm.get_plugin("attendance")
    assert recognizer.margins.student == 0.3 and recognizer.margins.review is False
    assert attendance.min_seconds_per_minute == 12
    # a task with the worker's own settings gets plugins built with those again
    plain = dataclasses.replace(task, settings={})
    pm = runner.manager_for(plain, runner.config_for(plain))
    assert pm.get_plugin("recognizer").margins.student == worker_config.recognition.margin_student
