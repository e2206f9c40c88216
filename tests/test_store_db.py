"""The store's shared helpers: one connection per thread, write transactions, clock, backoff,
and the schema's migrations."""

from __future__ import annotations

import random
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlite_utils

from rollcall.store import db as store_db
from rollcall.store import jobs, retention, schema, storage
from rollcall.store.db import (
    ForeignTransactionError,
    backoff_delay,
    now_iso,
    open_db,
    utc_now,
    write_transaction,
)

OLD = "2020-01-01T00:00:00+00:00"


# ---------------------------------------------------------------- one connection per thread


def test_a_connection_refuses_another_thread(tmp_path):
    db = open_db(tmp_path)
    errors: list[BaseException] = []

    def use() -> None:
        try:
            db.execute("select 1").fetchone()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], sqlite3.ProgrammingError)
    assert "same thread" in str(errors[0])


# ---------------------------------------------------------------- write_transaction


def test_write_transaction_commits_or_rolls_back(tmp_path):
    db = open_db(tmp_path)
    with write_transaction(db):
        storage.add_course(db, "A", "a")
    with pytest.raises(RuntimeError), write_transaction(db):
        storage.add_course(db, "B", "b")
        raise RuntimeError("boom")
    assert [c["course_id"] for c in storage.list_courses(db)] == ["A"]
    assert not db.conn.in_transaction


def test_nested_write_transaction_is_a_savepoint(tmp_path):
    db = open_db(tmp_path)
    with write_transaction(db):
        storage.add_course(db, "A", "a")
        with pytest.raises(RuntimeError), write_transaction(db):
            storage.add_course(db, "B", "b")
            raise RuntimeError("only the inner block is undone")
        with write_transaction(db):
            storage.add_course(db, "C", "c")
    assert [c["course_id"] for c in storage.list_courses(db)] == ["A", "C"]
    with pytest.raises(RuntimeError), write_transaction(db):
        with write_transaction(db):
            storage.add_course(db, "D", "d")
        raise RuntimeError("the outer rollback takes the released savepoint with it")
    assert [c["course_id"] for c in storage.list_courses(db)] == ["A", "C"]


def test_write_transaction_refuses_a_transaction_it_did_not_open(tmp_path):
    """The old ``jobs._write`` nested a savepoint in any open transaction; joining one that
    somebody else commits or rolls back is refused instead."""
    db = open_db(tmp_path)
    db.conn.execute("begin")  # a caller's own (here explicit) transaction
    db.conn.execute("insert into courses (course_id, title, created_at) values ('X', 'x', '')")
    with pytest.raises(ForeignTransactionError), write_transaction(db):
        pass  # never entered
    with pytest.raises(ForeignTransactionError):
        jobs.enqueue(db, course_id="C", meeting_uuid="u", file_id="f", payload={})
    db.conn.rollback()
    assert db["jobs"].count == 0
    jobs.enqueue(db, course_id="C", meeting_uuid="u", file_id="f", payload={})
    assert db["jobs"].count == 1


def test_write_transaction_refuses_another_threads_transaction_on_a_shared_connection(tmp_path):
    open_db(tmp_path).conn.close()
    shared = _shared_connection(tmp_path)
    inside, leave = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            with write_transaction(shared):
                storage.add_course(shared, "T", "other thread")
                inside.set()
                leave.wait(10)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(ForeignTransactionError), write_transaction(shared):
            pass
    finally:
        leave.set()
        thread.join(10)
    assert not errors
    assert storage.list_courses(shared) == []


def test_a_committed_outer_transaction_is_noticed(tmp_path):
    db = open_db(tmp_path)
    with pytest.raises(ForeignTransactionError), write_transaction(db):
        db.conn.commit()  # e.g. a `with conn:` block inside
        with write_transaction(db):
            pass


# ---------------------------------------------------------------- the old failure


def _shared_connection(home) -> sqlite_utils.Database:
    """One connection for every thread, the way ``rollcall serve`` used to share one."""
    conn = sqlite3.connect(home / store_db.DB_NAME, timeout=30, check_same_thread=False)
    return sqlite_utils.Database(conn)


