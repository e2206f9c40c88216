"""What every meeting report format shares: minute labels, correction notes, status counts,
text formatting, the list of formats and CSV-injection escaping.

Every writer (:mod:`~rollcall.reports.csv_report`, :mod:`~rollcall.reports.xlsx`,
:mod:`~rollcall.reports.png`, :mod:`~rollcall.reports.html`, :mod:`~rollcall.reports.terminal`)
consumes one :class:`~rollcall.types.AttendanceReport` and lays it out the same way: one row
per enrolled student (in report order), one column per minute of the recording headed by
:func:`minute_labels`, then the totals (:data:`TOTAL_HEADERS`).

Minutes decided by an instructor's correction (``StudentAttendance.corrected_minutes``)
are marked in every format: a ``corrections`` column in the CSV (the minute
cells stay numeric), a distinct fill with a who/why comment and a legend in the
XLSX, hatching in the PNG, and a starred ``Present`` count in the terminal.

Minutes that need review (``StudentAttendance.review_minutes``: the face evidence
was borderline, so they count as absent until an instructor decides) are shown
apart in every format too: ``?`` cells and a ``review_minutes`` column in the CSV,
an orange fill and a legend in the XLSX, a third colour in the PNG and HTML, ``?``
in the terminal strip, and "n minutes need review" in the summaries.

Untrusted text (student names, ids and meeting titles come from rosters and Zoom
metadata) never becomes a formula: :func:`csv_safe` defuses CSV cells (OWASP "CSV
injection"); the XLSX writer stores text with the string type (:func:`rollcall.reports.xlsx.set_text`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rollcall.types import (
    STATUSES,
    AttendanceReport,
    CorrectionNote,
    MinuteEvidence,
    StudentAttendance,
)

#: Colours per status (PNG bars, XLSX status cells).
STATUS_COLOURS: dict[str, str] = {
    "present": "#2e7d32",
    "late": "#f9a825",
    "left_early": "#1e88e5",
    "absent": "#c62828",
}
OTHER_COLOUR = "#757575"  # a status not in STATUS_COLOURS
CORRECTED_COLOUR = "#7b1fa2"  # PNG hatching / HTML outline of corrected minutes
REVIEW_COLOUR = "#ff9800"  # minutes that need an instructor's review (every format)
#: The marker of a needs-review minute in the CSV, the terminal strip and the legends.
REVIEW_MARK = "?"

#: The columns after the minutes in the CSV and the XLSX matrix.
TOTAL_HEADERS = ("present_minutes", "attendance_pct", "status")

#: Every format a meeting (or course) report can be written in, in writing order.
FORMATS = ("csv", "xlsx", "png", "html")

_CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_NAME_CHARS = 28  # longest label in a chart before it is shortened


def incomplete_notice(report: AttendanceReport) -> str:
    """A one-line warning for a meeting whose analysis is not ``done`` (empty when it is).

    Every format shows it, so results of an interrupted or failed analysis (every
    student absent, say) are never mistaken for the meeting's attendance.
    """
    if report.complete:
        return ""
    why = {
        "analyzing": "it is still running or was interrupted",
        "failed": "it failed",
    }.get(report.meeting_status, f"status {report.meeting_status!r}")
    return (
        f"INCOMPLETE: the analysis of this meeting did not finish ({why}); "
        "this is not its attendance. Analyse the recording again."
    )


def minute_labels(report: AttendanceReport) -> list[str]:
    """One ``HH:MM`` header per minute of the recording.

    With a known ``report.start_time`` the label is the wall-clock time of the
    minute (start time + i minutes, in the start time's own timezone); otherwise
    it is the offset from the start: ``00:00``, ``00:01``, ..., ``01:05`` for the
    66th minute.
    """
    n = report.n_minutes
    if report.start_time is not None:
        start = report.start_time
        return [(start + timedelta(minutes=i)).strftime("%H:%M") for i in range(n)]
    return [f"{i // 60:02d}:{i % 60:02d}" for i in range(n)]


def correction_text(note: CorrectionNote, labels: Sequence[str]) -> str:
    """One line about a correction: minutes, new value, who, when and why."""

    def label(i: int) -> str:
        return labels[i] if 0 <= i < len(labels) else f"minute {i}"

    span = label(note.minute_from)
    if note.minute_to != note.minute_from:
        span += f"-{label(note.minute_to)}"
    value = "present" if note.present else "absent"
    return f"#{note.id} {span} {value} by {note.made_by} at {note.made_at}: {note.reason}"


def minute_notes(s: StudentAttendance, labels: Sequence[str]) -> dict[int, CorrectionNote]:
    """Corrected minute -> the correction that decided it (the latest one)."""
    out: dict[int, CorrectionNote] = {}
    for c in sorted(s.corrections, key=lambda c: c.id):
        for m in range(c.minute_from, c.minute_to + 1):
            out[m] = c
    return {m: out[m] for m in s.corrected_minutes if m in out}


def has_corrections(report: AttendanceReport) -> bool:
    """True if an instructor's correction decided some minute of the report."""
    return any(s.corrected_minutes for s in report.students)


def has_review(report: AttendanceReport) -> bool:
    """True if some minute of the report needs an instructor's review."""
    return any(s.review_minutes for s in report.students)


def review_total(report: AttendanceReport) -> int:
    """Student-minutes of the report that need review."""
    return sum(len(s.review_minutes) for s in report.students)


def review_text(report: AttendanceReport) -> str:
    """``"3 minutes need review (2 students)"``, or "" when none does."""
    total = review_total(report)
    if not total:
        return ""
    students = sum(1 for s in report.students if s.review_minutes)
    return (
        f"{total} minute{'s' if total != 1 else ''} need{'s' if total == 1 else ''} review "
        f"({students} student{'s' if students != 1 else ''}): borderline or contradicted "
        "evidence (a weak face match, a tile labelled with another name, not in Zoom's "
        "participants report), counted as absent until an instructor corrects them"
    )


@dataclass(frozen=True, slots=True)
class ReviewRun:
    """Consecutive needs-review minutes of one student, and why (what an instructor
    resolves with one correction)."""

    student_id: str
    name: str
    minute_from: int
    minute_to: int  # inclusive
    why: str  # the stored evidence of the run's first minute (``evidence_text``), or ""


def minute_why(s: StudentAttendance) -> dict[int, str]:
    """Minute -> why the student is present or needs review in it (``evidence_text``)."""
    return {e.minute: evidence_text(e) for e in s.evidence}


def evidence_rows(
    report: AttendanceReport, labels: Sequence[str]
) -> list[tuple[StudentAttendance, str, MinuteEvidence]]:
    """(student, minute label, evidence) of every stored evidence row, in report order:
    the "why present" tables."""
    return [
        (s, labels[e.minute], e)
        for s in report.students
        for e in s.evidence
        if e.minute < len(labels)
    ]


def review_runs(report: AttendanceReport) -> list[ReviewRun]:
    """Every student's needs-review minutes as runs of consecutive minutes, in report order."""
    out: list[ReviewRun] = []
    for s in report.students:
        why = minute_why(s)
        start = prev = None
        for m in [*s.review_minutes, None]:
            if start is not None and (m is None or m != prev + 1):
                out.append(ReviewRun(s.student_id, s.name, start, prev, why.get(start, "")))
                start = None
            if m is not None and start is None:
                start = m
            prev = m
    return out


def format_score(value: float | None) -> str:
    """A similarity or margin with two decimals; ``–`` when there is none."""
    return "–" if value is None or value != value else f"{value:.2f}"


def evidence_text(e: MinuteEvidence) -> str:
    """One line saying why a minute is present or needs review (a cell's hover text)."""
    state = "present" if e.state == "present" else "needs review"
    return (
        f"{state}: {e.matched} of {e.samples} samples matched, best similarity "
        f"{format_score(e.best_similarity)}, median {format_score(e.median_similarity)}, "
        f"margin over the next student {format_score(e.margin_student)}, over non-students "
        f"{format_score(e.margin_cohort)} ({e.path})"
        + (f"; {e.reason}" if e.state == "review" and e.reason else "")
    )


def status_counts(report: AttendanceReport) -> dict[str, int]:
    """Students per status: every known status (even at 0), then any others seen."""
    seen = Counter(s.status for s in report.students)
    counts = {status: seen.pop(status, 0) for status in STATUSES}
    counts.update(sorted(seen.items()))
    return counts


def status_label(status: str) -> str:
    """``left_early`` -> ``left early``."""
    return status.replace("_", " ")


def format_duration(seconds: float) -> str:
    """Seconds as ``H:MM:SS``."""
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_start(start: datetime | None) -> str:
    """``2026-09-01 09:00 CEST``, or ``unknown``."""
    if start is None:
        return "unknown"
    text = start.strftime("%Y-%m-%d %H:%M")
    if start.tzinfo is not None:
        text += f" {start.tzname() or start.strftime('%z')}"
    return text


def shorten(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis (chart labels)."""
    text = " ".join(text.split())  # no newlines/tabs in tick labels
    return text if len(text) <= limit else text[: limit - 1] + "…"


def csv_safe(text: str) -> str:
    """Neutralise a text cell that a spreadsheet would run as a formula."""
    return "'" + text if text.startswith(_CSV_INJECTION_PREFIXES) else text


def parse_formats(text: str) -> tuple[str, ...]:
    """``"csv,html"`` -> ``("csv", "html")``; an unknown name raises ValueError naming it."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ValueError(
            f"unknown report format {', '.join(bad) or repr(text)}; choose from {','.join(FORMATS)}"
        )
    return chosen
