"""The meeting report as an Excel workbook, and the XLSX helpers the term report reuses.

Sheets: "Attendance" (the CSV layout, coloured), "Summary" (meeting facts and a
native bar chart), "Corrections" when an instructor corrected minutes, and one
sheet per optional analyzer's results (``AttendanceReport.extra_sheets``).

Text cells are stored with the string type (:func:`set_text`), which spreadsheet
apps never evaluate, so untrusted names are kept unchanged and never run as
formulas. The file is written atomically (:mod:`rollcall.reports.atomic`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from rollcall.reports.atomic import commit_atomically
from rollcall.reports.common import (
    REVIEW_COLOUR,
    REVIEW_MARK,
    STATUS_COLOURS,
    TOTAL_HEADERS,
    correction_text,
    format_duration,
    has_corrections,
    has_review,
    incomplete_notice,
    minute_labels,
    minute_notes,
    status_counts,
)
from rollcall.types import AttendanceReport

PRESENT_RGB = "C6EFCE"  # Excel's "good" green
ABSENT_RGB = "FFC7CE"  # Excel's "bad" light red
CORRECTED_RGB = "FFD966"  # amber: a minute an instructor decided
REVIEW_RGB = REVIEW_COLOUR.lstrip("#").upper()  # orange: a minute that needs review

_ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def set_text(cell: Cell, text: str) -> Cell:
    """Store ``text`` as a plain string cell, never as a formula or error value.

    openpyxl turns any str starting with ``=`` into a formula and ``#N/A``-like
    strings into error values; forcing the string type after assignment stores
    the original text as an inline string that no spreadsheet evaluates.
    Control characters that XML cannot hold are dropped.
    """
    cell.value = _ILLEGAL_XML_CHARS.sub("", text)
    cell.data_type = "s"
    return cell


def write_xlsx_to(report: AttendanceReport, path: Path) -> None:
    """Write the workbook straight to ``path`` (the atomic move is the caller's)."""
    wb = Workbook()
    _fill_matrix_sheet(wb.active, report)
    _fill_summary_sheet(wb.create_sheet("Summary"), report)
    if has_corrections(report):
        _fill_corrections_sheet(wb.create_sheet("Corrections"), report)
    for title, header, rows in report.extra_sheets:
        _fill_extra_sheet(wb.create_sheet(title[:31]), header, rows)
    wb.save(path)


def _fill_extra_sheet(ws: Worksheet, header: tuple[str, ...], rows: tuple[tuple, ...]) -> None:
    """A plain table sheet for an optional analyzer's results (text never a formula)."""
    bold = Font(bold=True)
    for col, name in enumerate(header, start=1):
        set_text(ws.cell(row=1, column=col), str(name)).font = bold
    for r, row in enumerate(rows, start=2):
        for col, value in enumerate(row, start=1):
            if isinstance(value, str):
                set_text(ws.cell(row=r, column=col), value)
            else:
                ws.cell(row=r, column=col, value=value)
    ws.freeze_panes = "A2"
    if ws.title.lower().endswith("summary") and rows:
        _summary_chart(ws, header, rows)


_NOT_CHARTED = {"samples", "minutes", "minute", "mean_abs_yaw"}


def _summary_chart(ws: Worksheet, header: tuple[str, ...], rows: tuple[tuple, ...]) -> None:
    """A native bar chart of an analyzer summary: every numeric share/score per student."""
    columns = [
        i + 1
        for i, name in enumerate(header)
        if name not in _NOT_CHARTED
        and all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows)
    ]
    if not columns:
        return
    chart = BarChart()
    chart.title = ws.title
    chart.y_axis.title = "share / score"
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    for col in columns:
        chart.add_data(
            Reference(ws, min_col=col, min_row=1, max_row=len(rows) + 1), titles_from_data=True
        )
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(rows) + 1))
    chart.width, chart.height = 24, 10
    ws.add_chart(chart, f"{get_column_letter(len(header) + 2)}2")


