"""A participants report that arrives after the analysis, applied to the stored minutes.

The service asks Zoom for a meeting's participants report before analysing the
recording and passes it to the analysis (``counter_evidence`` then doubts the
matches it contradicts). When Zoom has not built the report yet, the meeting is
analysed without it and :func:`doubt_stored_minutes` applies the same rule
(:func:`rollcall.pipeline.counter_evidence.doubt_by_participants`) to the stored
rows once the report comes: a present minute of a student the report says was
not connected becomes "needs review" with the same reason, and the student's
present minutes, percentage, status and review count are recomputed as the
attendance plugin does. The caller runs it inside its ``write_transaction`` so
the minutes change at once, together with whatever else it stores.

Instructor corrections live in their own table and are applied when a meeting
is read back, where they win over this doubt as over any automatic result.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import datetime

import sqlite_utils

from rollcall.config import Config
from rollcall.pipeline.counter_evidence import Person, connected_minutes, doubt_by_participants
from rollcall.reports.results import stored_evidence
from rollcall.store import storage
from rollcall.store.db import write_transaction
from rollcall.types import Participant, StudentPresence

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredDoubt:
    """What :func:`doubt_stored_minutes` changed: student pk -> minutes now in review."""

    minutes: dict[int, tuple[int, ...]]

    @property
    def count(self) -> int:
        return sum(len(m) for m in self.minutes.values())


def _stored_rows(
    db: sqlite_utils.Database, meeting_id: int, students: Sequence[dict]
) -> list[StudentPresence]:
    """The meeting's stored attendance as the attendance plugin's rows (roster index =
    position in ``students``); students without an attendance row are left out."""
    attendance = {
        r["student_pk"]: r for r in db["attendance"].rows_where("meeting_id = ?", [meeting_id])
    }
    presence: dict[int, list[dict]] = {}
    for r in db.query(
        "select student_pk, minute, seconds_seen, present, review from presence "
        "where meeting_id = ? order by student_pk, minute",
        [meeting_id],
    ):
        presence.setdefault(r["student_pk"], []).append(r)
    evidence = stored_evidence(db, meeting_id)
    rows = []
    for index, s in enumerate(students):
        row, minutes = attendance.get(s["id"]), presence.get(s["id"], [])
        if row is None or not minutes:
            continue
        rows.append(
            StudentPresence(
                student_index=index,
                seconds_seen=tuple(m["seconds_seen"] for m in minutes),
                minutes=tuple(m["present"] for m in minutes),
                present_minutes=row["present_minutes"],
                attendance_pct=row["attendance_pct"],
                status=row["status"],
                review=tuple(m["review"] for m in minutes),
                evidence=evidence.get(s["id"], ()),
            )
        )
    return rows


def doubt_stored_minutes(
    db: sqlite_utils.Database,
    config: Config,
    meeting_id: int,
    participants: Sequence[Participant],
    start: datetime | None,
) -> StoredDoubt:
    """Apply the participants report to a stored meeting's minutes (one transaction,
    a savepoint of the caller's). ``start`` is the recording's start (``None``: the
    report's first join)."""
    meeting = storage.get_meeting(db, meeting_id)
    students = list(
        db["students"].rows_where("course_id = ?", [meeting["course_id"]], order_by="id")
    )
    people = [
        Person(i, s["student_id"], s["name"], s["email"] or "") for i, s in enumerate(students)
    ]
    connected = connected_minutes(participants, people, start, meeting["duration_s"] or 0.0)
    changed: dict[int, tuple[int, ...]] = {}
    with write_transaction(db):
        before = _stored_rows(db, meeting_id, students)
        after = doubt_by_participants(before, connected, config.attendance)
        for old, new in zip(before, after, strict=True):
            if new is old:
                continue
            pk = students[new.student_index]["id"]
            for minute, (was, now) in enumerate(zip(old.minutes, new.minutes, strict=True)):
                if was != now or old.review[minute] != new.review[minute]:
                    db.execute(
                        "update presence set present = ?, review = ? "
                        "where meeting_id = ? and student_pk = ? and minute = ?",
                        [now, new.review[minute], meeting_id, pk, minute],
                    )
            db.execute(
                "update attendance set present_minutes = ?, attendance_pct = ?, status = ?, "
                "review_minutes = ? where meeting_id = ? and student_pk = ?",
                [
                    new.present_minutes,
                    new.attendance_pct,
                    new.status,
                    new.review_minutes,
                    meeting_id,
                    pk,
                ],
            )
            for ev in new.evidence:
                db.execute(
                    "update minute_evidence set state = ?, reason = ? "
                    "where meeting_id = ? and student_pk = ? and minute = ?",
                    [ev.state, ev.reason, meeting_id, pk, ev.minute],
                )
            doubted = tuple(
                m
                for m, (was, now) in enumerate(zip(old.minutes, new.minutes, strict=True))
                if was and not now
            )
            if doubted:
                changed[pk] = doubted
    doubt = StoredDoubt(changed)
    log.info(
        "participants report applied to the stored minutes",
        extra={"meeting_id": meeting_id, "doubted_minutes": doubt.count},
    )
    return doubt
