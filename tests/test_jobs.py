"""Durable job queue: idempotency, transitions, backoff, leases, concurrency, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollcall.store import jobs, schema
from rollcall.store.db import open_db, write_transaction

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def open_jobs_db(home: Path):
    return open_db(home)


@pytest.fixture
def db(tmp_path):
    db = open_jobs_db(tmp_path / "home")
    yield db
    db.conn.close()


def add(db, n: int = 1, *, now: datetime = T0, **kw) -> jobs.Job:
    job, created = jobs.enqueue(
        db,
        course_id=kw.pop("course_id", "C1"),
        meeting_uuid=kw.pop("meeting_uuid", f"uuid-{n}=="),
        file_id=kw.pop("file_id", f"file-{n}"),
        payload=kw.pop("payload", {"download_url": f"https://zoom.example/{n}", "file_size": 10}),
        now=now,
        **kw,
    )
    assert created
    return job


def states(db, job_id: int) -> list[str]:
    return [e.state for e in jobs.events(db, job_id)]


# ---------------------------------------------------------------- schema


def test_jobs_tables_come_with_migration_2(tmp_path):
    db = open_db(tmp_path)
    assert schema.MIGRATIONS[1] is schema.migrate_jobs
    assert {"jobs", "job_events"} <= set(db.table_names())
    assert db.execute("pragma user_version").fetchone()[0] == schema.SCHEMA_VERSION
    schema.migrate_jobs(db)  # idempotent: a migration interrupted half-way can run again
    db.conn.close()
    db = open_db(tmp_path)  # nothing applied twice
    add(db)
    assert jobs.queue_depth(db)["queued"] == 1


def test_job_states_match_the_schema_check():
    assert jobs.STATES == schema.JOB_STATES


# ---------------------------------------------------------------- enqueue


def test_enqueue_is_idempotent(db):
    results = [
        jobs.enqueue(
            db,
            course_id="C1",
            meeting_uuid="abc/def==",
            file_id="f1",
            payload={"download_url": "u", "source": source},
            zoom_meeting_id=81234567890,
            topic="Algebra",
        )
        for source in ("webhook", "websocket", "poll")
    ]
    assert [created for _, created in results] == [True, False, False]
    assert len({job.id for job, _ in results}) == 1
    assert db["jobs"].count == 1
    job = results[0][0]
    assert job.key == jobs.job_key("abc/def==", "f1") == "abc/def==:f1"
    assert job.payload == {"download_url": "u", "source": "webhook"}  # first event wins
    assert job.zoom_meeting_id == 81234567890 and job.topic == "Algebra"
    assert states(db, job.id) == ["queued"]
    # another file of the same meeting is another job
    other, created = jobs.enqueue(
        db, course_id="C1", meeting_uuid="abc/def==", file_id="f2", payload={}
    )
    assert created and other.id != job.id


def test_enqueue_in_a_final_state_records_the_decision(db):
    job, _ = jobs.enqueue(
        db,
        course_id=None,
        meeting_uuid="u",
        file_id="f",
        payload={"download_token": "secret", "download_url": "x"},
        state="skipped",
        reason="meeting maps to no course",
    )
    assert job.state == "skipped" and job.error == "meeting maps to no course"
    assert job.finished_at and "download_token" not in job.payload
    again, created = jobs.enqueue(db, course_id=None, meeting_uuid="u", file_id="f", payload={})
    assert not created and again.state == "skipped"
    assert jobs.claim(db, "w", lease_s=30) is None
    with pytest.raises(jobs.InvalidTransition):
        jobs.enqueue(db, course_id="C", meeting_uuid="u", file_id="g", payload={}, state="done")


# ---------------------------------------------------------------- transitions


def test_happy_path_transitions_and_exactly_once_done(db):
    job = add(db, payload={"download_url": "u", "download_token": "tok"})
    assert jobs.claim(db, "w1", lease_s=30, now=T0 - timedelta(seconds=1)) is None  # not due
    claimed = jobs.claim(db, "w1", lease_s=30, now=T0)
    assert claimed.id == job.id and claimed.state == "downloading"
    assert claimed.lease_owner == "w1" and claimed.lease_until == "2024-05-01T12:00:30.000+00:00"
    assert jobs.claim(db, "w2", lease_s=30, now=T0) is None  # leased, nothing else due
    with pytest.raises(jobs.LeaseLost):
        jobs.set_state(db, job.id, "analyzing", worker_id="w2")
    assert jobs.set_state(db, job.id, "analyzing", worker_id="w1", message="1.2 GB").state == (
        "analyzing"
    )
    with pytest.raises(jobs.InvalidTransition):
        jobs.set_state(db, job.id, "done", worker_id="w1")
    done = jobs.complete(db, job.id, "w1", result_meeting_id=7)
    assert done.state == "done" and done.result_meeting_id == 7 and done.finished_at
    assert "download_token" not in jobs.get(db, job.id).payload  # credential dropped
    with pytest.raises(jobs.LeaseLost):
        jobs.complete(db, job.id, "w1", result_meeting_id=7)
    with pytest.raises(jobs.LeaseLost):
        jobs.fail(db, job.id, "w1", "late error")
    assert states(db, job.id) == ["queued", "downloading", "analyzing", "done"]
    assert jobs.get(db, job.key) == jobs.get(db, job.id) == jobs.find(db, job.key)
    assert jobs.find(db, "nope") is None
    with pytest.raises(jobs.JobNotFound):
        jobs.get(db, 999)


def test_claim_takes_oldest_due_job_first(db):
    late = add(db, 1, now=T0 + timedelta(seconds=5))
    early = add(db, 2, now=T0)
    delayed = add(db, 3, now=T0, not_before=T0 + timedelta(hours=1))
    now = T0 + timedelta(seconds=10)
    lease = 3 * 3600  # longer than the test, so no lease expires
    assert [jobs.claim(db, "w", lease_s=lease, now=now).id for _ in range(2)] == [early.id, late.id]
    assert jobs.claim(db, "w", lease_s=lease, now=now) is None
    assert jobs.claim(db, "w", lease_s=lease, now=T0 + timedelta(hours=1)).id == delayed.id


def test_backoff_timings(db):
    job = add(db, max_attempts=10)
    now = T0
    expected = [60, 120, 240, 480, 960, 1920, 3600, 3600]
    for attempt, delay in enumerate(expected, start=1):
        assert jobs.claim(db, "w", lease_s=30, now=now).id == job.id
        failed = jobs.fail(db, job.id, "w", f"HTTP 503 #{attempt}", now=now)
        assert failed.state == "queued" and failed.attempts == attempt
        due = now + timedelta(seconds=delay)
        assert failed.next_attempt_at == due.isoformat(timespec="milliseconds")
        assert failed.error == f"HTTP 503 #{attempt}" and failed.lease_until is None
        assert jobs.claim(db, "w", lease_s=30, now=due - timedelta(milliseconds=1)) is None
        now = due
    assert jobs.backoff_delay(3, base_backoff_s=10, max_backoff_s=25) == 25


def test_backoff_jitter_stays_within_bounds():
    import random

    rng = random.Random(1)
    delays = [jobs.backoff_delay(2, jitter=0.1, rng=rng) for _ in range(50)]
    assert all(120 <= d <= 132 for d in delays) and len(set(delays)) > 1


def test_gives_up_after_max_attempts_with_error_visible_then_retry(db):
    job = add(db, max_attempts=3)
    now = T0
    for _ in range(3):
        assert jobs.claim(db, "w", lease_s=30, now=now).id == job.id
        last = jobs.fail(db, job.id, "w", "ffmpeg: invalid data", base_backoff_s=1, now=now)
        now += timedelta(hours=1)
    assert last.state == "failed" and last.attempts == 3 and last.finished_at
    assert last.error == "ffmpeg: invalid data"
    assert jobs.claim(db, "w", lease_s=30, now=now + timedelta(days=1)) is None
    assert jobs.queue_depth(db)["failed"] == 1
    assert "gave up after 3 attempts" in jobs.events(db, job.id)[-1].message
    again = jobs.retry(db, job.id, now=now)
    assert again.state == "queued" and again.attempts == 0 and again.error is None
    assert again.finished_at is None
    assert jobs.claim(db, "w", lease_s=30, now=now).id == job.id
    with pytest.raises(jobs.InvalidTransition):
        jobs.retry(db, job.id)  # a running job cannot be retried


def test_permanent_error_fails_at_once(db):
    job = add(db)
    jobs.claim(db, "w", lease_s=30, now=T0)
    failed = jobs.fail(db, job.id, "w", "HTTP 404: recording gone", retryable=False, now=T0)
    assert failed.state == "failed" and failed.attempts == 1 and "404" in failed.error


def test_cancel_while_running_stops_the_worker(db):
    job = add(db)
    jobs.claim(db, "w1", lease_s=30, now=T0)
    jobs.set_state(db, job.id, "analyzing", worker_id="w1")
    cancelled = jobs.cancel(db, job.key, "recording.trashed")
    assert cancelled.state == "cancelled" and cancelled.error == "recording.trashed"
    with pytest.raises(jobs.JobCancelled):
        jobs.set_state(db, job.id, "analyzing", worker_id="w1")
    with pytest.raises(jobs.LeaseLost):  # JobCancelled is a LeaseLost
        jobs.heartbeat(db, job.id, "w1", 30)
    with pytest.raises(jobs.JobCancelled):
        jobs.complete(db, job.id, "w1", result_meeting_id=1)
    assert jobs.claim(db, "w2", lease_s=30, now=T0 + timedelta(days=1)) is None
    assert jobs.get(db, job.id).state == "cancelled"
    # retry brings it back
    assert jobs.retry(db, job.id).state == "queued"
    with pytest.raises(jobs.JobNotFound):
        jobs.cancel(db, "unknown:key", "trashed")


def test_cancel_leaves_finished_jobs_alone_and_cancels_whole_meeting(db):
    done = add(db, 1, meeting_uuid="M")
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.complete(db, done.id, "w", result_meeting_id=3)
    queued = add(db, 2, meeting_uuid="M")
    other = add(db, 3, meeting_uuid="N")
    assert jobs.cancel(db, done.id, "trashed").state == "done"
    assert [j.id for j in jobs.cancel_meeting(db, "M", "recording.deleted")] == [queued.id]
    assert jobs.get(db, queued.id).state == "cancelled"
    assert jobs.get(db, other.id).state == "queued"


def test_writes_conditional_on_holding_the_job_roll_back_when_it_was_cancelled(db):
    """The service stores a job's results in one transaction with ``assert_held``: a
    worker whose job was cancelled meanwhile writes nothing."""
    db.execute("create table results (job_id integer)")
    job = add(db)
    jobs.claim(db, "w1", lease_s=30, now=T0)

    def store() -> None:
        with write_transaction(db):
            db.execute("insert into results values (?)", [job.id])
            jobs.assert_held(db, job.id, "w1")

    store()
    jobs.cancel(db, job.id, "recording.trashed")
    with pytest.raises(jobs.JobCancelled):
        store()
    assert db.execute("select count(*) from results").fetchone()[0] == 1
    with pytest.raises(jobs.LeaseLost):
        jobs.assert_held(db, job.id, "w2")


def test_recovered_meeting_requeues_only_its_cancelled_jobs(db):
    cancelled = add(db, 1, meeting_uuid="M", payload={"download_url": "u", "download_token": "t"})
    done = add(db, 2, meeting_uuid="M")
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.complete(db, done.id, "w", result_meeting_id=1)
    jobs.cancel_meeting(db, "M", "recording.trashed")
    assert "download_token" not in jobs.get(db, cancelled.id).payload
    requeued = jobs.recover_meeting(
        db, "M", "recording.recovered", payload_changes={"download_token": "fresh"}
    )
    assert [j.id for j in requeued] == [cancelled.id]
    job = jobs.get(db, cancelled.id)
    assert job.state == "queued" and job.attempts == 0 and job.payload["download_token"] == "fresh"
    assert jobs.get(db, done.id).state == "done"
    assert jobs.recover_meeting(db, "M", "again") == []


def test_revive_failed_is_bounded_and_only_for_failed_jobs(db):
    job = add(db, max_attempts=1)
    jobs.claim(db, "w", lease_s=30, now=T0)
    assert jobs.revive_failed(db, job.id, {}, max_revivals=2, reason="poll") is None  # running
    jobs.fail(db, job.id, "w", "sign-in page", now=T0)
    for n in (1, 2):
        revived = jobs.revive_failed(
            db,
            job.id,
            {"download_url": f"https://zoom.us/{n}"},
            max_revivals=2,
            reason="poll",
            now=T0 + timedelta(days=n),
        )
        assert revived.state == "queued" and revived.payload["revivals"] == n
        assert revived.payload["download_url"] == f"https://zoom.us/{n}"
        jobs.claim(db, "w", lease_s=30, now=T0 + timedelta(days=n))
        jobs.fail(db, job.id, "w", "sign-in page again")
    assert jobs.revive_failed(db, job.id, {}, max_revivals=2, reason="poll") is None
    assert jobs.get(db, job.id).state == "failed"


def test_every_requeue_resets_the_same_columns_and_only_revival_keeps_the_error(db):
    """retry, recover_meeting and revive_failed share one requeue: due at ``now``,
    attempts 0, no lease, not finished; a revived job still shows why it failed."""
    later = T0 + timedelta(hours=3)
    failed = add(db, 1, max_attempts=1)
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.fail(db, failed.id, "w", "sign-in page", now=T0)
    cancelled = add(db, 2, meeting_uuid="M")
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.cancel(db, cancelled.id, "recording.trashed", now=T0)
    revived = add(db, 3, max_attempts=1)
    jobs.claim(db, "w", lease_s=30, now=T0)
    jobs.fail(db, revived.id, "w", "HTTP 403", now=T0)

    requeued = [
        jobs.retry(db, failed.id, now=later),
        *jobs.recover_meeting(db, "M", "recording.recovered", now=later),
        jobs.revive_failed(db, revived.id, {"x": 1}, max_revivals=1, reason="poll", now=later),
    ]
    for job in requeued:
        row = db.execute(
            "select state, attempts, next_attempt_at, updated_at, finished_at, lease_owner, "
            "lease_until from jobs where id = ?",
            [job.id],
        ).fetchone()
        assert row == ("queued", 0, row[3], row[3], None, None, None)
        assert row[3].startswith("2024-05-01T15:00:00")
        assert jobs.events(db, job.id)[-1].worker_id is None
    assert [j.error for j in requeued] == [None, None, "HTTP 403"]
    assert jobs.get(db, revived.id).error == "HTTP 403"
    assert jobs.get(db, revived.id).payload["x"] == 1


def test_update_payload_is_for_the_lease_owner_and_drops_none(db):
    job = add(db, payload={"download_url": "u", "download_token": "t"})
    jobs.claim(db, "w", lease_s=30, now=T0)
    updated = jobs.update_payload(db, job.id, "w", {"download_url": "v", "download_token": None})
    assert updated.payload == {"download_url": "v"}
    with pytest.raises(jobs.LeaseLost):
        jobs.update_payload(db, job.id, "other", {"x": 1})


def test_skip(db):
    queued = add(db, 1)
    assert jobs.skip(db, queued.id, "no course for meeting").state == "skipped"
    running = add(db, 2)
    jobs.claim(db, "w", lease_s=30)
    with pytest.raises(jobs.InvalidTransition):
        jobs.skip(db, running.id, "x")  # running: only its lease owner may skip it
    with pytest.raises(jobs.LeaseLost):
        jobs.skip(db, running.id, "x", worker_id="other")
    skipped = jobs.skip(db, running.id, "audio-only file", worker_id="w")
    assert skipped.state == "skipped" and skipped.error == "audio-only file"


def test_expired_lease_is_reclaimed_and_old_worker_is_fenced(db):
    job = add(db)
    jobs.claim(db, "w1", lease_s=10, now=T0)
    jobs.heartbeat(db, job.id, "w1", 10, now=T0 + timedelta(seconds=8))  # lease now ends at 18 s
    assert jobs.claim(db, "w2", lease_s=10, now=T0 + timedelta(seconds=15)) is None
    reclaimed = jobs.claim(db, "w2", lease_s=10, now=T0 + timedelta(seconds=18))
    assert reclaimed.id == job.id and reclaimed.lease_owner == "w2"
    assert reclaimed.state == "downloading" and reclaimed.attempts == 1
    assert "lease of worker w1 expired" in reclaimed.error
    with pytest.raises(jobs.LeaseLost):
        jobs.set_state(db, job.id, "analyzing", worker_id="w1")
    with pytest.raises(jobs.LeaseLost):
        jobs.complete(db, job.id, "w1", result_meeting_id=1)
    assert jobs.complete(db, job.id, "w2", result_meeting_id=1).state == "done"


def test_job_that_keeps_killing_its_worker_ends_failed(db):
    job = add(db, max_attempts=2)
    poison_free = add(db, 2, now=T0 + timedelta(seconds=1))
    jobs.claim(db, "w1", lease_s=10, now=T0)
    assert jobs.claim(db, "w2", lease_s=10, now=T0 + timedelta(seconds=10)).id == job.id
    # w2 dies as well; the next claim gives up on the job and hands out the next one
    nxt = jobs.claim(db, "w3", lease_s=10, now=T0 + timedelta(seconds=20))
    assert nxt.id == poison_free.id
    failed = jobs.get(db, job.id)
    assert failed.state == "failed" and failed.attempts == 2 and "w2" in failed.error


def test_requeue_owned_on_graceful_shutdown(db):
    a, b, c = add(db, 1), add(db, 2), add(db, 3)
    for worker in ("w1", "w1", "w2"):
        jobs.claim(db, worker, lease_s=300, now=T0)
    jobs.set_state(db, b.id, "analyzing", worker_id="w1")
    requeued = jobs.requeue_owned(db, "w1", now=T0 + timedelta(seconds=5))
    assert [j.id for j in requeued] == [a.id, b.id]
    assert all(j.state == "queued" and j.attempts == 0 and j.lease_owner is None for j in requeued)
    assert jobs.get(db, c.id).state == "downloading"
    with pytest.raises(jobs.LeaseLost):
        jobs.set_state(db, b.id, "analyzing", worker_id="w1")
    assert jobs.claim(db, "w3", lease_s=30, now=T0 + timedelta(seconds=5)).id == a.id
    assert jobs.requeue_owned(db, "nobody") == []


def test_queue_depth_and_list_jobs(db):
    add(db, 1)
    add(db, 2, course_id="C2")
    jobs.claim(db, "w", lease_s=30, now=T0)
    depth = jobs.queue_depth(db)
    assert depth == dict.fromkeys(jobs.STATES, 0) | {"queued": 1, "downloading": 1}
    assert [j.file_id for j in jobs.list_jobs(db)] == ["file-2", "file-1"]
    assert [j.file_id for j in jobs.list_jobs(db, state="queued")] == ["file-2"]
    assert [j.file_id for j in jobs.list_jobs(db, course_id="C2")] == ["file-2"]
    assert len(jobs.list_jobs(db, limit=1)) == 1


def test_nested_in_callers_transaction_uses_a_savepoint(db):
    job = add(db)
    with write_transaction(db):
        db.execute("insert into courses (course_id, title, created_at) values ('X', 'x', 'now')")
        jobs.claim(db, "w", lease_s=30, now=T0)
        jobs.complete(db, job.id, "w", result_meeting_id=None)
        with pytest.raises(jobs.LeaseLost):  # its savepoint is undone, the caller's work kept
            jobs.complete(db, job.id, "w", result_meeting_id=None)
    assert jobs.get(db, job.id).state == "done"
    assert db["courses"].count_where("course_id = 'X'") == 1


# ---------------------------------------------------------------- several processes

WORKER = """
import json, sys, time
from pathlib import Path
from rollcall.store import jobs, storage

