"""Instructors' manual attendance corrections (stored beside the automatic results).

A correction says "student S was present (or absent) in minutes A..B of
meeting M, because ...". It lives in its own table and never touches the
``presence``/``attendance`` tables, so re-running the analysis (which replaces
those tables' rows) cannot lose it, and removing it restores the automatic
result. Reports apply the corrections when they read a meeting back (see
:func:`apply_corrections` and :func:`rollcall.reports.results.meeting_report`): the
later correction wins where two overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from rollcall.presence import minute_lengths
from rollcall.store import storage
from rollcall.store.db import write_transaction
from rollcall.types import CorrectionNote


class CorrectionError(ValueError):
    """A correction that cannot be made as asked (bad minutes, meeting not analysed...)."""


@dataclass(frozen=True, slots=True)
class Correction:
    """One stored correction, with the student's school id for display."""

    id: int
    meeting_id: int
    student_pk: int
    student_id: str
    minute_from: int
    minute_to: int
    present: bool
    reason: str
    made_by: str
    made_at: str

    def note(self) -> CorrectionNote:
        """The part the report writers show."""
        return CorrectionNote(
            id=self.id,
            minute_from=self.minute_from,
            minute_to=self.minute_to,
            present=self.present,
            reason=self.reason,
            made_by=self.made_by,
            made_at=self.made_at,
        )


def meeting_minutes(meeting: dict[str, Any]) -> int:
    """How many (possibly partial) minutes the meeting's report has."""
    return len(minute_lengths(meeting["duration_s"] or 0.0))


def minute_labels_of(meeting: dict[str, Any]) -> list[str]:
    """The report's ``HH:MM`` column headers (clock time when the start is known)."""
    n = meeting_minutes(meeting)
    if meeting["start_time"]:
        start = datetime.fromisoformat(meeting["start_time"])
        return [(start + timedelta(minutes=i)).strftime("%H:%M") for i in range(n)]
    return [f"{i // 60:02d}:{i % 60:02d}" for i in range(n)]


_RANGE = re.compile(r"^\s*([0-9:]+)\s*(?:-\s*([0-9:]+)\s*)?$")


def parse_minutes(text: str, meeting: dict[str, Any]) -> tuple[int, int]:
    """``"10-45"``, ``"7"`` or ``"09:10-09:45"`` -> 0-based inclusive minute range.

    Plain numbers are 0-based minute offsets; ``HH:MM`` values are the column
    headers of the meeting's report (clock times when its start is known).
    The range must lie inside the meeting, so a typo cannot silently correct
    nothing.
    """
    n = meeting_minutes(meeting)
    match = _RANGE.match(text)
    if not match:
        raise CorrectionError(
            f"--minutes {text!r} is not a minute range; use e.g. 10-45 (0-based minutes) "
            f"or 09:10-09:45 (the report's column headers)"
        )
    labels = minute_labels_of(meeting)

    def one(value: str) -> int:
        if ":" not in value:
            return int(value)
        if value not in labels:
            raise CorrectionError(
                f"--minutes {text!r}: {value} is not a minute of meeting {meeting['id']} "
                f"(its minutes run from {labels[0]} to {labels[-1]})"
            )
        return labels.index(value)

    first = one(match.group(1))
    last = one(match.group(2)) if match.group(2) else first
    if first > last:
        raise CorrectionError(f"--minutes {text!r}: the first minute comes after the last")
    if last >= n:
        raise CorrectionError(
            f"--minutes {text!r} is out of range: meeting {meeting['id']} has {n} minute(s), "
            f"numbered 0-{n - 1}"
        )
    return first, last


def _analysed_meeting(db: sqlite_utils.Database, meeting_id: int) -> dict[str, Any]:
    meeting = storage.get_meeting(db, meeting_id)
    if meeting["status"] != "done":
        raise CorrectionError(
            f"meeting {meeting_id} has no analysis results to correct "
            f"(status {meeting['status'] or 'unknown'})"
        )
    return meeting


