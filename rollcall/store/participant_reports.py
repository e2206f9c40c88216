"""Zoom participants reports still to fetch, retried on their own schedule.

Zoom builds a meeting's participants report some minutes after the meeting
ends, so the first request (right after the analysis) often gets "not ready".
The meeting is then stored with a ``pending`` row here: it is asked for again
every ``[zoom] participants_retry_s`` seconds until it arrives (``done``) or
``[zoom] participants_give_up_h`` hours have passed (``missing``). Meanwhile
the meeting's warnings say that the report is missing, so reports and
``rollcall meeting list`` show it.

Schema: migration 7 in ``rollcall.store.schema`` (one row per meeting); the
``meeting_id`` column makes the retention purge and meeting removal delete a
row with its meeting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from rollcall.store.db import now_iso, utc_now, write_transaction

log = logging.getLogger(__name__)

PENDING = "pending"
DONE = "done"
MISSING = "missing"
#: Every warning line this module writes starts so (and names "participants", which
#: ``store_participants`` clears when the report is stored).
WARNING_PREFIX = "Zoom participants report"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class PendingReport:
    meeting_id: int
    meeting_uuid: str
    start_time: datetime | None
    state: str
    attempts: int
    next_attempt_at: str
    give_up_at: str
    last_error: str


def _from_row(row: dict[str, Any]) -> PendingReport:
    start = row["start_time"]
    return PendingReport(
        meeting_id=row["meeting_id"],
        meeting_uuid=row["meeting_uuid"],
        start_time=datetime.fromisoformat(start) if start else None,
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        give_up_at=row["give_up_at"],
        last_error=row["last_error"] or "",
    )


def _set_warning(db: sqlite_utils.Database, meeting_id: int, line: str) -> None:
    """Replace this module's warning line of the meeting with ``line`` ("" = remove it)."""
    meeting = db.table("meetings").get(meeting_id)
    kept = [
        w for w in (meeting["warnings"] or "").split("\n") if w and not w.startswith(WARNING_PREFIX)
    ]
    db.table("meetings").update(
        meeting_id, {"warnings": "\n".join(kept + ([line] if line else []))}
    )


def schedule(
    db: sqlite_utils.Database,
    meeting_id: int,
    meeting_uuid: str,
    start_time: datetime | None,
    error: str,
    *,
    retry_s: float,
    give_up_h: float,
    now: datetime | None = None,
) -> PendingReport:
    """The first request failed: store a pending report due again in ``retry_s`` seconds
    (the first failure counts one attempt) and say so in the meeting's warnings."""
    moment = utc_now(now)
    give_up_at = moment + timedelta(hours=give_up_h)
    error = error[:MAX_ERROR_CHARS]
    row = {
        "meeting_id": meeting_id,
        "meeting_uuid": meeting_uuid,
        "start_time": start_time.isoformat() if start_time else None,
        "state": PENDING,
        "attempts": 1,
        "first_attempt_at": now_iso(moment),
        "next_attempt_at": now_iso(moment + timedelta(seconds=retry_s)),
        "give_up_at": now_iso(give_up_at),
        "last_error": error,
        "updated_at": now_iso(moment),
    }
    with write_transaction(db):  # one row per meeting
        db.execute("delete from participant_reports where meeting_id = ?", [meeting_id])
        db.table("participant_reports").insert(row)
        _set_warning(
            db,
            meeting_id,
            f"{WARNING_PREFIX} not available yet; asking Zoom again until "
            f"{now_iso(give_up_at)} ({error})",
        )
    log.info(
        "participants report not ready; will ask again",
        extra={"meeting_id": meeting_id, "next_attempt_at": row["next_attempt_at"]},
    )
    return _from_row(row)


def due(db: sqlite_utils.Database, *, now: datetime | None = None) -> list[PendingReport]:
    """Pending reports whose next attempt has come, oldest first."""
    return [
        _from_row(r)
        for r in db.query(
            "select * from participant_reports where state = ? and next_attempt_at <= ? "
            "order by next_attempt_at, meeting_id",
            [PENDING, now_iso(now)],
        )
    ]


def record_done(db: sqlite_utils.Database, meeting_id: int, *, now: datetime | None = None) -> None:
    """The report was fetched and stored: no retry, no warning."""
    with write_transaction(db):
        db.execute(
            "update participant_reports set state = ?, last_error = '', updated_at = ? "
            "where meeting_id = ?",
            [DONE, now_iso(now), meeting_id],
        )
        if db.table("meetings").count_where("id = ?", [meeting_id]):
            _set_warning(db, meeting_id, "")


def record_failure(
    db: sqlite_utils.Database,
    meeting_id: int,
    error: str,
    *,
    retry_s: float,
    now: datetime | None = None,
) -> str:
    """Another "not ready": due again in ``retry_s`` seconds, or ``missing`` for good when
    that would be past the deadline. Returns the new state."""
    moment = utc_now(now)
    error = error[:MAX_ERROR_CHARS]
    with write_transaction(db):
        (row,) = db.query("select * from participant_reports where meeting_id = ?", [meeting_id])
        attempts = row["attempts"] + 1
        next_at = moment + timedelta(seconds=retry_s)
        state = MISSING if now_iso(next_at) > row["give_up_at"] else PENDING
        db.execute(
            "update participant_reports set state = ?, attempts = ?, next_attempt_at = ?, "
            "last_error = ?, updated_at = ? where meeting_id = ?",
            [state, attempts, now_iso(next_at), error, now_iso(moment), meeting_id],
        )
        if state == MISSING:
            _set_warning(
                db,
                meeting_id,
                f"{WARNING_PREFIX} missing: Zoom did not provide it after {attempts} "
                f"attempts since {row['first_attempt_at']} ({error})",
            )
    log.log(
        logging.WARNING if state == MISSING else logging.INFO,
        "participants report still missing",
        extra={"meeting_id": meeting_id, "attempts": attempts, "state": state},
    )
    return state


def status_by_meeting(db: sqlite_utils.Database) -> dict[int, str]:
    """meeting id -> ``pending`` or ``missing`` for meetings whose report is not stored."""
    return {
        r["meeting_id"]: r["state"]
        for r in db.query(
            "select meeting_id, state from participant_reports where state != ?", [DONE]
        )
    }
