"""Term report writers: CSV, XLSX and a terminal table of a :class:`CourseReport`, and
:func:`write_course_reports`, which writes every chosen format (the PNG charts are in
:mod:`rollcall.reports.course_png`, the HTML page in :mod:`rollcall.reports.html`).

Layout everywhere: one row per enrolled student, one column per analysed
meeting (attendance %, corrected values), then ``meetings_attended`` and
``mean_pct``. Students whose mean is under the course's threshold are
highlighted; meetings where an instructor corrected a student are marked, and so
are meetings with minutes that still need review (they count as absent in the %
until an instructor decides): a ``review_meetings`` CSV column, the review fill
with a comment in the XLSX, ``?`` in the terminal and the HTML page.
The same safety rules as the meeting report apply (its helpers are reused):
CSV text cells are defused against formula injection, XLSX text is stored as
strings, and every file is written atomically.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from rich.table import Table
from rich.text import Text

from rollcall.printable import printable
from rollcall.reports import course_png
from rollcall.reports.atomic import commit_atomically
from rollcall.reports.common import REVIEW_MARK, csv_safe
from rollcall.reports.course_types import CourseReport, CourseStudent
from rollcall.reports.xlsx import CORRECTED_RGB, REVIEW_RGB, cell_comment, set_text

BELOW_RGB = "FFC7CE"  # light red row: under the course's threshold
_TOTALS = ("meetings_attended", "mean_pct")

# --------------------------------------------------------------------------- CSV


def _write_csv_to(report: CourseReport, path: Path) -> None:
    header = [
        "student_id",
        "name",
        *(m.label for m in report.meetings),
        *_TOTALS,
        "below_threshold",
        "corrected_meetings",
        "review_meetings",
    ]
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([csv_safe(h) for h in header])
        for s in report.students:
            corrected = [
                m.label for m, c in zip(report.meetings, s.cells, strict=True) if c.corrected
            ]
            writer.writerow(
                [
                    csv_safe(s.student_id),
                    csv_safe(s.name),
                    *(float(c.attendance_pct) for c in s.cells),
                    int(s.attended),
                    float(s.mean_pct),
                    1 if s.below_threshold else 0,
                    csv_safe(" ".join(corrected)),
                    csv_safe(review_cells(report, s)),
                ]
            )


def review_cells(report: CourseReport, s: CourseStudent) -> str:
    """``"2026-09-01 #3: 4 min; 2026-09-08 #5: 1 min"``: the student's meetings with
    minutes that still need review."""
    return "; ".join(
        f"{m.label}: {c.review_minutes} min"
        for m, c in zip(report.meetings, s.cells, strict=True)
        if c.review_minutes
    )


# --------------------------------------------------------------------------- XLSX


def _write_xlsx_to(report: CourseReport, path: Path) -> None:
    wb = Workbook()
    _fill_term_sheet(wb.active, report)
    _fill_meetings_sheet(wb.create_sheet("Meetings"), report)
    wb.save(path)


def _fill_term_sheet(ws: Worksheet, report: CourseReport) -> None:
    ws.title = "Term"
    bold = Font(bold=True)
    below_fill = PatternFill("solid", start_color=BELOW_RGB, end_color=BELOW_RGB)
    corrected_fill = PatternFill("solid", start_color=CORRECTED_RGB, end_color=CORRECTED_RGB)
    review_fill = PatternFill("solid", start_color=REVIEW_RGB, end_color=REVIEW_RGB)
    n_meet = len(report.meetings)
    header = ["student_id", "name", *(m.label for m in report.meetings), *_TOTALS]
    for col, title in enumerate(header, start=1):
        set_text(ws.cell(row=1, column=col), title).font = bold
    for j, m in enumerate(report.meetings):
        ws.cell(row=1, column=3 + j).comment = cell_comment(m.title)
    for row, s in enumerate(report.students, start=2):
        cells = [set_text(ws.cell(row=row, column=1), s.student_id)]
        cells.append(set_text(ws.cell(row=row, column=2), s.name))
        for j, c in enumerate(s.cells):
            cell = ws.cell(row=row, column=3 + j, value=float(c.attendance_pct))
            cell.number_format = "0.0"
            cells.append(cell)
            notes = []
            if c.corrected:
                notes.append(f"corrected by an instructor (status {c.status})")
            if c.review_minutes:
                notes.append(f"{c.review_minutes} minute(s) need review, counted as absent")
            if notes:
                cell.comment = cell_comment("; ".join(notes))
        cells.append(ws.cell(row=row, column=3 + n_meet, value=int(s.attended)))
        mean = ws.cell(row=row, column=4 + n_meet, value=float(s.mean_pct))
        mean.number_format = "0.0"
        cells.append(mean)
        for cell in cells:
            if s.below_threshold:
                cell.fill = below_fill
                cell.font = Font(bold=True, color="FF9C0006")
        for j, c in enumerate(s.cells):
            if c.review_minutes:
                ws.cell(row=row, column=3 + j).fill = review_fill
            elif c.corrected:
                ws.cell(row=row, column=3 + j).fill = corrected_fill
    ws.freeze_panes = "C2"
    ws.column_dimensions["A"].width = 12
    ws.column_dimensions["B"].width = 28
    for j in range(n_meet + 2):
        ws.column_dimensions[get_column_letter(3 + j)].width = 16
    row = len(report.students) + 3
    set_text(ws.cell(row=row, column=1), "Legend").font = bold
    legend = (
        (below_fill, f"mean attendance under the course threshold ({report.threshold_pct:g} %)"),
        (corrected_fill, "meeting corrected by an instructor (see the meeting's report)"),
        (review_fill, "minutes that need review, counted as absent until an instructor decides"),
    )
    for k, (fill, text) in enumerate(legend, start=1):
        ws.cell(row=row + k, column=1).fill = fill
        set_text(ws.cell(row=row + k, column=2), text)
    set_text(ws.cell(row=row + 5, column=1), "Period").font = bold
    set_text(ws.cell(row=row + 5, column=2), report.period)


def _fill_meetings_sheet(ws: Worksheet, report: CourseReport) -> None:
    """Class attendance per meeting, with a native bar chart of it."""
    bold = Font(bold=True)
    for col, title in enumerate(("meeting", "title", "date", "class_pct"), start=1):
        set_text(ws.cell(row=1, column=col), title).font = bold
    for row, (m, pct) in enumerate(zip(report.meetings, report.class_pcts, strict=True), start=2):
        set_text(ws.cell(row=row, column=1), m.label)
        set_text(ws.cell(row=row, column=2), m.title)
        ws.cell(row=row, column=3, value=m.day).number_format = "yyyy-mm-dd"
        ws.cell(row=row, column=4, value=float(pct)).number_format = "0.0"
    for col, width in zip("ABCD", (18, 36, 12, 10), strict=True):
        ws.column_dimensions[col].width = width
    if not report.meetings:
        return
    n = len(report.meetings)
    chart = BarChart()
    chart.title = "Class attendance % per meeting"
    chart.y_axis.title = "attendance %"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 100
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.legend = None
    chart.add_data(Reference(ws, min_col=4, min_row=1, max_row=n + 1), titles_from_data=True)
    labels = Reference(ws, min_col=1, min_row=2, max_row=n + 1)
    for series in chart.series:
        series.cat = AxDataSource(strRef=StrRef(f=str(labels)))
    chart.width, chart.height = max(12, 2.0 * n + 4), 9
    ws.add_chart(chart, "F2")


# --------------------------------------------------------------------------- terminal


def course_table(report: CourseReport) -> Table:
    """A rich table: one row per student, % per meeting; under-threshold rows in red."""
    table = Table(
        title=Text(printable(f"{report.course_title} ({report.course_id}) — {report.period}")),
        header_style="bold",
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("Name", overflow="fold")
    for m in report.meetings:
        table.add_column(Text(printable(m.label)), justify="right")
    table.add_column("Attended", justify="right")
    table.add_column("Mean %", justify="right")
    table.add_column("Threshold", no_wrap=True)
    for s in report.students:
        style = "bold red" if s.below_threshold else ""
        table.add_row(
            Text(printable(s.student_id), style=style),
            Text(printable(s.name), style=style),
            *(
                Text(
                    f"{c.attendance_pct:.0f}"
                    + ("*" if c.corrected else "")
                    + (REVIEW_MARK if c.review_minutes else ""),
                    style="dark_orange" if c.review_minutes else "magenta" if c.corrected else "",
                )
                for c in s.cells
            ),
            Text(f"{s.attended}/{len(report.meetings)}", style=style),
            Text(f"{s.mean_pct:.1f}", style=style),
            Text("BELOW" if s.below_threshold else "", style=style),
        )
    table.caption = Text.assemble(
        (
            f"red / BELOW: mean under {report.threshold_pct:g} % ({len(report.below)})",
            "bold red",
        ),
        " · ",
        ("* corrected by an instructor", "magenta"),
    )
    if report.review_total:
        table.caption.append(" · ")
        table.caption.append(
            f"{REVIEW_MARK} minutes need review ({report.review_total}), counted as absent",
            "dark_orange",
        )
    return table


# --------------------------------------------------------------------------- all formats


def write_course_reports(
    report: CourseReport,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("csv", "xlsx", "png", "html"),
) -> dict[str, Path]:
    """Write the term report's files into ``out_dir`` (atomically, all or nothing).

    ``term.csv``, ``term.xlsx``, ``term.html`` and, for ``png``, two charts:
    ``term-students.png`` (attendance per student over the term) and
    ``term-meetings.png`` (class attendance per meeting). Returns
    ``{"csv": ..., "xlsx": ..., "png": ..., "png_meetings": ..., "html": ...}``
    for the chosen formats.
    """
    out = Path(out_dir)
    writers: dict[str, tuple[Path, Callable[[Path], None]]] = {}
    for f in formats:
        if f == "csv":
            writers["csv"] = (out / "term.csv", lambda tmp: _write_csv_to(report, tmp))
        elif f == "xlsx":
            writers["xlsx"] = (out / "term.xlsx", lambda tmp: _write_xlsx_to(report, tmp))
        elif f == "png":
            writers["png"] = (
                out / "term-students.png",
                lambda tmp: course_png.students_figure(report).savefig(tmp, format="png"),
            )
            writers["png_meetings"] = (
                out / "term-meetings.png",
                lambda tmp: course_png.meetings_figure(report).savefig(tmp, format="png"),
            )
        elif f == "html":
            from rollcall.reports import html  # jinja2 is only imported when HTML is asked for

            writers["html"] = (
                out / "term.html",
                lambda tmp: html.write_course_html_to(report, tmp),
            )
        else:
            raise ValueError(f"unknown report format {f!r}")
    out.mkdir(parents=True, exist_ok=True)
    commit_atomically(list(writers.values()))
    return {key: path for key, (path, _) in writers.items()}
