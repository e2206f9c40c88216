"""Reading a meeting's stored results back as an ``AttendanceReport``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import pluggy
import sqlite_utils

from rollcall.config import AttendanceConfig, Config
from rollcall.pipeline.plugin_manager import report_manager
from rollcall.presence import attendance_totals, minute_lengths
from rollcall.store import storage
from rollcall.store.corrections import apply_corrections, corrections_by_student
from rollcall.types import AttendanceReport, MinuteEvidence, StudentAttendance


def meeting_report(
    db: sqlite_utils.Database,
    meeting_id: int,
    rules: AttendanceConfig | None = None,
    *,
    pm: pluggy.PluginManager | None = None,
) -> AttendanceReport:
    """The attendance report of an analysed meeting, from the database alone.

    Every student enrolled in the course gets a row; a student enrolled after
    the analysis shows as absent with zero minutes. Instructors' corrections
    are applied (later ones win) and a corrected student's totals and status
    are recomputed with ``rules`` (the ``[attendance]`` thresholds; defaults
    from ``Config()``), the same way the attendance plugin computed them.
    The plugins' extra sheets come from ``pm`` (default: the built-in analyzers).
    """
    meeting = storage.get_meeting(db, meeting_id)
    students = meeting_students(db, meeting, rules)
    clusters = db["unknown_clusters"].count_where(
        "meeting_id = ? and label_student_pk is null", [meeting_id]
    )
    start = meeting["start_time"]
    return AttendanceReport(
        extra_sheets=analyzer_sheets(db, meeting_id, pm),
        course_id=meeting["course_id"],
        meeting_title=meeting["title"] or f"meeting {meeting_id}",
        start_time=datetime.fromisoformat(start) if start else None,
        duration_s=meeting["duration_s"] or 0.0,
        students=tuple(students),
        unknown_clusters=clusters,
        warnings=tuple(w for w in (meeting["warnings"] or "").split("\n") if w),
        meeting_status=meeting["status"] or "unknown",
    )


def meeting_students(
    db: sqlite_utils.Database, meeting: dict, rules: AttendanceConfig | None = None
) -> list[StudentAttendance]:
    """One corrected row per enrolled student of a meeting (a ``meetings`` table row)."""
    rules = rules or Config().attendance
    meeting_id = meeting["id"]
    n = len(minute_lengths(meeting["duration_s"] or 0.0))
    presence: dict[int, list[int]] = {}
    review: dict[int, set[int]] = {}
    for r in db.query(
        "select student_pk, minute, present, review from presence where meeting_id = ? "
        "order by minute",
        [meeting_id],
    ):
        presence.setdefault(r["student_pk"], [0] * n)[r["minute"]] = r["present"]
        if r["review"] and not r["present"]:
            review.setdefault(r["student_pk"], set()).add(r["minute"])
    attendance = {
        r["student_pk"]: r for r in db["attendance"].rows_where("meeting_id = ?", [meeting_id])
    }
    corrections = corrections_by_student(db, meeting_id)
    evidence = stored_evidence(db, meeting_id)
    students = []
    for s in db["students"].rows_where(
        "course_id = ?", [meeting["course_id"]], order_by="student_id"
    ):
        row = attendance.get(s["id"])
        minutes = tuple(presence.get(s["id"], [0] * n))
        present = row["present_minutes"] if row else 0
        pct = row["attendance_pct"] if row else 0.0
        status = row["status"] if row else "absent"
        fixes = corrections.get(s["id"], [])
        touched: tuple[int, ...] = ()
        if fixes:
            minutes, touched = apply_corrections(minutes, fixes)
        if touched:
            present, pct, status = attendance_totals(
                minutes,
                absent_below_pct=rules.absent_below_pct,
                late_after_pct=rules.late_after_pct,
                left_early_pct=rules.left_early_pct,
            )
        students.append(
            StudentAttendance(
                student_id=s["student_id"],
                name=s["name"],
                email=s["email"] or "",
                minutes=minutes,
                present_minutes=present,
                attendance_pct=pct,
                status=status,
                corrected_minutes=touched,
                corrections=tuple(c.note() for c in fixes),
                # A corrected minute is decided: it no longer needs review.
                review_minutes=tuple(sorted(review.get(s["id"], set()) - set(touched))),
                evidence=evidence.get(s["id"], ()),
            )
        )
    return students


@dataclass(frozen=True, slots=True)
class ReviewCount:
    """What is left to review in one analysed meeting (corrections applied)."""

    meeting_id: int
    minutes: int
    students: int


def meetings_to_review(
    db: sqlite_utils.Database,
    course_id: str | None = None,
    rules: AttendanceConfig | None = None,
) -> dict[int, ReviewCount]:
    """Meeting id -> what still needs review, for the analysed meetings (of ``course_id``,
    else of every course) that have needs-review minutes no correction has decided."""
    where, args = "", []
    if course_id is not None:
        where, args = " and m.course_id = ?", [course_id]
    ids = [
        r["meeting_id"]
        for r in db.query(
            "select distinct p.meeting_id from presence p join meetings m on m.id = p.meeting_id "
            f"where p.review = 1 and p.present = 0 and m.status = 'done'{where} "
            "order by p.meeting_id",
            args,
        )
    ]
    out = {}
    for meeting_id in ids:
        students = meeting_students(db, storage.get_meeting(db, meeting_id), rules)
        minutes = sum(len(s.review_minutes) for s in students)
        if minutes:
            people = sum(1 for s in students if s.review_minutes)
            out[meeting_id] = ReviewCount(meeting_id, minutes, people)
    return out


def stored_evidence(
    db: sqlite_utils.Database, meeting_id: int
) -> dict[int, tuple[MinuteEvidence, ...]]:
    """student_pk -> the stored per-minute evidence of a meeting, by minute."""
    out: dict[int, list[MinuteEvidence]] = {}
    for r in db.query(
        "select * from minute_evidence where meeting_id = ? order by student_pk, minute",
        [meeting_id],
    ):
        out.setdefault(r["student_pk"], []).append(evidence_of(r))
    return {pk: tuple(rows) for pk, rows in out.items()}


def evidence_of(row: dict) -> MinuteEvidence:
    """A ``minute_evidence`` row as a :class:`MinuteEvidence`."""
    tracks = row["tracks"]
    return MinuteEvidence(
        minute=row["minute"],
        state=row["state"],
        samples=row["samples"],
        matched=row["matched"],
        best_similarity=row["best_similarity"],
        median_similarity=row["median_similarity"],
        margin_student=row["margin_student"],
        margin_cohort=row["margin_cohort"],
        path=row["path"],
        tracks=tuple(json.loads(tracks) if isinstance(tracks, str) else tracks or ()),
        reason=row.get("reason") or "",
    )


def analyzer_sheets(
    db: sqlite_utils.Database, meeting_id: int, pm: pluggy.PluginManager | None = None
) -> tuple:
    """The plugins' extra report sheets (``rollcall_report_sheets``), in registration
    order; empty when none of them stored anything for the meeting."""
    pm = pm if pm is not None else report_manager()
    answers = pm.hook.rollcall_report_sheets(db=db, meeting_id=meeting_id)
    return tuple(
        (title, tuple(header), tuple(tuple(r) for r in rows))
        for sheets in reversed(answers)  # pluggy answers the last registered first
        for title, header, rows in sheets or ()
        if rows
    )
