"""A course's term report: every enrolled student against every analysed meeting.

:func:`course_report` reads the database into a :class:`CourseReport`
(:mod:`rollcall.reports.course_types`), which the writers in
:mod:`rollcall.reports.course_writers` (CSV, XLSX, terminal),
:mod:`rollcall.reports.course_png` (PNG) and :mod:`rollcall.reports.html` (HTML)
lay out. The per-meeting values are the *corrected* ones (:func:`rollcall.reports.results.meeting_students`), so an
instructor's correction shows in the term report exactly as in the meeting's.

Only meetings whose analysis finished (status ``done``) are columns; pending
and failed ones have no results to show. A meeting's date is the day of its
start time, or of its analysis when the start time is unknown.

Render a term report for any data directory (e.g. the demo's) with::

    python -m rollcall.reports.course rollcall-demo/data DEMO101 --out term/
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import sqlite_utils

from rollcall.config import AttendanceConfig
from rollcall.reports.course_types import (
    CourseCell,
    CourseMeeting,
    CourseReport,
    CourseStudent,
)
from rollcall.store import storage

__all__ = [
    "CourseCell",
    "CourseMeeting",
    "CourseReport",
    "CourseStudent",
    "course_report",
    "main",
    "meeting_day",
    "parse_day",
]


def meeting_day(meeting: dict) -> date:
    """The day a meeting belongs to in the term (start time, else analysis time)."""
    when = meeting["start_time"] or meeting["analyzed_at"] or meeting.get("created_at")
    return datetime.fromisoformat(when).date()


def parse_day(text: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` -> date; a bad value raises ValueError naming the option."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


def course_report(
    db: sqlite_utils.Database,
    course_id: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    threshold_pct: float = 75.0,
    rules: AttendanceConfig | None = None,
) -> CourseReport:
    """The term report of ``course_id`` over analysed meetings in ``[date_from, date_to]``.

    Raises :class:`storage.NotFound` for an unknown course. ``rules`` are the
    ``[attendance]`` thresholds used to recompute corrected meetings.
    """
    from rollcall.reports.results import meeting_students

    course = storage.get_course(db, course_id)
    rows = [
        m
        for m in db["meetings"].rows_where(
            "course_id = ? and status = 'done'", [course_id], order_by="id"
        )
        if (date_from is None or meeting_day(m) >= date_from)
        and (date_to is None or meeting_day(m) <= date_to)
    ]
    rows.sort(key=lambda m: (meeting_day(m), m["start_time"] or "", m["id"]))
    meetings = tuple(
        CourseMeeting(
            meeting_id=m["id"],
            title=m["title"] or f"meeting {m['id']}",
            day=meeting_day(m),
            start_time=datetime.fromisoformat(m["start_time"]) if m["start_time"] else None,
        )
        for m in rows
    )
    per_meeting = [{s.student_id: s for s in meeting_students(db, m, rules)} for m in rows]
    students = []
    for s in db["students"].rows_where("course_id = ?", [course_id], order_by="student_id"):
        cells = []
        for results in per_meeting:
            r = results.get(s["student_id"])
            cells.append(
                CourseCell(
                    attendance_pct=float(r.attendance_pct) if r else 0.0,
                    status=r.status if r else "absent",
                    corrected=bool(r and r.corrected_minutes),
                    review_minutes=len(r.review_minutes) if r else 0,
                )
            )
        mean = round(statistics.fmean(c.attendance_pct for c in cells), 1) if cells else 0.0
        students.append(
            CourseStudent(
                student_id=s["student_id"],
                name=s["name"],
                email=s["email"] or "",
                cells=tuple(cells),
                attended=sum(c.status != "absent" for c in cells),
                mean_pct=mean,
                below_threshold=bool(cells) and mean < threshold_pct,
            )
        )
    return CourseReport(
        course_id=course_id,
        course_title=course["title"] or course_id,
        date_from=date_from,
        date_to=date_to,
        threshold_pct=threshold_pct,
        meetings=meetings,
        students=tuple(students),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Render a term report from a data directory (for screenshots of the demo data)."""
    from rich.console import Console

    from rollcall.config import Config, threshold_for
    from rollcall.reports.common import FORMATS, parse_formats
    from rollcall.reports.course_writers import course_table, write_course_reports

    parser = argparse.ArgumentParser(
        prog="python -m rollcall.reports.course", description=main.__doc__
    )
    parser.add_argument(
        "home", help="data directory holding rollcall.db (demo: rollcall-demo/data)"
    )
    parser.add_argument("course", help="course id (demo: DEMO101)")
    parser.add_argument("--out", default="term-report", help="output folder")
    parser.add_argument("--format", default=",".join(FORMATS))
    parser.add_argument("--from", dest="date_from")
    parser.add_argument("--to", dest="date_to")
    args = parser.parse_args(argv)
    config = Config()
    report = course_report(
        storage.open_db(Path(args.home)),
        args.course,
        date_from=parse_day(args.date_from, "--from"),
        date_to=parse_day(args.date_to, "--to"),
        threshold_pct=threshold_for(config, args.course),
        rules=config.attendance,
    )
    console = Console()
    console.print(course_table(report))
    for path in write_course_reports(report, Path(args.out), parse_formats(args.format)).values():
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
