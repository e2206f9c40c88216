"""Retention: which meetings are older than ``[privacy] retention_days``, and erasing them.

A meeting's age counts from the day of the class (its ``start_time``, from
``--start``, the file or Zoom), and only when that is unknown from the day it
was analysed (``analyzed_at``, else ``created_at``): re-analysing an old
recording does not make its results younger.

Erasing a meeting deletes every row holding its ``meeting_id`` (core and plugin
tables, the outbox...), the finished Zoom jobs that produced it (topic, host
email, Zoom meeting id, download URL: :func:`rollcall.store.jobs.delete_for_meetings`)
and its evidence folder, then checkpoints the WAL so nothing of it stays
readable in the database files (``rollcall.store.db.checkpoint_erased``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from rollcall.store import jobs, storage
from rollcall.store.db import checkpoint_erased, utc_now, write_transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExpiredMeeting:
    """A meeting past the retention period, and the date its age counts from."""

    meeting_id: int
    course_id: str
    title: str
    counted_from: datetime  # aware UTC
    basis: str  # "class start" or "analysis" (start unknown)
    age_days: int


def _parse(text: str | None) -> datetime | None:
    """An ISO timestamp as aware UTC (a naive one, e.g. ``--start 2026-09-01T09:00``,
    is taken as UTC: a few hours do not matter for a period counted in days)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def meeting_date(meeting: dict[str, Any]) -> tuple[datetime, str] | None:
    """When a meeting's age counts from: its class start, else its analysis."""
    start = _parse(meeting.get("start_time"))
    if start is not None:
        return start, "class start"
    analysed = _parse(meeting.get("analyzed_at")) or _parse(meeting.get("created_at"))
    return (analysed, "analysis") if analysed is not None else None


def expired_meetings(
    db: sqlite_utils.Database, days: int, *, now: datetime | None = None
) -> list[ExpiredMeeting]:
    """Meetings whose class (or analysis, start unknown) is more than ``days`` days old.

    ``days <= 0`` means keep everything (none is expired).
    """
    if days <= 0:
        return []
    current = utc_now(now)
    cutoff = current - timedelta(days=days)
    out = []
    for m in db.query(
        "select id, course_id, title, start_time, analyzed_at, created_at from meetings order by id"
    ):
        dated = meeting_date(m)
        if dated is None or dated[0] >= cutoff:
            continue
        out.append(
            ExpiredMeeting(
                meeting_id=m["id"],
                course_id=m["course_id"],
                title=m["title"] or "",
                counted_from=dated[0],
                basis=dated[1],
                age_days=(current - dated[0]).days,
            )
        )
    return out


def erase_meetings(
    db: sqlite_utils.Database, meeting_ids: list[int], home: Path | None = None
) -> int:
    """Delete these meetings with every row that belongs to them (one transaction),
    the finished jobs that produced them and their evidence folders; returns the
    number of jobs deleted."""
    if not meeting_ids:
        return 0
    with write_transaction(db):
        for meeting_id in meeting_ids:
            storage.delete_meeting_rows(db, meeting_id)
        deleted_jobs = jobs.delete_for_meetings(db, meeting_ids)
    checkpoint_erased(db)
    if home is not None:
        storage.remove_evidence(home, meeting_ids)
    return deleted_jobs


def purge(
    db: sqlite_utils.Database,
    days: int,
    home: Path | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[ExpiredMeeting]:
    """Erase the meetings past ``days`` days (see :func:`expired_meetings`); with
    ``dry_run`` only list them. Returns the meetings erased (or that would be)."""
    expired = expired_meetings(db, days, now=now)
    if expired and not dry_run:
        ids = [e.meeting_id for e in expired]
        deleted_jobs = erase_meetings(db, ids, home)
        log.info(
            "retention: meetings erased",
            extra={"meetings": ids, "jobs": deleted_jobs, "retention_days": days},
        )
    return expired


def purge_older_than(
    db: sqlite_utils.Database,
    days: int,
    home: Path | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Delete the meetings older than ``days`` days with all their results (see
    :func:`purge`: age counts from the class's start when known). Returns the number
    of meetings deleted; ``days == 0`` keeps everything.
    """
    return len(purge(db, days, home, now=now))