home, worker, go, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
db = storage.open_db(home)
while not go.exists():
    time.sleep(0.005)
created = [jobs.enqueue(db, course_id="C", meeting_uuid=f"race-{i}", file_id="f",
                        payload={"by": worker})[1] for i in range(20)]
claimed = []
while (job := jobs.claim(db, worker, lease_s=60)) is not None:
    claimed.append(job.id)
    time.sleep(0.01)  # "work" outside any transaction, so the other process gets its turn
    jobs.set_state(db, job.id, "analyzing", worker_id=worker)
    jobs.complete(db, job.id, worker, result_meeting_id=job.id)
out.write_text(json.dumps({"created": sum(created), "claimed": claimed}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_two_processes_never_claim_the_same_job(tmp_path):
    home = tmp_path / "home"
    db = open_jobs_db(home)
    for i in range(20):
        add(db, i)  # 20 jobs enqueued up front, 20 more enqueued by both processes at once
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    outs = [tmp_path / f"out{n}.json" for n in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), f"w{n}", str(go), str(out)], env=_env()
        )
        for n, out in enumerate(outs)
    ]
    time.sleep(0.5)
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=20) == 0
    results = [json.loads(out.read_text()) for out in outs]
    assert sum(r["created"] for r in results) == 20  # idempotent across processes
    claimed = [job_id for r in results for job_id in r["claimed"]]
    assert len(claimed) == len(set(claimed)) == 40  # every job exactly once
    assert all(r["claimed"] for r in results)  # both processes really competed
    assert db["jobs"].count == 40
    assert jobs.queue_depth(db)["done"] == 40
    done_events = db.execute("select count(*) from job_events where state = 'done'").fetchone()[0]
    assert done_events == 40


