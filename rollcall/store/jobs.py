"""Durable job queue of ``rollcall serve``: one job per Zoom recording file.

A job moves ``queued -> downloading -> analyzing -> done``; it can also end
``failed`` (retries exhausted or a permanent error, the error is kept),
``skipped`` (e.g. the meeting maps to no course) or ``cancelled`` (the
recording was trashed or deleted).

Guarantees, all from SQLite itself (WAL, ``BEGIN IMMEDIATE``), so they hold
across threads *and* processes sharing the database file:

* **Idempotent enqueue**: the ``key`` (meeting UUID + recording file id) is
  unique; the same recording announced by webhook, WebSocket and polling is one
  row, whatever order or delay the events arrive in.
* **Exclusive claim**: ``claim`` takes the oldest due job and leases it to one
  worker inside a write transaction; two workers never get the same job.
* **Crash recovery**: a worker renews its lease with ``heartbeat``; when a
  worker dies (even ``kill -9``) its job becomes claimable again once the lease
  expires. Such a lost lease counts as an attempt, so a job that kills its
  worker every time ends ``failed`` instead of looping forever.
* **Done exactly once**: every worker-side transition is a compare-and-set on
  ``(state, lease_owner)``; a worker whose job was reclaimed or cancelled gets
  ``LeaseLost`` / ``JobCancelled`` and must stop, and only the current lease
  owner can ``complete``. Results themselves are stored keyed by the meeting
  (``storage.replace_results``), so re-running a job never duplicates rows.

Timestamps are ISO-8601 UTC strings with milliseconds
(``2024-05-01T12:00:00.000+00:00``); all of them have the same shape, so they
compare correctly as text in SQL. Every function accepts ``now`` so tests (and
the scheduler) can inject the clock.

Schema: migration 2 in ``rollcall.store.schema``. Transactions, clock and
backoff are the store's shared helpers (``rollcall.store.db``); as everywhere,
a connection never crosses threads.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from rollcall.store.db import backoff_delay as db_backoff_delay
from rollcall.store.db import now_iso, utc_now, write_transaction

log = logging.getLogger(__name__)

QUEUED = "queued"
DOWNLOADING = "downloading"
ANALYZING = "analyzing"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"

STATES: tuple[str, ...] = (QUEUED, DOWNLOADING, ANALYZING, DONE, FAILED, SKIPPED, CANCELLED)
RUNNING: frozenset[str] = frozenset({DOWNLOADING, ANALYZING})
TERMINAL: frozenset[str] = frozenset({DONE, FAILED, SKIPPED, CANCELLED})
#: States a job can be created in (a recording that maps to no course is recorded as skipped,
#: a trash event for an unknown recording as cancelled, so later duplicates stay no-ops).
ENQUEUE_STATES: frozenset[str] = frozenset({QUEUED, SKIPPED, CANCELLED})

#: Payload keys that are credentials; they are dropped once a job is finished for good.
SECRET_PAYLOAD_KEYS: frozenset[str] = frozenset({"download_token", "download_access_token"})

MAX_ERROR_CHARS = 4000


# ---------------------------------------------------------------- errors


class JobError(Exception):
    """Base class of the job queue's errors."""


class JobNotFound(JobError, LookupError):
    """No job has this id or key."""


class InvalidTransition(JobError, ValueError):
    """The requested state change is not allowed from the job's current state."""


class LeaseLost(JobError):
    """The worker no longer owns the job (lease reclaimed by another worker, or job finished).

    The worker must stop working on the job and must not write its results.
    """


