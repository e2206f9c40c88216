"""Cheap stored meetings for the report and correction tests (no video analysis).

Rows go through the same storage functions the analysis uses
(``upsert_meeting`` + ``replace_results``), so the reports read them exactly
as they would read an analysed meeting.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_utils

from rollcall.config import Config
from rollcall.presence import attendance_status
from rollcall.store import storage


def add_course(db: sqlite_utils.Database, course: str, students: Sequence[str]) -> None:
    storage.add_course(db, course, f"Course {course}")
    for sid in students:
        storage.upsert_student(db, course, sid, name=f"Name of {sid}", email=f"{sid}@x.edu")


def add_meeting(
    db: sqlite_utils.Database,
    course: str,
    key: str,
    minutes: dict[str, Sequence[int]],
    *,
    start: str | None = "2026-09-01T09:00:00",
    status: str = "done",
    title: str = "",
    review: dict[str, Sequence[int]] | None = None,
) -> int:
    """Store a meeting whose students were seen in ``minutes`` (0/1 rows, same length).

    ``review`` (0/1 rows of the same length) marks minutes that need review; present
    and needs-review minutes get stored evidence (``review_evidence``'s numbers)."""
    n = len(next(iter(minutes.values())))
    review = review or {}
    meeting_id = storage.upsert_meeting(
        db,
        {
            "course_id": course,
            "source_key": key,
            "title": title or key,
            "source": "test",
            "start_time": start,
            "status": "analyzing",
        },
    )
    rules = Config().attendance
    presence, attendance, evidence = [], [], []
    for sid, row in minutes.items():
        pk = storage.get_student(db, course, sid)["id"]
        doubt = review.get(sid, [0] * n)
        presence += [
            {
                "meeting_id": meeting_id,
                "student_pk": pk,
                "minute": m,
                "seconds_seen": 60.0 * (v or r),
                "present": v,
                "review": r,
            }
            for m, (v, r) in enumerate(zip(row, doubt, strict=True))
        ]
        if review:
            evidence += [
                review_evidence(meeting_id, pk, m, present=bool(v))
                for m, (v, r) in enumerate(zip(row, doubt, strict=True))
                if v or r
            ]
        attendance.append(
            {
                "meeting_id": meeting_id,
                "student_pk": pk,
                "present_minutes": sum(row),
                "attendance_pct": round(100.0 * sum(row) / n, 1),
                "status": attendance_status(
                    row,
                    absent_below_pct=rules.absent_below_pct,
                    late_after_pct=rules.late_after_pct,
                    left_early_pct=rules.left_early_pct,
                ),
                "review_minutes": sum(doubt),
            }
        )
    storage.replace_results(
        db,
        meeting_id,
        presence,
        attendance,
        [],
        {
            "status": status,
            "error": "" if status == "done" else "boom",
            "duration_s": 60.0 * n,
            "analyzed_at": storage.now_iso(),
        },
        evidence,
    )
    return meeting_id


def review_evidence(meeting_id: int, student_pk: int, minute: int, *, present: bool) -> dict:
    """An evidence row: a clear vote-path match when ``present``, else a borderline one."""
    return {
        "meeting_id": meeting_id,
        "student_pk": student_pk,
        "minute": minute,
        "state": "present" if present else "review",
        "samples": 12,
        "matched": 11 if present else 2,
        "best_similarity": 0.61 if present else 0.41,
        "median_similarity": 0.55 if present else 0.37,
        "margin_student": 0.21 if present else 0.03,
        "margin_cohort": 0.12 if present else -0.02,
        "path": "vote" if present else "centroid",
        "tracks": [3 if present else 7],
        "reason": "" if present else "only 0.03 closer than to another student",
    }
