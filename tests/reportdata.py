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
) -> int:
    """Store a meeting whose students were seen in ``minutes`` (0/1 rows, same length)."""
    n = len(next(iter(minutes.values())))
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
    presence, attendance = [], []
    for sid, row in minutes.items():
        pk = storage.get_student(db, course, sid)["id"]
        presence += [
            {
                "meeting_id": meeting_id,
                "student_pk": pk,
                "minute": m,
                "seconds_seen": 60.0 * v,
                "present": v,
            }
            for m, v in enumerate(row)
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
    )
    return meeting_id
