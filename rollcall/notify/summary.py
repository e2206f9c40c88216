"""What instructors are told about one analysed meeting, built from the database.

:class:`MeetingSummary` is the one model behind every notification text (the
email's HTML and plain-text bodies, its subject, the chat messages): the
templates in ``rollcall/plugins/notifiers/templates/<language>/`` only format it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from rollcall.config import Config, language_for, threshold_for
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.types import STATUSES, AttendanceReport

# Path of a meeting's page in the admin UI of `rollcall serve`, below [reports] base_url.
ADMIN_MEETING_PATH = "/admin/meetings/{meeting_id}"


@dataclass(frozen=True, slots=True)
class StudentLine:
    """One student as the summary lists them."""

    student_id: str
    name: str
    status: str  # one of rollcall.types.STATUSES
    attendance_pct: float
    present_minutes: int
    below_threshold: bool
    review_minutes: int = 0  # minutes that need an instructor's review


@dataclass(frozen=True, slots=True)
class CameraOffLine:
    """A student Zoom saw connected whose face was never recognised."""

    student_id: str
    name: str
    connected_minutes: int


@dataclass(frozen=True, slots=True)
class MeetingSummary:
    meeting_id: int
    course_id: str
    course_title: str
    title: str
    start_time: datetime | None
    duration_s: float
    threshold_pct: float
    language: str
    counts: dict[str, int]  # status -> number of students, every status present
    students: tuple[StudentLine, ...]  # below the threshold first (lowest first), then by id
    camera_off: tuple[CameraOffLine, ...]  # connected per Zoom, never recognised
    has_participants_report: bool  # False: Zoom's report was not available
    unknown_faces: int  # unlabelled unknown-face clusters
    admin_url: str = ""  # "" when [reports] base_url is not set
    warnings: tuple[str, ...] = field(default_factory=tuple)
    review_minutes: int = 0  # student-minutes that need an instructor's review

    @property
    def duration_min(self) -> int:
        return round(self.duration_s / 60.0)

    @property
    def n_students(self) -> int:
        return len(self.students)

    @property
    def below_threshold(self) -> tuple[StudentLine, ...]:
        return tuple(s for s in self.students if s.below_threshold)

    @property
    def date_text(self) -> str:
        """``YYYY-MM-DD HH:MM`` (with the zone when known), or "" when unknown."""
        if self.start_time is None:
            return ""
        text = self.start_time.strftime("%Y-%m-%d %H:%M")
        zone = self.start_time.tzname() if self.start_time.tzinfo else None
        return f"{text} {zone}" if zone else text

    def to_dict(self) -> dict:
        """The fields and properties as template variables."""
        out = {name: getattr(self, name) for name in self.__slots__}
        for name in ("duration_min", "n_students", "below_threshold", "date_text"):
            out[name] = getattr(self, name)
        return out


def _student_lines(report: AttendanceReport, threshold: float) -> tuple[StudentLine, ...]:
    lines = [
        StudentLine(
            student_id=s.student_id,
            name=s.name,
            status=s.status,
            attendance_pct=float(s.attendance_pct),
            present_minutes=int(s.present_minutes),
            below_threshold=float(s.attendance_pct) < threshold,
            review_minutes=len(s.review_minutes),
        )
        for s in report.students
    ]
    below = sorted(
        (s for s in lines if s.below_threshold), key=lambda s: (s.attendance_pct, s.student_id)
    )
    rest = sorted((s for s in lines if not s.below_threshold), key=lambda s: s.student_id)
    return tuple(below + rest)


def _camera_off(
    db: sqlite_utils.Database, meeting_id: int, report: AttendanceReport
) -> tuple[bool, tuple[CameraOffLine, ...]]:
    rows = list(
        db.query(
            "select s.student_id, s.name, r.connected_minutes, r.in_participants "
            "from reconciliation r join students s on s.id = r.student_pk "
            "where r.meeting_id = ? order by s.student_id",
            [meeting_id],
        )
    )
    if not rows:
        return False, ()
    recognised = {s.student_id for s in report.students if s.present_minutes > 0}
    off = tuple(
        CameraOffLine(r["student_id"], r["name"], int(r["connected_minutes"] or 0))
        for r in rows
        if (r["in_participants"] or (r["connected_minutes"] or 0) > 0)
        and r["student_id"] not in recognised
    )
    return True, off


def report_for(db: sqlite_utils.Database, config: Config, meeting_id: int) -> AttendanceReport:
    """``meeting_report`` with the configured attendance rules."""
    return meeting_report(db, meeting_id, rules=config.attendance)


def build_summary(
    db: sqlite_utils.Database,
    config: Config,
    meeting_id: int,
    report: AttendanceReport | None = None,
) -> MeetingSummary:
    """The summary of an analysed meeting (raises ``storage.NotFound`` if it is gone)."""
    meeting = storage.get_meeting(db, meeting_id)
    report = report if report is not None else report_for(db, config, meeting_id)
    course_id = meeting["course_id"]
    course_rows = list(db["courses"].rows_where("course_id = ?", [course_id]))
    threshold = threshold_for(config, course_id)
    counts = {status: 0 for status in STATUSES}
    for s in report.students:
        counts[s.status] = counts.get(s.status, 0) + 1
    has_report, camera_off = _camera_off(db, meeting_id, report)
    base = config.reports.base_url.rstrip("/")
    review = sum(len(s.review_minutes) for s in report.students)
    # The link opens the meeting's list of minutes to review when there are any (a
    # redirect keeps the fragment: /admin/meetings/ID#review -> /meetings/ID#review).
    anchor = "#review" if review else ""
    return MeetingSummary(
        meeting_id=meeting_id,
        course_id=course_id,
        course_title=(course_rows[0]["title"] if course_rows else "") or course_id,
        title=report.meeting_title,
        start_time=report.start_time,
        duration_s=float(report.duration_s),
        threshold_pct=threshold,
        language=language_for(config, course_id),
        counts=counts,
        students=_student_lines(report, threshold),
        camera_off=camera_off,
        has_participants_report=has_report,
        unknown_faces=int(report.unknown_clusters),
        admin_url=base + ADMIN_MEETING_PATH.format(meeting_id=meeting_id) + anchor if base else "",
        warnings=tuple(report.warnings),
        review_minutes=review,
    )