class JobCancelled(LeaseLost):
    """The job was cancelled (recording trashed/deleted) while the worker held it."""


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Job:
    """One row of ``jobs``; ``payload`` is decoded from its JSON text."""

    id: int
    key: str
    course_id: str | None
    meeting_uuid: str
    zoom_meeting_id: int | None
    topic: str
    host_email: str
    file_id: str
    payload: dict[str, Any]
    state: str
    attempts: int
    max_attempts: int
    next_attempt_at: str
    error: str | None
    result_meeting_id: int | None
    lease_owner: str | None
    lease_until: str | None
    created_at: str
    updated_at: str
    finished_at: str | None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        data = dict(row)
        data["payload"] = json.loads(data["payload"] or "{}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One row of the ``job_events`` audit trail."""

    id: int
    job_id: int
    at: str
    state: str
    worker_id: str | None
    message: str = field(default="")


# ---------------------------------------------------------------- helpers


def job_key(meeting_uuid: str, file_id: str) -> str:
    """The idempotency key of a recording file (Zoom UUIDs never contain ``:``)."""
    return f"{meeting_uuid}:{file_id}"


def default_worker_id() -> str:
    """A worker id unique to this process: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _iso(moment: datetime) -> str:
    """The queue's timestamp text: UTC with milliseconds (every row the same shape)."""
    return now_iso(moment, timespec="milliseconds")


def _extra(job: Job | Mapping[str, Any], **more: Any) -> dict[str, Any]:
    get = job.get if isinstance(job, Mapping) else lambda k: getattr(job, k)
    return {"job_id": get("id"), "job_key": get("key"), "job_state": get("state"), **more}


def _row(conn: sqlite3.Connection, job_id: int) -> dict[str, Any]:
    cur = conn.execute("select * from jobs where id = ?", [job_id])
    row = cur.fetchone()
    if row is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def _lookup(conn: sqlite3.Connection, key_or_id: int | str) -> dict[str, Any]:
    if isinstance(key_or_id, int):
        return _row(conn, key_or_id)
    found = conn.execute("select id from jobs where key = ?", [key_or_id]).fetchone()
    if found is None:
        raise JobNotFound(f"no job has key {key_or_id!r}")
    return _row(conn, found[0])


def _event(
    conn: sqlite3.Connection, job_id: int, at: str, state: str, worker_id: str | None, message: str
) -> None:
    conn.execute(
        "insert into job_events (job_id, at, state, worker_id, message) values (?, ?, ?, ?, ?)",
        [job_id, at, state, worker_id, message],
    )


def _update(
    conn: sqlite3.Connection,
    row: dict[str, Any],
    changes: dict[str, Any],
    *,
    actor: str | None,
    message: str = "",
) -> Job:
    """Apply ``changes`` to the job (plus ``updated_at``) and record an event by ``actor``.

    ``actor`` is the worker id, or ``None`` for the producer/admin side.
    """
    changes = dict(changes)
    at = changes.setdefault("updated_at", _iso(utc_now(None)))
    if changes.get("state") in (DONE, SKIPPED, CANCELLED):
        payload = json.loads(changes.get("payload", row["payload"]) or "{}")
        if SECRET_PAYLOAD_KEYS & payload.keys():
            clean = {k: v for k, v in payload.items() if k not in SECRET_PAYLOAD_KEYS}
            changes["payload"] = json.dumps(clean, sort_keys=True)
    assignments = ", ".join(f"{column} = ?" for column in changes)
    conn.execute(f"update jobs set {assignments} where id = ?", [*changes.values(), row["id"]])
    new = {**row, **changes}
    _event(conn, row["id"], at, new["state"], actor, message)
    return Job.from_row(new)


def _check_owner(row: dict[str, Any], worker_id: str) -> None:
    if row["state"] == CANCELLED:
        raise JobCancelled(f"job {row['id']} was cancelled: {row['error'] or 'no reason given'}")
    if row["state"] not in RUNNING or row["lease_owner"] != worker_id:
        owner = row["lease_owner"] or "nobody"
        raise LeaseLost(
            f"worker {worker_id} no longer holds job {row['id']} "
            f"(state {row['state']}, leased to {owner})"
        )


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


# ---------------------------------------------------------------- producer side


def enqueue(
    db: sqlite_utils.Database,
    *,
    key: str | None = None,
    course_id: str | None,
    meeting_uuid: str,
    file_id: str,
    payload: Mapping[str, Any],
    state: str = QUEUED,
    max_attempts: int = 5,
    zoom_meeting_id: int | None = None,
    topic: str = "",
    host_email: str = "",
    reason: str = "",
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> tuple[Job, bool]:
    """Create the job of a recording file, or return the existing one.

    ``key`` defaults to :func:`job_key` ``(meeting_uuid, file_id)``. Returns
    ``(job, created)``; when a job with this key exists (in any state) it is
    returned unchanged with ``created=False`` and nothing is written. ``state``
    may be ``skipped`` or ``cancelled`` to record a decision (``reason`` is
    kept in ``error``) so that later duplicates of the event are no-ops too.
    ``not_before`` delays the first attempt.
    """
    if state not in ENQUEUE_STATES:
        raise InvalidTransition(f"a job cannot be created in state {state!r}")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    key = key or job_key(meeting_uuid, file_id)
    at = _iso(utc_now(now))
    finished = at if state in TERMINAL else None
    if state in TERMINAL:
        payload = {k: v for k, v in payload.items() if k not in SECRET_PAYLOAD_KEYS}
    with write_transaction(db) as conn:
        cur = conn.execute(
            "insert into jobs (key, course_id, meeting_uuid, zoom_meeting_id, topic, host_email, "
            "file_id, payload, state, attempts, max_attempts, next_attempt_at, error, "
            "created_at, updated_at, finished_at) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?) "
            "on conflict (key) do nothing",
            [
                key,
                course_id,
                meeting_uuid,
                zoom_meeting_id,
                topic or "",
                host_email or "",
                file_id,
                json.dumps(dict(payload), sort_keys=True),
                state,
                max_attempts,
                _iso(utc_now(not_before)) if not_before else at,
                reason or None,
                at,
                at,
                finished,
            ],
        )
        created = cur.rowcount == 1
        found = conn.execute("select id from jobs where key = ?", [key]).fetchone()
        if created:
            _event(conn, found[0], at, state, None, reason or "enqueued")
        job = Job.from_row(_row(conn, found[0]))
    if created:
        log.info("job enqueued", extra=_extra(job, course_id=course_id))
    else:
        log.debug("job already known, enqueue ignored", extra=_extra(job))
    return job, created


def cancel(
    db: sqlite_utils.Database, key_or_id: int | str, reason: str, *, now: datetime | None = None
) -> Job:
    """Cancel a queued or running job (recording trashed/deleted).

    A worker holding the job gets :class:`JobCancelled` at its next
    ``set_state``/``heartbeat``/``complete``/``fail``. Jobs already finished
    (done, failed, skipped, cancelled) are returned unchanged. Raises
    :class:`JobNotFound` for an unknown key or id.
    """
    with write_transaction(db) as conn:
        row = _lookup(conn, key_or_id)
        if row["state"] in TERMINAL:
            job = Job.from_row(row)
        else:
            job = _update(conn, row, _finished(CANCELLED, reason, now), actor=None, message=reason)
    log.info(
        "job cancelled" if job.state == CANCELLED else "job already finished", extra=_extra(job)
    )
    return job


def _finished(state: str, reason: str, now: datetime | None) -> dict[str, Any]:
    """The column changes that end a job in ``state`` for ``reason``."""
    at = _iso(utc_now(now))
    return {
        "state": state,
        "error": _truncate(reason) or None,
        "finished_at": at,
        "lease_until": None,
        "updated_at": at,
    }


def cancel_meeting(
    db: sqlite_utils.Database, meeting_uuid: str, reason: str, *, now: datetime | None = None
) -> list[Job]:
    """Cancel every unfinished job of a meeting (all its recording files)."""
    ids = [
        r["id"]
        for r in db.query(
            "select id from jobs where meeting_uuid = ? and state in (?, ?, ?) order by id",
            [meeting_uuid, QUEUED, DOWNLOADING, ANALYZING],
        )
    ]
    return [cancel(db, job_id, reason, now=now) for job_id in ids]


def _requeue(
    conn: sqlite3.Connection,
    row: dict[str, Any],
    *,
    message: str,
    now: datetime | None,
    payload: Mapping[str, Any] | None = None,
    keep_error: bool = False,
) -> Job:
    """Put the job of ``row`` back in the queue, due now, with its attempts reset.

    The lease and ``finished_at`` are cleared; ``error`` too unless ``keep_error``
    (a revived job still shows why it failed last). ``payload``, when given,
    replaces the stored one. The event is recorded as the producer/admin side's.
    """
    at = _iso(utc_now(now))
    changes: dict[str, Any] = {
        "state": QUEUED,
        "attempts": 0,
        "next_attempt_at": at,
        "finished_at": None,
        "lease_owner": None,
        "lease_until": None,
        "updated_at": at,
    }
    if not keep_error:
        changes["error"] = None
    if payload is not None:
        changes["payload"] = json.dumps(dict(payload), sort_keys=True)
    return _update(conn, row, changes, actor=None, message=message)


def retry(db: sqlite_utils.Database, job_id: int, *, now: datetime | None = None) -> Job:
    """Put a failed, cancelled or skipped job back in the queue with its attempts reset."""
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        if row["state"] not in (FAILED, CANCELLED, SKIPPED):
            raise InvalidTransition(
                f"job {job_id} is {row['state']}; only failed, cancelled or skipped jobs can be retried"
            )
        job = _requeue(
            conn,
            row,
            message=f"retry requested (was {row['state']}: {row['error'] or ''})",
            now=now,
        )
    log.info("job requeued by retry", extra=_extra(job))
    return job


def recover_meeting(
    db: sqlite_utils.Database,
    meeting_uuid: str,
    reason: str,
    *,
    payload_changes: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[Job]:
    """Put the cancelled jobs of a meeting back in the queue (recording recovered from
    the trash), with ``payload_changes`` (e.g. the event's fresh download token) applied.

    Jobs in any other state are left alone; returns the jobs requeued.
    """
    moment = utc_now(now)  # one timestamp for every job requeued
    requeued = []
    with write_transaction(db) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "select id from jobs where meeting_uuid = ? and state = ? order by id",
                [meeting_uuid, CANCELLED],
            )
        ]
        for job_id in ids:
            row = _row(conn, job_id)
            payload = {**json.loads(row["payload"] or "{}"), **(payload_changes or {})}
            requeued.append(
                _requeue(
                    conn,
                    row,
                    message=f"{reason} (was cancelled: {row['error'] or ''})",
                    now=moment,
                    payload=payload,
                )
            )
    for job in requeued:
        log.info("cancelled job requeued: recording recovered", extra=_extra(job))
    return requeued


def revive_failed(
    db: sqlite_utils.Database,
    key_or_id: int | str,
    payload_changes: Mapping[str, Any],
    *,
    max_revivals: int,
    reason: str,
    now: datetime | None = None,
) -> Job | None:
    """Requeue a failed job with fresh ``payload_changes`` (polling found its recording
    again, with download data read anew), at most ``max_revivals`` times per job.

    The count is kept in the payload (``revivals``). Returns the requeued job, or
    ``None`` when the job is not failed or was revived often enough already.
    """
    with write_transaction(db) as conn:
        row = _lookup(conn, key_or_id)
        payload = json.loads(row["payload"] or "{}")
        revivals = int(payload.get("revivals") or 0)
        if row["state"] != FAILED or revivals >= max_revivals:
            return None
        payload = {**payload, **payload_changes, "revivals": revivals + 1}
        job = _requeue(
            conn,
            row,
            message=f"{reason} (revival {revivals + 1}/{max_revivals}; was failed: {row['error']})",
            now=now,
            payload=payload,
            keep_error=True,
        )
    log.info("failed job requeued with fresh download data", extra=_extra(job))
    return job


def skip(
    db: sqlite_utils.Database,
    job_id: int,
    reason: str,
    *,
    worker_id: str | None = None,
    now: datetime | None = None,
) -> Job:
    """Mark a job ``skipped`` (e.g. its meeting maps to no course).

    Without ``worker_id`` only a queued job can be skipped; with it, the lease
    owner skips the running job it holds (raises :class:`LeaseLost` otherwise).
    """
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        if worker_id is not None:
            _check_owner(row, worker_id)
        elif row["state"] != QUEUED:
            raise InvalidTransition(
                f"job {job_id} is {row['state']}; only a queued job can be skipped"
            )
        job = _update(conn, row, _finished(SKIPPED, reason, now), actor=worker_id, message=reason)
    log.info("job skipped", extra=_extra(job, reason=reason))
    return job


# ---------------------------------------------------------------- worker side


def claim(
    db: sqlite_utils.Database, worker_id: str, *, lease_s: float, now: datetime | None = None
) -> Job | None:
    """Lease the oldest due job to ``worker_id`` and move it to ``downloading``.

    Due jobs are ``queued`` ones whose ``next_attempt_at`` has come, and
    ``downloading``/``analyzing`` ones whose lease expired (their worker died);
    the latter count one attempt, and when that exhausts ``max_attempts`` the
    job is marked ``failed`` and the next due job is considered instead.
    Returns ``None`` when nothing is due.
    """
    moment = utc_now(now)
    at = _iso(moment)
    lease_until = _iso(moment + timedelta(seconds=lease_s))
    with write_transaction(db) as conn:
        while True:
            found = conn.execute(
                "select id from jobs where (state = ? and next_attempt_at <= ?) "
                "or (state in (?, ?) and lease_until <= ?) "
                "order by next_attempt_at, id limit 1",
                [QUEUED, at, DOWNLOADING, ANALYZING, at],
            ).fetchone()
            if found is None:
                return None
            row = _row(conn, found[0])
            attempts, message, error = row["attempts"], f"claimed by {worker_id}", row["error"]
            if row["state"] in RUNNING:
                attempts += 1
                error = (
                    f"lease of worker {row['lease_owner']} expired at {row['lease_until']} "
                    f"while {row['state']} (worker crashed or hung)"
                )
                if attempts >= row["max_attempts"]:
                    job = _update(
                        conn,
                        row,
                        {
                            "state": FAILED,
                            "attempts": attempts,
                            "error": error,
                            "finished_at": at,
                            "lease_until": None,
                            "updated_at": at,
                        },
                        actor=worker_id,
                        message=f"{error}; gave up after {attempts} attempts",
                    )
                    log.error("job failed: lease expired too often", extra=_extra(job))
                    continue
                message = f"{error}; reclaimed by {worker_id}"
                log.warning("job lease expired, reclaiming", extra=_extra(row, worker_id=worker_id))
            job = _update(
                conn,
                row,
                {
                    "state": DOWNLOADING,
                    "attempts": attempts,
                    "error": error,
                    "lease_owner": worker_id,
                    "lease_until": lease_until,
                    "updated_at": at,
                },
                actor=worker_id,
                message=f"{message} (attempt {attempts + 1}/{row['max_attempts']})",
            )
            break
    log.info("job claimed", extra=_extra(job, worker_id=worker_id, attempt=job.attempts + 1))
    return job


def set_state(
    db: sqlite_utils.Database,
    job_id: int,
    state: str,
    *,
    worker_id: str,
    message: str = "",
    now: datetime | None = None,
) -> Job:
    """Move a running job between ``downloading`` and ``analyzing`` (lease owner only).

    Raises :class:`JobCancelled` if the job was cancelled, :class:`LeaseLost`
    if another worker reclaimed it or it is no longer running, and
    :class:`InvalidTransition` for any other target state (use ``complete``,
    ``fail`` or ``skip`` to finish a job).
    """
    if state not in RUNNING:
        raise InvalidTransition(
            f"set_state only moves between {sorted(RUNNING)}; use complete/fail/skip for {state!r}"
        )
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
        job = _update(
            conn,
            row,
            {"state": state, "updated_at": _iso(utc_now(now))},
            actor=worker_id,
            message=message,
        )
    log.info("job state changed", extra=_extra(job, worker_id=worker_id))
    return job


def heartbeat(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    lease_s: float,
    *,
    now: datetime | None = None,
) -> Job:
    """Extend the lease to ``now + lease_s``; raises :class:`LeaseLost`/:class:`JobCancelled`.

    A worker whose lease expired but was not yet reclaimed by anyone still owns
    the job and may renew it. Heartbeats are not written to ``job_events``.
    """
    moment = utc_now(now)
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
        until, at = _iso(moment + timedelta(seconds=lease_s)), _iso(moment)
        conn.execute(
            "update jobs set lease_until = ?, updated_at = ? where id = ?", [until, at, job_id]
        )
        job = Job.from_row({**row, "lease_until": until, "updated_at": at})
    log.debug("job heartbeat", extra=_extra(job, worker_id=worker_id))
    return job


def complete(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    result_meeting_id: int | None,
    *,
    message: str = "",
    now: datetime | None = None,
) -> Job:
    """Mark the job ``done`` with the analysed meeting's id (lease owner only, exactly once)."""
    at = _iso(utc_now(now))
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
        job = _update(
            conn,
            row,
            {
                "state": DONE,
                "result_meeting_id": result_meeting_id,
                "error": None,
                "finished_at": at,
                "lease_until": None,
                "updated_at": at,
            },
            actor=worker_id,
            message=message or f"meeting {result_meeting_id}",
        )
    log.info("job done", extra=_extra(job, worker_id=worker_id, meeting_id=result_meeting_id))
    return job


def assert_held(db: sqlite_utils.Database, job_id: int, worker_id: str) -> Job:
    """Check that ``worker_id`` still holds the running job; raise :class:`JobCancelled` or
    :class:`LeaseLost` otherwise.

    Called inside the caller's ``write_transaction`` (a savepoint of it, under SQLite's
    write lock), it makes the caller's writes conditional on holding the job: a
    worker whose job was cancelled or reclaimed meanwhile stores nothing.
    """
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
    return Job.from_row(row)


def update_payload(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    changes: Mapping[str, Any],
    *,
    message: str = "",
    now: datetime | None = None,
) -> Job:
    """Merge ``changes`` into the running job's payload (lease owner only), e.g. the
    recording's download data read again from Zoom. ``None`` values remove keys."""
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
        payload = {**json.loads(row["payload"] or "{}"), **changes}
        payload = {k: v for k, v in payload.items() if v is not None}
        job = _update(
            conn,
            row,
            {"payload": json.dumps(payload, sort_keys=True), "updated_at": _iso(utc_now(now))},
            actor=worker_id,
            message=message or "payload updated",
        )
    return job


def backoff_delay(
    attempts: int,
    *,
    base_backoff_s: float = 60,
    max_backoff_s: float = 3600,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after the ``attempts``-th failure (``rollcall.store.db.backoff_delay``
    with the queue's defaults): ``min(max, base * 2**(attempts-1))``, plus up to ``jitter``
    of it at random."""
    return db_backoff_delay(attempts, base_backoff_s, max_backoff_s, jitter=jitter, rng=rng)


def fail(
    db: sqlite_utils.Database,
    job_id: int,
    worker_id: str,
    error: str,
    *,
    base_backoff_s: float = 60,
    max_backoff_s: float = 3600,
    jitter: float = 0.0,
    retryable: bool = True,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> Job:
    """Record a failed attempt (lease owner only).

    ``attempts`` goes up by one; while it is below ``max_attempts`` (and the
    error is ``retryable``) the job goes back to ``queued`` with
    ``next_attempt_at = now + backoff_delay(attempts)``, otherwise it ends
    ``failed``. The error text is kept in ``error`` either way.
    """
    moment = utc_now(now)
    at = _iso(moment)
    error = _truncate(error) or "unknown error"
    with write_transaction(db) as conn:
        row = _row(conn, job_id)
        _check_owner(row, worker_id)
        attempts = row["attempts"] + 1
        common = {"attempts": attempts, "error": error, "lease_until": None, "updated_at": at}
        if retryable and attempts < row["max_attempts"]:
            delay = backoff_delay(
                attempts,
                base_backoff_s=base_backoff_s,
                max_backoff_s=max_backoff_s,
                jitter=jitter,
                rng=rng,
            )
            retry_at = _iso(moment + timedelta(seconds=delay))
            job = _update(
                conn,
                row,
                {**common, "state": QUEUED, "next_attempt_at": retry_at},
                actor=worker_id,
                message=f"attempt {attempts}/{row['max_attempts']} failed, retry at {retry_at}: {error}",
            )
            log.warning("job attempt failed, will retry", extra=_extra(job, worker_id=worker_id))
        else:
            why = "permanent error" if not retryable else f"gave up after {attempts} attempts"
            job = _update(
                conn,
                row,
                {**common, "state": FAILED, "finished_at": at},
                actor=worker_id,
                message=f"{why}: {error}",
            )
            log.error("job failed", extra=_extra(job, worker_id=worker_id))
    return job


def requeue_owned(
    db: sqlite_utils.Database, worker_id: str, *, now: datetime | None = None
) -> list[Job]:
    """Graceful shutdown: put the running jobs leased to ``worker_id`` back in the queue.

    No attempt is counted; the jobs keep their ``next_attempt_at`` (already
    past), so they are due at once and keep their place in line.
    """
    at = _iso(utc_now(now))
    jobs = []
    with write_transaction(db) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "select id from jobs where lease_owner = ? and state in (?, ?) order by id",
                [worker_id, DOWNLOADING, ANALYZING],
            )
        ]
        for job_id in ids:
            jobs.append(
                _update(
                    conn,
                    _row(conn, job_id),
                    {
                        "state": QUEUED,
                        "lease_owner": None,
                        "lease_until": None,
                        "updated_at": at,
                    },
                    actor=worker_id,
                    message=f"requeued by {worker_id} on shutdown",
                )
            )
    for job in jobs:
        log.info("job requeued on shutdown", extra=_extra(job, worker_id=worker_id))
    return jobs


# ---------------------------------------------------------------- queries


def get(db: sqlite_utils.Database, key_or_id: int | str) -> Job:
    """The job with this id (int) or key (str); raises :class:`JobNotFound`."""
    return Job.from_row(_lookup(db.conn, key_or_id))


def find(db: sqlite_utils.Database, key: str) -> Job | None:
    """The job with this key, or ``None``."""
    try:
        return get(db, key)
    except JobNotFound:
        return None


def list_jobs(
    db: sqlite_utils.Database,
    state: str | None = None,
    limit: int = 100,
    *,
    course_id: str | None = None,
) -> list[Job]:
    """Jobs, newest first, optionally filtered by state and course."""
    where, args = [], []
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if course_id is not None:
        where.append("course_id = ?")
        args.append(course_id)
    clause = f"where {' and '.join(where)}" if where else ""
    return [
        Job.from_row(r)
        for r in db.query(f"select * from jobs {clause} order by id desc limit ?", [*args, limit])
    ]


def list_jobs_of_meeting(db: sqlite_utils.Database, meeting_uuid: str) -> list[Job]:
    """Every job of one Zoom meeting instance, oldest first."""
    return [
        Job.from_row(r)
        for r in db.query("select * from jobs where meeting_uuid = ? order by id", [meeting_uuid])
    ]


def events(db: sqlite_utils.Database, job_id: int) -> list[JobEvent]:
    """The audit trail of a job, oldest first."""
    return [
        JobEvent(**r)
        for r in db.query("select * from job_events where job_id = ? order by id", [job_id])
    ]


def queue_depth(db: sqlite_utils.Database) -> dict[str, int]:
    """Number of jobs in every state (all states present, zeros included)."""
    counts = dict.fromkeys(STATES, 0)
    for r in db.query("select state, count(*) as n from jobs group by state"):
        counts[r["state"]] = r["n"]
    return counts


def delete_for_meetings(db: sqlite_utils.Database, meeting_ids: list[int]) -> int:
    """Delete the finished jobs (and their events) that produced these meetings.

    Used when the meetings are erased (retention): a job row holds the Zoom topic,
    the host's email, the Zoom meeting id and the download URL. Jobs still in
    progress are left alone. Runs inside the caller's write transaction (or opens
    one); returns the number of jobs deleted.
    """
    if not meeting_ids:
        return 0
    marks = ", ".join("?" * len(meeting_ids))
    finished = ", ".join(f"'{s}'" for s in sorted(TERMINAL))
    where = f"result_meeting_id in ({marks}) and state in ({finished})"
    with write_transaction(db):
        db.execute(
            f"delete from job_events where job_id in (select id from jobs where {where})",
            list(meeting_ids),
        )
        cur = db.execute(f"delete from jobs where {where}", list(meeting_ids))
    return cur.rowcount