DYING_WORKER = """
import sys, time
from pathlib import Path
from rollcall.store import jobs, storage

home, marker = Path(sys.argv[1]), Path(sys.argv[2])
db = storage.open_db(home)
job = jobs.claim(db, "doomed", lease_s=1.5)
jobs.set_state(db, job.id, "analyzing", worker_id="doomed", message="half-way")
tmp = marker.with_suffix(".tmp")
tmp.write_text(str(job.id))
tmp.rename(marker)  # atomic: the test never reads a marker half-written
time.sleep(60)
"""


def test_job_of_a_killed_worker_is_completed_by_another_exactly_once(tmp_path):
    home = tmp_path / "home"
    db = open_jobs_db(home)
    job = add(db, now=datetime.now(UTC) - timedelta(seconds=1))
    script, marker = tmp_path / "dying.py", tmp_path / "marker"
    script.write_text(DYING_WORKER)
    proc = subprocess.Popen([sys.executable, str(script), str(home), str(marker)], env=_env())
    try:
        deadline = time.monotonic() + 15
        while not marker.exists():
            assert proc.poll() is None, "worker exited early"
            assert time.monotonic() < deadline, "worker never claimed the job"
            time.sleep(0.02)
        assert int(marker.read_text()) == job.id
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    held = jobs.get(db, job.id)
    assert held.state == "analyzing" and held.lease_owner == "doomed"
    lease_end = datetime.fromisoformat(held.lease_until)
    assert jobs.claim(db, "rescuer", lease_s=30, now=lease_end - timedelta(milliseconds=50)) is None
    while datetime.now(UTC) < lease_end:
        time.sleep(0.05)
    rescued = jobs.claim(db, "rescuer", lease_s=30)
    assert rescued is not None and rescued.id == job.id and rescued.attempts == 1
    jobs.set_state(db, job.id, "analyzing", worker_id="rescuer")
    final = jobs.complete(db, job.id, "rescuer", result_meeting_id=42)
    assert final.state == "done" and final.result_meeting_id == 42

    assert jobs.claim(db, "another", lease_s=30) is None
    trail = jobs.events(db, job.id)
    assert [e.state for e in trail] == [
        "queued",
        "downloading",
        "analyzing",
        "downloading",
        "analyzing",
        "done",
    ]
    assert [e.worker_id for e in trail][1:] == ["doomed"] * 2 + ["rescuer"] * 3
    assert sum(e.state == "done" for e in trail) == 1
    assert "lease of worker doomed expired" in trail[3].message