def add_correction(
    db: sqlite_utils.Database,
    meeting_id: int,
    student_id: str,
    *,
    present: bool,
    reason: str,
    made_by: str,
    minutes: str | tuple[int, int] | None = None,
) -> Correction:
    """Store a correction for one student of an analysed meeting and return it.

    ``minutes`` is ``None`` for the whole meeting, a text range for
    :func:`parse_minutes`, or a ``(first, last)`` pair of 0-based minutes.
    Raises :class:`storage.NotFound` for an unknown meeting or a student who is
    not enrolled in its course, :class:`CorrectionError` for anything else.
    """
    meeting = _analysed_meeting(db, meeting_id)
    student = storage.get_student(db, meeting["course_id"], student_id)
    if not reason.strip():
        raise CorrectionError("a correction needs a reason (--reason TEXT)")
    n = meeting_minutes(meeting)
    if minutes is None:
        first, last = 0, n - 1
    elif isinstance(minutes, str):
        first, last = parse_minutes(minutes, meeting)
    else:
        first, last = minutes
        if not 0 <= first <= last < n:
            raise CorrectionError(
                f"minutes {first}-{last} are out of range: meeting {meeting_id} has {n} "
                f"minute(s), numbered 0-{n - 1}"
            )
    row = {
        "meeting_id": meeting_id,
        "student_pk": student["id"],
        "minute_from": first,
        "minute_to": last,
        "present": 1 if present else 0,
        "reason": reason.strip(),
        "made_by": made_by,
        "made_at": storage.now_iso(),
    }
    with write_transaction(db):
        pk = db.table("corrections").insert(row).last_pk
    return _from_row(dict(row, id=pk, student_id=student["student_id"]))


def _from_row(row: dict[str, Any]) -> Correction:
    return Correction(
        id=row["id"],
        meeting_id=row["meeting_id"],
        student_pk=row["student_pk"],
        student_id=row["student_id"],
        minute_from=row["minute_from"],
        minute_to=row["minute_to"],
        present=bool(row["present"]),
        reason=row["reason"],
        made_by=row["made_by"],
        made_at=row["made_at"],
    )


def list_corrections(db: sqlite_utils.Database, meeting_id: int) -> list[Correction]:
    """A meeting's corrections in the order they were made (unknown meeting: NotFound)."""
    storage.get_meeting(db, meeting_id)
    return [
        _from_row(r)
        for r in db.query(
            "select c.*, s.student_id from corrections c join students s on s.id = c.student_pk "
            "where c.meeting_id = ? order by c.id",
            [meeting_id],
        )
    ]


def remove_correction(db: sqlite_utils.Database, correction_id: int) -> Correction:
    """Delete one correction (the automatic result shows again) and return what it was."""
    rows = list(
        db.query(
            "select c.*, s.student_id from corrections c join students s on s.id = c.student_pk "
            "where c.id = ?",
            [correction_id],
        )
    )
    if not rows:
        raise storage.NotFound(f"correction {correction_id} does not exist")
    with write_transaction(db):
        db.execute("delete from corrections where id = ?", [correction_id])
    return _from_row(rows[0])


def corrections_by_student(
    db: sqlite_utils.Database, meeting_id: int
) -> dict[int, list[Correction]]:
    """student_pk -> that student's corrections of the meeting, oldest first."""
    out: dict[int, list[Correction]] = {}
    for c in list_corrections(db, meeting_id):
        out.setdefault(c.student_pk, []).append(c)
    return out


def apply_corrections(
    minutes: Sequence[int], corrections: Iterable[Correction | CorrectionNote]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Overlay corrections (oldest first, so later ones win) on a 0/1 minute row.

    Returns the corrected row and the sorted minutes a correction decided.
    Minutes beyond the row (a re-analysis found a shorter recording) are ignored.
    """
    out = list(minutes)
    touched: set[int] = set()
    for c in sorted(corrections, key=lambda c: c.id):
        for m in range(max(0, c.minute_from), min(len(out) - 1, c.minute_to) + 1):
            out[m] = 1 if c.present else 0
            touched.add(m)
    return tuple(out), tuple(sorted(touched))
