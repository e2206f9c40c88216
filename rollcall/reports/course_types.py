"""The term report's data: a course's students against its analysed meetings.

:func:`rollcall.reports.course.course_report` reads the database into a
:class:`CourseReport`; the writers (:mod:`~rollcall.reports.course_writers`,
:mod:`~rollcall.reports.course_png`, :mod:`~rollcall.reports.html`) lay it out.
The values are data only, so every writer depends on this module and nothing else
of the term report.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class CourseMeeting:
    """One column of the term report."""

    meeting_id: int
    title: str
    day: date  # start day, or analysis day when the start time is unknown
    start_time: datetime | None

    @property
    def label(self) -> str:
        """Short column header: ``2026-09-01 #3`` (date and meeting id, unique)."""
        return f"{self.day.isoformat()} #{self.meeting_id}"


@dataclass(frozen=True, slots=True)
class CourseCell:
    """One student in one meeting (corrected values)."""

    attendance_pct: float
    status: str
    corrected: bool  # an instructor's correction changed some minute
    review_minutes: int = 0  # minutes that still need review (counted as absent in the %)


@dataclass(frozen=True, slots=True)
class CourseStudent:
    """One row of the term report."""

    student_id: str
    name: str
    email: str
    cells: tuple[CourseCell, ...]  # one per CourseReport.meetings, same order
    attended: int  # meetings whose status is not "absent"
    mean_pct: float  # mean attendance % over the meetings (0 when there are none)
    below_threshold: bool  # mean_pct under the course's threshold (highlighted)


@dataclass(frozen=True, slots=True)
class CourseReport:
    """Everything the term report writers need about a course over a date range."""

    course_id: str
    course_title: str
    date_from: date | None
    date_to: date | None
    threshold_pct: float
    meetings: tuple[CourseMeeting, ...]
    students: tuple[CourseStudent, ...]

    @property
    def class_pcts(self) -> tuple[float, ...]:
        """Mean attendance % of the class in each meeting."""
        return tuple(
            round(statistics.fmean(s.cells[j].attendance_pct for s in self.students), 1)
            if self.students
            else 0.0
            for j in range(len(self.meetings))
        )

    @property
    def review_total(self) -> int:
        """Student-minutes of the term's meetings that still need review."""
        return sum(c.review_minutes for s in self.students for c in s.cells)

    @property
    def below(self) -> tuple[CourseStudent, ...]:
        return tuple(s for s in self.students if s.below_threshold)

    @property
    def period(self) -> str:
        """``2026-09-01 – 2026-12-15`` (the filter, else the meetings' span)."""
        first = self.date_from or (self.meetings[0].day if self.meetings else None)
        last = self.date_to or (self.meetings[-1].day if self.meetings else None)
        if first is None and last is None:
            return "no meetings"
        return f"{first.isoformat() if first else '…'} – {last.isoformat() if last else '…'}"