def test_a_workers_calls_and_heartbeats_run_on_the_thread_that_owns_its_connection(
    tmp_path, monkeypatch
):
    """The service's rule: a connection never crosses threads. A worker's claim, state
    changes and heartbeats (which run while the analysis does) all go through its
    database thread, on the one connection opened there."""
    import asyncio
    import threading

    from rollcall.service.db_thread import DbThread
    from rollcall.service.worker import _heartbeat

    home = tmp_path / "home"
    open_jobs_db(home).conn.close()
    calls: list[tuple[str, int, int]] = []

    def spy(name, original):
        def call(db, *args, **kwargs):
            calls.append((name, threading.get_ident(), id(db.conn)))
            return original(db, *args, **kwargs)

        return call

    for name in ("claim", "heartbeat", "complete"):
        monkeypatch.setattr(jobs, name, spy(name, getattr(jobs, name)))

    async def scenario() -> DbThread:
        db = DbThread(home)
        job = await db.run(add)
        assert (await db.run(jobs.claim, "w1", lease_s=0.3)).id == job.id
        beat = asyncio.create_task(_heartbeat(db, job.id, "w1", 0.3))
        await asyncio.sleep(0.5)  # the "analysis": the heartbeat renews the lease meanwhile
        beat.cancel()
        await db.run(jobs.complete, job.id, "w1", None)
        assert (await db.run(jobs.get, job.id)).state == jobs.DONE
        await db.close()
        return db

    db = asyncio.run(scenario())
    assert [c[0] for c in calls].count("heartbeat") >= 2
    assert {c[0] for c in calls} == {"claim", "heartbeat", "complete"}
    assert {c[1] for c in calls} == {db.thread.ident} != {threading.get_ident()}
    assert len({c[2] for c in calls}) == 1  # one connection, opened in that thread
