"""Term report writers: CSV, XLSX, PNG charts and a terminal table of a :class:`CourseReport`.

Layout everywhere: one row per enrolled student, one column per analysed
meeting (attendance %, corrected values), then ``meetings_attended`` and
``mean_pct``. Students whose mean is under the course's threshold are
highlighted; meetings where an instructor corrected a student are marked.
The same safety rules as :mod:`rollcall.reports.report` apply (its helpers are reused):
CSV text cells are defused against formula injection, XLSX text is stored as
strings, and every file is written atomically.
"""

from __future__ import annotations

import csv
import io
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

from rollcall.reports.course import CourseReport
from rollcall.reports.report import (
    _CORRECTED_RGB,
    CORRECTED_COLOUR,
    _comment,
    _commit_atomically,
    _csv_safe,
    _set_text,
    _short,
)

BELOW_RGB = "FFC7CE"  # light red row: under the course's threshold
BELOW_COLOUR = "#c62828"
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
    ]
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([_csv_safe(h) for h in header])
        for s in report.students:
            corrected = [
                m.label for m, c in zip(report.meetings, s.cells, strict=True) if c.corrected
            ]
            writer.writerow(
                [
                    _csv_safe(s.student_id),
                    _csv_safe(s.name),
                    *(float(c.attendance_pct) for c in s.cells),
                    int(s.attended),
                    float(s.mean_pct),
                    1 if s.below_threshold else 0,
                    _csv_safe(" ".join(corrected)),
                ]
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
    corrected_fill = PatternFill("solid", start_color=_CORRECTED_RGB, end_color=_CORRECTED_RGB)
    n_meet = len(report.meetings)
    header = ["student_id", "name", *(m.label for m in report.meetings), *_TOTALS]
    for col, title in enumerate(header, start=1):
        _set_text(ws.cell(row=1, column=col), title).font = bold
    for j, m in enumerate(report.meetings):
        ws.cell(row=1, column=3 + j).comment = _comment(m.title)
    for row, s in enumerate(report.students, start=2):
        cells = [_set_text(ws.cell(row=row, column=1), s.student_id)]
        cells.append(_set_text(ws.cell(row=row, column=2), s.name))
        for j, c in enumerate(s.cells):
            cell = ws.cell(row=row, column=3 + j, value=float(c.attendance_pct))
            cell.number_format = "0.0"
            cells.append(cell)
            if c.corrected:
                cell.comment = _comment(f"corrected by an instructor (status {c.status})")
        cells.append(ws.cell(row=row, column=3 + n_meet, value=int(s.attended)))
        mean = ws.cell(row=row, column=4 + n_meet, value=float(s.mean_pct))
        mean.number_format = "0.0"
        cells.append(mean)
        for cell in cells:
            if s.below_threshold:
                cell.fill = below_fill
                cell.font = Font(bold=True, color="FF9C0006")
        for j, c in enumerate(s.cells):
            if c.corrected:
                ws.cell(row=row, column=3 + j).fill = corrected_fill
    ws.freeze_panes = "C2"
    ws.column_dimensions["A"].width = 12
    ws.column_dimensions["B"].width = 28
    for j in range(n_meet + 2):
        ws.column_dimensions[get_column_letter(3 + j)].width = 16
    row = len(report.students) + 3
    _set_text(ws.cell(row=row, column=1), "Legend").font = bold
    legend = (
        (below_fill, f"mean attendance under the course threshold ({report.threshold_pct:g} %)"),
        (corrected_fill, "meeting corrected by an instructor (see the meeting's report)"),
    )
    for k, (fill, text) in enumerate(legend, start=1):
        ws.cell(row=row + k, column=1).fill = fill
        _set_text(ws.cell(row=row + k, column=2), text)
    _set_text(ws.cell(row=row + 4, column=1), "Period").font = bold
    _set_text(ws.cell(row=row + 4, column=2), report.period)


def _fill_meetings_sheet(ws: Worksheet, report: CourseReport) -> None:
    """Class attendance per meeting, with a native bar chart of it."""
    bold = Font(bold=True)
    for col, title in enumerate(("meeting", "title", "date", "class_pct"), start=1):
        _set_text(ws.cell(row=1, column=col), title).font = bold
    for row, (m, pct) in enumerate(zip(report.meetings, report.class_pcts, strict=True), start=2):
        _set_text(ws.cell(row=row, column=1), m.label)
        _set_text(ws.cell(row=row, column=2), m.title)
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


# --------------------------------------------------------------------------- PNG


def students_figure(report: CourseReport):
    """Attendance over the term per student: a students x meetings heatmap of %.

    Corrected cells are hatched; students under the threshold have red labels
    and a red mean bar.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    n, k = len(report.students), len(report.meetings)
    fig = Figure(
        figsize=(4.5 + max(4.0, 0.7 * k), max(3.5, 0.3 * n + 2.0)), dpi=110, layout="constrained"
    )
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"{_short(report.course_title, 60)} — attendance per student, {report.period}",
        fontsize=12,
        parse_math=False,
    )
    if not n or not k:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No students or no analysed meetings", ha="center", va="center")
        return fig
    gs = fig.add_gridspec(1, 2, width_ratios=[max(4.0, 0.7 * k), 2.0])
    ax = fig.add_subplot(gs[0])
    ax_mean = fig.add_subplot(gs[1], sharey=ax)
    matrix = [[c.attendance_pct for c in s.cells] for s in report.students]
    image = ax.imshow(matrix, aspect="auto", cmap="RdYlGn", vmin=0, vmax=100)
    for y, s in enumerate(report.students):
        for x, c in enumerate(s.cells):
            ax.text(x, y, f"{c.attendance_pct:.0f}", ha="center", va="center", fontsize=7)
            if c.corrected:
                ax.add_patch(
                    Rectangle(
                        (x - 0.5, y - 0.5),
                        1,
                        1,
                        facecolor="none",
                        edgecolor=CORRECTED_COLOUR,
                        hatch="////",
                        linewidth=1.2,
                    )
                )
    ax.set_xticks(range(k))
    ax.set_xticklabels([m.label for m in report.meetings], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(
        [_short(f"{s.name} ({s.student_id})", 32) for s in report.students],
        fontsize=8,
        parse_math=False,
    )
    for label, s in zip(ax.get_yticklabels(), report.students, strict=True):
        if s.below_threshold:
            label.set_color(BELOW_COLOUR)
            label.set_fontweight("bold")
    fig.colorbar(image, ax=ax, label="attendance %", shrink=0.8, location="left", pad=0.02)
    ax.legend(
        handles=[
            Patch(facecolor="none", edgecolor=CORRECTED_COLOUR, hatch="////", label="corrected"),
            Patch(color=BELOW_COLOUR, label=f"mean under {report.threshold_pct:g} %"),
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    means = [s.mean_pct for s in report.students]
    ax_mean.barh(
        range(n),
        means,
        color=[BELOW_COLOUR if s.below_threshold else "#2e7d32" for s in report.students],
    )
    ax_mean.axvline(report.threshold_pct, color="#333333", linestyle="--", linewidth=1)
    ax_mean.set_xlim(0, 100)
    ax_mean.set_xlabel("mean %")
    ax_mean.tick_params(axis="y", left=False, labelleft=False)
    return fig


def meetings_figure(report: CourseReport):
    """Class attendance per meeting: bars of the class mean %, threshold dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(report.meetings)
    fig = Figure(figsize=(max(6.0, 0.8 * k + 3), 4.0), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(
        f"{_short(report.course_title, 60)} — class attendance per meeting",
        fontsize=12,
        parse_math=False,
    )
    pcts = report.class_pcts
    ax.bar(range(k), pcts, color="#1e88e5")
    for x, pct in enumerate(pcts):
        ax.text(x, pct + 1.5, f"{pct:.0f}%", ha="center", fontsize=8)
    ax.axhline(report.threshold_pct, color=BELOW_COLOUR, linestyle="--", linewidth=1)
    ax.set_ylim(0, 105)
    ax.set_ylabel("class attendance %")
    ax.set_xticks(range(k))
    ax.set_xticklabels([m.label for m in report.meetings], rotation=45, ha="right", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------- terminal


def course_table(report: CourseReport) -> Table:
    """A rich table: one row per student, % per meeting; under-threshold rows in red."""
    table = Table(
        title=Text(f"{report.course_title} ({report.course_id}) — {report.period}"),
        header_style="bold",
    )
    table.add_column("ID", no_wrap=True)
    table.add_column("Name", overflow="fold")
    for m in report.meetings:
        table.add_column(Text(m.label), justify="right")
    table.add_column("Attended", justify="right")
    table.add_column("Mean %", justify="right")
    table.add_column("Threshold", no_wrap=True)
    for s in report.students:
        style = "bold red" if s.below_threshold else ""
        table.add_row(
            Text(s.student_id, style=style),
            Text(s.name, style=style),
            *(
                Text(
                    f"{c.attendance_pct:.0f}" + ("*" if c.corrected else ""),
                    style="magenta" if c.corrected else "",
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
    from rollcall.reports.html import write_course_html_to

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
                lambda tmp: students_figure(report).savefig(tmp, format="png"),
            )
            writers["png_meetings"] = (
                out / "term-meetings.png",
                lambda tmp: meetings_figure(report).savefig(tmp, format="png"),
            )
        elif f == "html":
            writers["html"] = (out / "term.html", lambda tmp: write_course_html_to(report, tmp))
        else:
            raise ValueError(f"unknown report format {f!r}")
    out.mkdir(parents=True, exist_ok=True)
    _commit_atomically(list(writers.values()))
    return {key: path for key, (path, _) in writers.items()}
