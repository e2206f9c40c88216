"""The meeting report as CSV: the attendance matrix, UTF-8 with a BOM, formula-safe.

A text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
gets a leading ``'`` (:func:`rollcall.reports.common.csv_safe`); the file is
written atomically (:mod:`rollcall.reports.atomic`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from rollcall.reports.atomic import commit_atomically
from rollcall.reports.common import (
    REVIEW_MARK,
    TOTAL_HEADERS,
    correction_text,
    csv_safe,
    has_corrections,
    has_review,
    incomplete_notice,
    minute_labels,
)
from rollcall.types import AttendanceReport, StudentAttendance


def _corrections_cell(s: StudentAttendance, labels: Sequence[str]) -> str:
    return "; ".join(correction_text(c, labels) for c in s.corrections)


def write_csv_to(report: AttendanceReport, path: Path) -> None:
    """Write the CSV straight to ``path`` (the atomic move is the caller's: see :func:`write_csv`)."""
    labels = minute_labels(report)
    corrected = has_corrections(report)
    review = has_review(report)
    header = ["student_id", "name", *labels, *TOTAL_HEADERS]
    if review:
        header.append("review_minutes")
    if corrected:
        header.append("corrections")
    notice = incomplete_notice(report)
    if notice:
        header.append("meeting_status")
    # utf-8-sig: Excel opens a BOM-less CSV in the legacy ANSI code page and
    # garbles non-ASCII names ("ZoÃ«"); the BOM makes it read UTF-8. Python
    # (encoding="utf-8-sig"), pandas, LibreOffice and Google Sheets accept it.
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([csv_safe(h) for h in header])
        for s in report.students:
            writer.writerow(
                [
                    csv_safe(s.student_id),
                    csv_safe(s.name),
                    *(
                        REVIEW_MARK if j in s.review_minutes else int(m)
                        for j, m in enumerate(s.minutes)
                    ),
                    int(s.present_minutes),
                    float(s.attendance_pct),
                    csv_safe(s.status),
                    *([len(s.review_minutes)] if review else []),
                    *([csv_safe(_corrections_cell(s, labels))] if corrected else []),
                    *([csv_safe(notice)] if notice else []),
                ]
            )


def write_csv(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Write the attendance matrix as CSV (UTF-8 with BOM) and return its path.

    Columns: ``student_id, name``, one 0/1 column per minute headed by
    :func:`minute_labels`, then ``present_minutes, attendance_pct, status``;
    only when some minute needs review, its cell holds ``?`` instead of 0 and a
    ``review_minutes`` column counts them per student (they are not in
    ``present_minutes``); and -- only when some minute was corrected by an instructor -- a
    ``corrections`` column describing each student's corrections (minutes,
    new value, who, when, why; the minute cells already hold corrected values),
    and -- only when the meeting's analysis did not finish -- a ``meeting_status``
    column saying so in every row.
    Text cells starting with ``= + - @``, tab or CR are prefixed with ``'``.
    """
    final = Path(path)
    commit_atomically([(final, lambda tmp: write_csv_to(report, tmp))])
    return final