def _fill_matrix_sheet(ws: Worksheet, report: AttendanceReport) -> None:
    ws.title = "Attendance"
    labels = minute_labels(report)
    n_min = len(labels)
    bold = Font(bold=True)
    present_fill = PatternFill("solid", start_color=PRESENT_RGB, end_color=PRESENT_RGB)
    absent_fill = PatternFill("solid", start_color=ABSENT_RGB, end_color=ABSENT_RGB)
    corrected_fill = PatternFill("solid", start_color=CORRECTED_RGB, end_color=CORRECTED_RGB)
    corrected_font = Font(bold=True, italic=True)
    review_fill = PatternFill("solid", start_color=REVIEW_RGB, end_color=REVIEW_RGB)
    status_fonts = {
        st: Font(bold=True, color="FF" + c.lstrip("#").upper()) for st, c in STATUS_COLOURS.items()
    }
    centre = Alignment(horizontal="center")
    vertical = Alignment(horizontal="center", text_rotation=90)

    header = ["student_id", "name", *labels, *TOTAL_HEADERS]
    for col, title in enumerate(header, start=1):
        cell = set_text(ws.cell(row=1, column=col), title)
        cell.font = bold
        if 3 <= col < 3 + n_min:
            cell.alignment = vertical

    first_total = 3 + n_min
    for row, s in enumerate(report.students, start=2):
        set_text(ws.cell(row=row, column=1), s.student_id)
        set_text(ws.cell(row=row, column=2), s.name)
        notes = minute_notes(s, labels)
        for j, m in enumerate(s.minutes):
            cell = ws.cell(row=row, column=3 + j, value=int(m))
            cell.fill = present_fill if m else absent_fill
            cell.alignment = centre
            if j in s.review_minutes:
                set_text(cell, REVIEW_MARK).fill = review_fill
                cell.comment = cell_comment(
                    "needs review: borderline or contradicted evidence, counted as absent; "
                    "rollcall explain shows why, rollcall attendance set decides"
                )
            if j in notes:
                cell.fill = corrected_fill
                cell.font = corrected_font
                cell.comment = cell_comment(correction_text(notes[j], labels))
        ws.cell(row=row, column=first_total, value=int(s.present_minutes))
        pct = ws.cell(row=row, column=first_total + 1, value=float(s.attendance_pct))
        pct.number_format = "0.0"
        status = set_text(ws.cell(row=row, column=first_total + 2), s.status)
        status.font = status_fonts.get(s.status, bold)
        if s.corrected_minutes:
            status.comment = cell_comment(
                "recomputed from minutes corrected by an instructor:\n"
                + "\n".join(correction_text(c, labels) for c in s.corrections)
            )

    ws.freeze_panes = "C2"
    ws.column_dimensions["A"].width = max(10, _longest(s.student_id for s in report.students) + 2)
    ws.column_dimensions["B"].width = min(
        40, max(12, _longest(s.name for s in report.students) + 2)
    )
    for j in range(n_min):
        ws.column_dimensions[get_column_letter(3 + j)].width = 3.2
    ws.row_dimensions[1].height = 36
    for k, title in enumerate(TOTAL_HEADERS):
        ws.column_dimensions[get_column_letter(first_total + k)].width = len(title) + 3
    if has_corrections(report) or has_review(report):
        _matrix_legend(
            ws,
            len(report.students) + 3,
            present_fill,
            absent_fill,
            corrected_fill,
            review_fill if has_review(report) else None,
        )


def cell_comment(text: str) -> Comment:
    """A cell comment by "rollcall" (control characters XML cannot hold dropped)."""
    comment = Comment(_ILLEGAL_XML_CHARS.sub("", text), "rollcall")
    comment.width, comment.height = 320, 120
    return comment


def _matrix_legend(
    ws: Worksheet,
    row: int,
    present: PatternFill,
    absent: PatternFill,
    corrected: PatternFill,
    review: PatternFill | None = None,
) -> None:
    """A legend under the matrix (only written when the report has corrections or
    minutes that need review)."""
    set_text(ws.cell(row=row, column=1), "Legend").font = Font(bold=True)
    entries = [
        (present, 1, "present (automatic)"),
        (absent, 0, "absent (automatic)"),
        (corrected, None, "corrected by an instructor; hover the cell for who and why"),
    ]
    if review is not None:
        entries.append(
            (review, REVIEW_MARK, "needs review: borderline evidence, counted as absent")
        )
    for k, (fill, value, text) in enumerate(entries, start=1):
        swatch = ws.cell(row=row + k, column=1, value=value)
        if isinstance(value, str):
            set_text(swatch, value)
        swatch.fill = fill
        set_text(ws.cell(row=row + k, column=2), text)