@pytest.mark.parametrize("connections", ["shared by the threads", "one per thread"])
def test_rolled_back_purge_never_takes_an_accepted_job_with_it(tmp_path, monkeypatch, connections):
    """A retention purge runs in one thread inside a transaction that is rolled back (here:
    an error half-way) while a webhook's job is enqueued from another thread: an accepted
    job must survive, and the rolled-back purge must delete nothing.

    Before, with one connection shared between the threads, ``jobs._write`` saw the
    purge's open transaction, nested a savepoint in it, reported the job as created,
    and the purge's rollback deleted it. Now the shared connection's enqueue is refused
    (nothing is accepted, so the webhook is answered with an error and Zoom retries), and
    with one connection per thread, as the rule asks, the job waits for the lock and is kept.
    """
    home = tmp_path
    setup = open_db(home)
    storage.add_course(setup, "C", "c")
    for key in ("old-1", "old-2"):
        storage.upsert_meeting(setup, {"course_id": "C", "source_key": key, "analyzed_at": OLD})
    setup.conn.close()
    shared = _shared_connection(home) if connections == "shared by the threads" else None

    inside_purge, purge_may_fail = threading.Event(), threading.Event()
    real_tables_with_column = storage.tables_with_column
    calls = []

    def tables_then_pause(db, column):
        calls.append(column)
        if len(calls) == 2:  # the first old meeting is already deleted, in the transaction
            inside_purge.set()
            purge_may_fail.wait(10)
            raise sqlite3.OperationalError("disk I/O error")  # the purge is rolled back
        return real_tables_with_column(db, column)

    monkeypatch.setattr(storage, "tables_with_column", tables_then_pause)
    purge_errors: list[BaseException] = []

    def purge() -> None:
        db = shared or open_db(home)
        try:
            with write_transaction(db):  # the purge and whatever its caller does, as one
                retention.purge_older_than(db, 30)
        except sqlite3.OperationalError as exc:
            purge_errors.append(exc)

    accepted: list[bool] = []
    enqueue_errors: list[BaseException] = []

    def enqueue() -> None:
        db = shared or open_db(home)
        try:
            job, created = jobs.enqueue(
                db, course_id="C", meeting_uuid="webhook==", file_id="f1", payload={}
            )
            accepted.append(created)
        except sqlite3.Error as exc:  # refused: not accepted, Zoom delivers it again
            enqueue_errors.append(exc)

    purger = threading.Thread(target=purge)
    purger.start()
    assert inside_purge.wait(10)
    webhook = threading.Thread(target=enqueue)
    webhook.start()
    webhook.join(0.5)  # one connection per thread: waiting for the purge's write lock
    purge_may_fail.set()
    purger.join(10)
    webhook.join(40)
    assert len(purge_errors) == 1  # the purge really was rolled back
    check = open_db(home)
    if accepted:
        assert accepted == [True]
        assert jobs.find(check, jobs.job_key("webhook==", "f1")) is not None, "accepted job lost"
    assert check["meetings"].count == 2  # ...deleting nothing
    if not accepted:
        assert connections == "shared by the threads"
        assert isinstance(enqueue_errors[0], ForeignTransactionError)
    if connections == "one per thread":
        assert accepted == [True]


def test_a_purge_that_fails_half_way_deletes_nothing(tmp_path, monkeypatch):
    """Before, each of the purge's deletes committed on its own (sqlite-utils commits the
    implicit transaction of a write when no transaction is open), so a purge that failed
    half-way had deleted some meetings; it is one write transaction now."""
    db = open_db(tmp_path)
    storage.add_course(db, "C", "c")
    for key in ("old-1", "old-2"):
        storage.upsert_meeting(db, {"course_id": "C", "source_key": key, "analyzed_at": OLD})
    real, calls = storage.tables_with_column, []

    def fail_on_the_second_meeting(db, column):
        calls.append(column)
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(db, column)

    monkeypatch.setattr(storage, "tables_with_column", fail_on_the_second_meeting)
    with pytest.raises(sqlite3.OperationalError):
        retention.purge_older_than(db, 30)
    assert db["meetings"].count == 2


# ---------------------------------------------------------------- clock and backoff


def test_clock_is_aware_utc():
    assert utc_now().tzinfo is UTC
    naive = datetime(2024, 5, 1, 12, 0)
    assert utc_now(naive) == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    paris = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert now_iso(paris) == "2024-05-01T12:00:00+00:00"
    assert now_iso(paris, timespec="milliseconds") == "2024-05-01T12:00:00.000+00:00"
    assert storage.now_iso is now_iso


def test_backoff_doubles_up_to_the_maximum_with_optional_jitter():
    assert [backoff_delay(n, 10, 100) for n in range(1, 6)] == [10, 20, 40, 80, 100]
    assert backoff_delay(0, 10, 100) == 10
    rng = random.Random(1)
    delays = [backoff_delay(2, 10, 100, jitter=0.5, rng=rng) for _ in range(50)]
    assert all(20 <= d <= 30 for d in delays) and len(set(delays)) > 1


def test_jobs_and_outbox_use_the_shared_backoff(config):
    from rollcall.store import outbox

    assert jobs.backoff_delay(3, base_backoff_s=10, max_backoff_s=25) == backoff_delay(3, 10, 25)
    n = config.notify
    for attempts in range(1, 8):
        expected = backoff_delay(attempts, n.retry_base_s, n.retry_max_s)
        assert outbox.backoff_s(config, attempts) == expected


# ---------------------------------------------------------------- schema


def test_new_database_has_the_core_tables_only(tmp_path):
    db = open_db(tmp_path)
    tables = set(db.table_names())
    assert {"jobs", "participants", "plugin_audit", "corrections", "outbox"} <= tables
    assert "participant_reports" in tables
    assert {"users", "user_courses", "api_tokens", "signin_attempts"} <= tables
    assert not {t for t in tables if t.startswith(("emotion_", "engagement_"))}
    assert db.execute("pragma user_version").fetchone()[0] == schema.SCHEMA_VERSION == 13
    assert "minute_evidence" in tables
    assert "masked_vector" in db["embeddings"].columns_dict
    assert "filled_vector" in db["embeddings"].columns_dict


def test_an_old_database_upgrades_and_keeps_its_analyzer_tables(tmp_path):
    """A database at version 3 gets migrations 4..6; one that already has the analyzers'
    tables (made by the old migration 4) keeps them and their rows."""
    conn = sqlite3.connect(tmp_path / store_db.DB_NAME)
    old = sqlite_utils.Database(conn)
    for migration in schema.MIGRATIONS[:3]:
        migration(old)
    old["emotion_summary"].insert({"meeting_id": 1, "student_pk": 0, "samples": 3})
    conn.execute("pragma user_version = 3")
    conn.commit()
    conn.close()
    db = open_db(tmp_path)
    assert db.execute("pragma user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert {"plugin_audit", "plugin_errors", "corrections", "outbox"} <= set(db.table_names())
    assert db["emotion_summary"].count == 1
    assert "emotion_summary" in storage.tables_with_column(db, "meeting_id")  # still purged