def _fill_corrections_sheet(ws: Worksheet, report: AttendanceReport) -> None:
    """Every correction of the meeting: who changed what, when and why."""
    labels = minute_labels(report)
    header = ("id", "student_id", "name", "from", "to", "set_to", "reason", "made_by", "made_at")
    bold = Font(bold=True)
    for col, title in enumerate(header, start=1):
        set_text(ws.cell(row=1, column=col), title).font = bold
    notes = sorted(
        ((c, s) for s in report.students for c in s.corrections), key=lambda pair: pair[0].id
    )
    for r, (c, s) in enumerate(notes, start=2):
        ws.cell(row=r, column=1, value=c.id)
        values = (
            s.student_id,
            s.name,
            labels[c.minute_from] if c.minute_from < len(labels) else str(c.minute_from),
            labels[c.minute_to] if c.minute_to < len(labels) else str(c.minute_to),
            "present" if c.present else "absent",
            c.reason,
            c.made_by,
            c.made_at,
        )
        for col, value in enumerate(values, start=2):
            set_text(ws.cell(row=r, column=col), value)
    for col, width in zip("ABCDEFGHI", (6, 12, 24, 7, 7, 9, 40, 14, 26), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"


def _longest(texts: Iterable[str]) -> int:
    return max((len(t) for t in texts), default=0)


def _fill_summary_sheet(ws: Worksheet, report: AttendanceReport) -> None:
    bold = Font(bold=True)
    set_text(ws.cell(row=1, column=1), "Attendance summary").font = Font(bold=True, size=14)

    row = 3
    notice = incomplete_notice(report)
    if notice:
        set_text(ws.cell(row=2, column=1), notice).font = Font(bold=True, color="C62828")
        row = 4
    meta: list[tuple[str, object]] = [
        ("Meeting title", report.meeting_title),
        ("Course", report.course_id),
        ("Start time", report.start_time),
        ("Duration", format_duration(report.duration_s)),
        ("Minutes", report.n_minutes),
        ("Students", len(report.students)),
        ("Minutes needing review", sum(len(s.review_minutes) for s in report.students)),
    ]
    for label, value in meta:
        set_text(ws.cell(row=row, column=1), label).font = bold
        cell = ws.cell(row=row, column=2)
        if label == "Start time":
            if isinstance(value, datetime):
                # Excel has no timezones: store the wall-clock time, name the zone beside it.
                cell.value = value.replace(tzinfo=None)
                cell.number_format = "yyyy-mm-dd hh:mm"
                if value.tzinfo is not None:
                    set_text(ws.cell(row=row, column=3), value.tzname() or value.strftime("%z"))
            else:
                set_text(cell, "unknown")
        elif isinstance(value, str):
            set_text(cell, value)
        else:
            cell.value = value
        row += 1

    row += 1
    set_text(ws.cell(row=row, column=1), "Status").font = bold
    set_text(ws.cell(row=row, column=2), "Students").font = bold
    row += 1
    for status, count in status_counts(report).items():
        set_text(ws.cell(row=row, column=1), status)
        ws.cell(row=row, column=2, value=count)
        row += 1
    set_text(ws.cell(row=row, column=1), "unknown faces").font = bold
    ws.cell(row=row, column=2, value=int(report.unknown_clusters))
    row += 2

    set_text(ws.cell(row=row, column=1), "Warnings").font = bold
    if not report.warnings:
        set_text(ws.cell(row=row, column=2), "none")
        row += 1
    for warning in report.warnings:
        set_text(ws.cell(row=row, column=2), warning)
        row += 1
    row += 1

    table_header = row
    for col, title in enumerate(
        ("student_id", "name", "present_minutes", "attendance_pct", "status"), start=1
    ):
        set_text(ws.cell(row=row, column=col), title).font = bold
    for s in report.students:
        row += 1
        set_text(ws.cell(row=row, column=1), s.student_id)
        set_text(ws.cell(row=row, column=2), s.name)
        ws.cell(row=row, column=3, value=int(s.present_minutes))
        ws.cell(row=row, column=4, value=float(s.attendance_pct)).number_format = "0.0"
        set_text(ws.cell(row=row, column=5), s.status)

    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = min(
        40, max(16, _longest(s.name for s in report.students) + 2)
    )
    for col in "CDE":
        ws.column_dimensions[col].width = 16

    if report.students:
        ws.add_chart(_attendance_chart(ws, table_header, len(report.students)), "G3")


def _attendance_chart(ws: Worksheet, header_row: int, n: int) -> BarChart:
    """Horizontal bar chart of attendance % referencing the Summary table cells."""
    chart = BarChart()
    chart.type = "bar"  # horizontal bars
    chart.style = 10
    chart.title = "Attendance % per student"
    chart.y_axis.title = "attendance %"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 100
    chart.y_axis.majorUnit = 20
    # Students from top to bottom in table order.
    chart.x_axis.scaling.orientation = "maxMin"
    chart.y_axis.crosses = "max"  # ...and keep the % axis at the bottom
    # openpyxl >= 3.1 hides axes unless told otherwise.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.legend = None
    data = Reference(ws, min_col=4, min_row=header_row, max_row=header_row + n)
    names = Reference(ws, min_col=2, min_row=header_row + 1, max_row=header_row + n)
    chart.add_data(data, titles_from_data=True)
    # Names are text: reference them as a string range (set_categories would
    # declare them numeric, which some readers render as 1, 2, 3...).
    for series in chart.series:
        series.cat = AxDataSource(strRef=StrRef(f=str(names)))
    chart.gapWidth = 40
    chart.width = 18  # cm
    chart.height = max(7.5, 0.55 * n + 2.5)
    return chart


def write_xlsx(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Write an Excel workbook and return its path.

    Sheets: "Attendance" (the CSV layout; bold frozen header, panes frozen at
    C2, 0/1 cells filled green/light red, coloured status) and "Summary"
    (meeting facts, counts per status, unknown faces, warnings, a per-student
    table and a native bar chart of attendance % that references that table).
    With instructor corrections, corrected minute cells are amber with a
    comment saying who changed them, when and why, a legend follows the
    matrix and a "Corrections" sheet lists them all.
    All text is stored with the string type, so names like ``=HYPERLINK(...)``
    are kept verbatim and never evaluated.
    """
    final = Path(path)
    commit_atomically([(final, lambda tmp: write_xlsx_to(report, tmp))])
    return final
