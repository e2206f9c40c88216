"""Attendance report writers: CSV, XLSX, PNG and a terminal summary (HTML: html_report).

Every writer consumes one :class:`~rollcall.types.AttendanceReport` and lays it
out the same way: one row per enrolled student (in report order), one column
per minute of the recording headed by :func:`minute_labels`, then the totals.

Minutes decided by an instructor's correction (``StudentAttendance.corrected_minutes``)
are marked in every format: a ``corrections`` column in the CSV (the minute
cells stay numeric), a distinct fill with a who/why comment and a legend in the
XLSX, hatching in the PNG, and a starred ``Present`` count in the terminal.

Safety rules that apply to all file outputs:

- **No formula injection.** Student names, ids and meeting titles come from
  rosters and Zoom metadata, so they are untrusted. In the CSV, a text cell that
  starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
  ``'`` (OWASP "CSV injection"). In the XLSX, text cells are stored with the
  string type, which spreadsheet apps never evaluate, so the original text is
  kept unchanged.
- **Atomic writes.** Each file is written to a hidden temporary file in the
  destination directory and moved into place with :func:`os.replace`, so a crash
  leaves either the previous file or the complete new one, never half a report.
"""

from __future__ import annotations

import csv
import math
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from rich.table import Table
from rich.text import Text

from rollcall.types import STATUSES, AttendanceReport, CorrectionNote, StudentAttendance

if TYPE_CHECKING:  # matplotlib is imported lazily: it is slow to import
    from matplotlib.axes import Axes

__all__ = [
    "FORMATS",
    "correction_text",
    "minute_labels",
    "summary_table",
    "write_csv",
    "write_png",
    "write_reports",
    "write_xlsx",
]

# --------------------------------------------------------------------------- shared

#: Colours per status (PNG bars, XLSX status cells, terminal table).
STATUS_COLOURS: dict[str, str] = {
    "present": "#2e7d32",
    "late": "#f9a825",
    "left_early": "#1e88e5",
    "absent": "#c62828",
}
_OTHER_COLOUR = "#757575"
_RICH_STATUS_STYLE: dict[str, str] = {
    "present": "bold green",
    "late": "bold yellow",
    "left_early": "bold blue",
    "absent": "bold red",
}
_PRESENT_RGB = "C6EFCE"  # Excel's "good" green
_ABSENT_RGB = "FFC7CE"  # Excel's "bad" light red
_CORRECTED_RGB = "FFD966"  # amber: a minute an instructor decided
CORRECTED_COLOUR = "#7b1fa2"  # PNG hatching / HTML outline of corrected minutes

_CSV_INJECTION_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_TOTAL_HEADERS = ("present_minutes", "attendance_pct", "status")


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


def _corrections_cell(s: StudentAttendance, labels: Sequence[str]) -> str:
    return "; ".join(correction_text(c, labels) for c in s.corrections)


def _minute_notes(s: StudentAttendance, labels: Sequence[str]) -> dict[int, CorrectionNote]:
    """Corrected minute -> the correction that decided it (the latest one)."""
    out: dict[int, CorrectionNote] = {}
    for c in sorted(s.corrections, key=lambda c: c.id):
        for m in range(c.minute_from, c.minute_to + 1):
            out[m] = c
    return {m: out[m] for m in s.corrected_minutes if m in out}


def _has_corrections(report: AttendanceReport) -> bool:
    return any(s.corrected_minutes for s in report.students)


def _status_counts(report: AttendanceReport) -> dict[str, int]:
    """Students per status: every known status (even at 0), then any others seen."""
    seen = Counter(s.status for s in report.students)
    counts = {status: seen.pop(status, 0) for status in STATUSES}
    counts.update(sorted(seen.items()))
    return counts


def _status_label(status: str) -> str:
    return status.replace("_", " ")


def _format_duration(seconds: float) -> str:
    total = max(0, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _format_start(start: datetime | None) -> str:
    if start is None:
        return "unknown"
    text = start.strftime("%Y-%m-%d %H:%M")
    if start.tzinfo is not None:
        text += f" {start.tzname() or start.strftime('%z')}"
    return text


# --------------------------------------------------------------------------- atomic writes


def _new_temp(final: Path) -> Path:
    """Create an empty hidden temp file next to ``final`` (umask-respecting mode)."""
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    return tmp


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit_atomically(jobs: Sequence[tuple[Path, Callable[[Path], None]]]) -> None:
    """Run each writer on a temp file, then move all of them into place.

    Nothing is replaced unless every writer succeeded. An exception (including
    KeyboardInterrupt) removes the temp files; a hard kill can leave a hidden
    ``.<name>.<hex>.tmp`` file behind, but never a partial ``<name>``.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for final, write in jobs:
            tmp = _new_temp(final)
            temps.append((tmp, final))
            write(tmp)
            _fsync_file(tmp)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    for directory in {final.parent for _, final in temps}:
        _fsync_dir(directory)


# --------------------------------------------------------------------------- CSV


def _csv_safe(text: str) -> str:
    """Neutralise a text cell that a spreadsheet would run as a formula."""
    return "'" + text if text.startswith(_CSV_INJECTION_PREFIXES) else text


def _write_csv_to(report: AttendanceReport, path: Path) -> None:
    labels = minute_labels(report)
    corrected = _has_corrections(report)
    header = ["student_id", "name", *labels, *_TOTAL_HEADERS]
    if corrected:
        header.append("corrections")
    # utf-8-sig: Excel opens a BOM-less CSV in the legacy ANSI code page and
    # garbles non-ASCII names ("ZoÃ«"); the BOM makes it read UTF-8. Python
    # (encoding="utf-8-sig"), pandas, LibreOffice and Google Sheets accept it.
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([_csv_safe(h) for h in header])
        for s in report.students:
            writer.writerow(
                [
                    _csv_safe(s.student_id),
                    _csv_safe(s.name),
                    *(int(m) for m in s.minutes),
                    int(s.present_minutes),
                    float(s.attendance_pct),
                    _csv_safe(s.status),
                    *([_csv_safe(_corrections_cell(s, labels))] if corrected else []),
                ]
            )


def write_csv(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Write the attendance matrix as CSV (UTF-8 with BOM) and return its path.

    Columns: ``student_id, name``, one 0/1 column per minute headed by
    :func:`minute_labels`, then ``present_minutes, attendance_pct, status``,
    and -- only when some minute was corrected by an instructor -- a
    ``corrections`` column describing each student's corrections (minutes,
    new value, who, when, why; the minute cells already hold corrected values).
    Text cells starting with ``= + - @``, tab or CR are prefixed with ``'``.
    """
    final = Path(path)
    _commit_atomically([(final, lambda tmp: _write_csv_to(report, tmp))])
    return final


# --------------------------------------------------------------------------- XLSX

_ILLEGAL_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _set_text(cell: Cell, text: str) -> Cell:
    """Store ``text`` as a plain string cell, never as a formula or error value.

    openpyxl turns any str starting with ``=`` into a formula and ``#N/A``-like
    strings into error values; forcing the string type after assignment stores
    the original text as an inline string that no spreadsheet evaluates.
    Control characters that XML cannot hold are dropped.
    """
    cell.value = _ILLEGAL_XML_CHARS.sub("", text)
    cell.data_type = "s"
    return cell


def _write_xlsx_to(report: AttendanceReport, path: Path) -> None:
    wb = Workbook()
    _fill_matrix_sheet(wb.active, report)
    _fill_summary_sheet(wb.create_sheet("Summary"), report)
    if _has_corrections(report):
        _fill_corrections_sheet(wb.create_sheet("Corrections"), report)
    for title, header, rows in report.extra_sheets:
        _fill_extra_sheet(wb.create_sheet(title[:31]), header, rows)
    wb.save(path)


def _fill_extra_sheet(ws: Worksheet, header: tuple[str, ...], rows: tuple[tuple, ...]) -> None:
    """A plain table sheet for an optional analyzer's results (text never a formula)."""
    bold = Font(bold=True)
    for col, name in enumerate(header, start=1):
        _set_text(ws.cell(row=1, column=col), str(name)).font = bold
    for r, row in enumerate(rows, start=2):
        for col, value in enumerate(row, start=1):
            if isinstance(value, str):
                _set_text(ws.cell(row=r, column=col), value)
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
    present_fill = PatternFill("solid", start_color=_PRESENT_RGB, end_color=_PRESENT_RGB)
    absent_fill = PatternFill("solid", start_color=_ABSENT_RGB, end_color=_ABSENT_RGB)
    corrected_fill = PatternFill("solid", start_color=_CORRECTED_RGB, end_color=_CORRECTED_RGB)
    corrected_font = Font(bold=True, italic=True)
    status_fonts = {
        st: Font(bold=True, color="FF" + c.lstrip("#").upper()) for st, c in STATUS_COLOURS.items()
    }
    centre = Alignment(horizontal="center")
    vertical = Alignment(horizontal="center", text_rotation=90)

    header = ["student_id", "name", *labels, *_TOTAL_HEADERS]
    for col, title in enumerate(header, start=1):
        cell = _set_text(ws.cell(row=1, column=col), title)
        cell.font = bold
        if 3 <= col < 3 + n_min:
            cell.alignment = vertical

    first_total = 3 + n_min
    for row, s in enumerate(report.students, start=2):
        _set_text(ws.cell(row=row, column=1), s.student_id)
        _set_text(ws.cell(row=row, column=2), s.name)
        notes = _minute_notes(s, labels)
        for j, m in enumerate(s.minutes):
            cell = ws.cell(row=row, column=3 + j, value=int(m))
            cell.fill = present_fill if m else absent_fill
            cell.alignment = centre
            if j in notes:
                cell.fill = corrected_fill
                cell.font = corrected_font
                cell.comment = _comment(correction_text(notes[j], labels))
        ws.cell(row=row, column=first_total, value=int(s.present_minutes))
        pct = ws.cell(row=row, column=first_total + 1, value=float(s.attendance_pct))
        pct.number_format = "0.0"
        status = _set_text(ws.cell(row=row, column=first_total + 2), s.status)
        status.font = status_fonts.get(s.status, bold)
        if s.corrected_minutes:
            status.comment = _comment(
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
    for k, title in enumerate(_TOTAL_HEADERS):
        ws.column_dimensions[get_column_letter(first_total + k)].width = len(title) + 3
    if _has_corrections(report):
        _matrix_legend(ws, len(report.students) + 3, present_fill, absent_fill, corrected_fill)


def _comment(text: str) -> Comment:
    comment = Comment(_ILLEGAL_XML_CHARS.sub("", text), "rollcall")
    comment.width, comment.height = 320, 120
    return comment


def _matrix_legend(
    ws: Worksheet, row: int, present: PatternFill, absent: PatternFill, corrected: PatternFill
) -> None:
    """A legend under the matrix (only written when the report has corrections)."""
    _set_text(ws.cell(row=row, column=1), "Legend").font = Font(bold=True)
    entries = (
        (present, 1, "present (automatic)"),
        (absent, 0, "absent (automatic)"),
        (corrected, None, "corrected by an instructor; hover the cell for who and why"),
    )
    for k, (fill, value, text) in enumerate(entries, start=1):
        swatch = ws.cell(row=row + k, column=1, value=value)
        swatch.fill = fill
        _set_text(ws.cell(row=row + k, column=2), text)


def _fill_corrections_sheet(ws: Worksheet, report: AttendanceReport) -> None:
    """Every correction of the meeting: who changed what, when and why."""
    labels = minute_labels(report)
    header = ("id", "student_id", "name", "from", "to", "set_to", "reason", "made_by", "made_at")
    bold = Font(bold=True)
    for col, title in enumerate(header, start=1):
        _set_text(ws.cell(row=1, column=col), title).font = bold
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
            _set_text(ws.cell(row=r, column=col), value)
    for col, width in zip("ABCDEFGHI", (6, 12, 24, 7, 7, 9, 40, 14, 26), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"


def _longest(texts: Iterable[str]) -> int:
    return max((len(t) for t in texts), default=0)


def _fill_summary_sheet(ws: Worksheet, report: AttendanceReport) -> None:
    bold = Font(bold=True)
    _set_text(ws.cell(row=1, column=1), "Attendance summary").font = Font(bold=True, size=14)

    row = 3
    meta: list[tuple[str, object]] = [
        ("Meeting title", report.meeting_title),
        ("Course", report.course_id),
        ("Start time", report.start_time),
        ("Duration", _format_duration(report.duration_s)),
        ("Minutes", report.n_minutes),
        ("Students", len(report.students)),
    ]
    for label, value in meta:
        _set_text(ws.cell(row=row, column=1), label).font = bold
        cell = ws.cell(row=row, column=2)
        if label == "Start time":
            if isinstance(value, datetime):
                # Excel has no timezones: store the wall-clock time, name the zone beside it.
                cell.value = value.replace(tzinfo=None)
                cell.number_format = "yyyy-mm-dd hh:mm"
                if value.tzinfo is not None:
                    _set_text(ws.cell(row=row, column=3), value.tzname() or value.strftime("%z"))
            else:
                _set_text(cell, "unknown")
        elif isinstance(value, str):
            _set_text(cell, value)
        else:
            cell.value = value
        row += 1

    row += 1
    _set_text(ws.cell(row=row, column=1), "Status").font = bold
    _set_text(ws.cell(row=row, column=2), "Students").font = bold
    row += 1
    for status, count in _status_counts(report).items():
        _set_text(ws.cell(row=row, column=1), status)
        ws.cell(row=row, column=2, value=count)
        row += 1
    _set_text(ws.cell(row=row, column=1), "unknown faces").font = bold
    ws.cell(row=row, column=2, value=int(report.unknown_clusters))
    row += 2

    _set_text(ws.cell(row=row, column=1), "Warnings").font = bold
    if not report.warnings:
        _set_text(ws.cell(row=row, column=2), "none")
        row += 1
    for warning in report.warnings:
        _set_text(ws.cell(row=row, column=2), warning)
        row += 1
    row += 1

    table_header = row
    for col, title in enumerate(
        ("student_id", "name", "present_minutes", "attendance_pct", "status"), start=1
    ):
        _set_text(ws.cell(row=row, column=col), title).font = bold
    for s in report.students:
        row += 1
        _set_text(ws.cell(row=row, column=1), s.student_id)
        _set_text(ws.cell(row=row, column=2), s.name)
        ws.cell(row=row, column=3, value=int(s.present_minutes))
        ws.cell(row=row, column=4, value=float(s.attendance_pct)).number_format = "0.0"
        _set_text(ws.cell(row=row, column=5), s.status)

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
    _commit_atomically([(final, lambda tmp: _write_xlsx_to(report, tmp))])
    return final


# --------------------------------------------------------------------------- PNG

_MAX_NAME_CHARS = 28


def _short(text: str, limit: int = _MAX_NAME_CHARS) -> str:
    text = " ".join(text.split())  # no newlines/tabs in tick labels
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _student_label(s: StudentAttendance) -> str:
    """``Name (ID)`` for a tick label; long names are shortened, the id is kept."""
    sid = _short(s.student_id, 12)
    name = _short(s.name, max(8, _MAX_NAME_CHARS - len(sid) - 3))
    return f"{name} ({sid})" if sid else name


def _minute_tick_step(n_minutes: int, max_ticks: int = 16) -> int:
    for step in (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440):
        if math.ceil(n_minutes / step) <= max_ticks:
            return step
    return max(1, math.ceil(n_minutes / max_ticks))


def _png_title(report: AttendanceReport) -> str:
    title = report.meeting_title.strip() or report.course_id or "Meeting"
    if report.start_time is not None:
        when = report.start_time.strftime("%Y-%m-%d %H:%M")
    else:
        when = "date unknown"
    details = [when, _format_duration(report.duration_s)]
    if report.course_id and report.course_id != title:
        details.insert(0, _short(report.course_id, 30))
    if report.unknown_clusters:
        details.append(f"unknown faces: {report.unknown_clusters}")
    if report.warnings:
        n = len(report.warnings)
        details.append(f"{n} warning{'s' if n != 1 else ''} (see XLSX summary)")
    return f"{_short(title, 80)}\n{' · '.join(details)}"


def _write_png_to(report: AttendanceReport, path: Path) -> None:
    _png_figure(report).savefig(path, format="png")


def png_bytes(report: AttendanceReport) -> bytes:
    """The PNG overview as bytes (for embedding, e.g. in the HTML report)."""
    import io

    buffer = io.BytesIO()
    _png_figure(report).savefig(buffer, format="png")
    return buffer.getvalue()


def _png_figure(report: AttendanceReport):
    # Figure + its own Agg canvas: no pyplot, so no global figure registry or
    # backend switch, and the figure is freed with the object (thread-friendly).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    students = report.students
    n = len(students)
    n_min = report.n_minutes
    height = max(4.0, 0.24 * n + 2.2)
    heat_width = min(12.0, max(5.0, 0.085 * n_min))
    fig = Figure(figsize=(4.8 + heat_width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(_png_title(report), fontsize=12, parse_math=False)

    if n == 0:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No enrolled students", ha="center", va="center", fontsize=14)
        return fig

    gs = fig.add_gridspec(1, 2, width_ratios=[3.0, heat_width])
    ax_bar: Axes = fig.add_subplot(gs[0])
    ax_heat: Axes = fig.add_subplot(gs[1], sharey=ax_bar)
    name_size = 9 if n <= 30 else 8 if n <= 45 else 6

    # Bars: attendance % coloured by status.
    ys = list(range(n))
    pcts = [float(s.attendance_pct) for s in students]
    colours = [STATUS_COLOURS.get(s.status, _OTHER_COLOUR) for s in students]
    ax_bar.barh(ys, pcts, color=colours, height=0.75)
    for y, pct in zip(ys, pcts, strict=True):
        inside = pct >= 80
        ax_bar.text(
            pct - 1.5 if inside else pct + 1.5,
            y,
            f"{pct:.0f}%",
            va="center",
            ha="right" if inside else "left",
            fontsize=name_size - 1,
            color="white" if inside else "#333333",
        )
    ax_bar.set_xlim(0, 100)
    ax_bar.set_xticks([0, 25, 50, 75, 100])
    ax_bar.set_xlabel("attendance %")
    ax_bar.set_yticks(ys)
    ax_bar.set_yticklabels(
        [_student_label(s) + (" *" if s.corrected_minutes else "") for s in students],
        fontsize=name_size,
        parse_math=False,
    )
    ax_bar.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax_bar.set_axisbelow(True)
    for side in ("top", "right"):
        ax_bar.spines[side].set_visible(False)
    counts = _status_counts(report)
    handles = [
        Patch(color=STATUS_COLOURS.get(st, _OTHER_COLOUR), label=f"{_status_label(st)} ({c})")
        for st, c in counts.items()
    ]
    ax_bar.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        fontsize=8,
        frameon=False,
    )

    # Heatmap: students x minutes.
    matrix = [list(s.minutes) + [0] * (n_min - len(s.minutes)) for s in students]
    cmap = ListedColormap(["#f6c6c3", "#3a9f5c"])
    ax_heat.imshow(
        matrix,
        aspect="auto",
        cmap=cmap,
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(-0.5, n_min - 0.5, n - 0.5, -0.5),
    )
    if n > 1:
        ax_heat.hlines(
            [y + 0.5 for y in range(n - 1)], -0.5, n_min - 0.5, color="white", linewidth=0.6
        )
    labels = minute_labels(report)
    step = _minute_tick_step(n_min)
    ticks = list(range(0, n_min, step))
    ax_heat.set_xticks(ticks)
    ax_heat.set_xticklabels([labels[i] for i in ticks], fontsize=8)
    ax_heat.set_xlabel("clock time" if report.start_time is not None else "minutes from start")
    ax_heat.tick_params(axis="y", left=False, labelleft=False)
    ax_heat.set_ylim(n - 0.5, -0.5)
    handles = [Patch(color="#3a9f5c", label="present"), Patch(color="#f6c6c3", label="absent")]
    if _hatch_corrections(ax_heat, students):
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=CORRECTED_COLOUR,
                hatch="////",
                label="corrected by instructor (*)",
            )
        )
    ax_heat.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )
    return fig


def _hatch_corrections(ax: Axes, students: Sequence[StudentAttendance]) -> bool:
    """Hatch each run of corrected minutes in the heatmap; True if there were any."""
    from matplotlib.patches import Rectangle

    any_hatched = False
    for y, s in enumerate(students):
        for first, last in _runs(s.corrected_minutes):
            ax.add_patch(
                Rectangle(
                    (first - 0.5, y - 0.5),
                    last - first + 1,
                    1.0,
                    facecolor="none",
                    edgecolor=CORRECTED_COLOUR,
                    hatch="////",
                    linewidth=1.2,
                )
            )
            any_hatched = True
    return any_hatched


def _runs(indexes: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted minute indexes -> (first, last) runs of consecutive minutes."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def write_png(report: AttendanceReport, path: str | os.PathLike[str]) -> Path:
    """Render a PNG overview and return its path.

    Left: horizontal bars of attendance % per student, coloured by status, with
    a legend. Right: a students x minutes presence heatmap with sparse minute
    labels; minutes corrected by an instructor are hatched and the student's
    label starred. The figure grows with the number of students and minutes.
    """
    final = Path(path)
    _commit_atomically([(final, lambda tmp: _write_png_to(report, tmp))])
    return final


# --------------------------------------------------------------------------- all formats


#: Every format a meeting (or course) report can be written in, in writing order.
FORMATS = ("csv", "xlsx", "png", "html")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"csv,html"`` -> ``("csv", "html")``; an unknown name raises ValueError naming it."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ValueError(
            f"unknown report format {', '.join(bad) or repr(text)}; choose from {','.join(FORMATS)}"
        )
    return chosen


def write_reports(
    report: AttendanceReport,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str] = ("csv", "xlsx", "png"),
) -> dict[str, Path]:
    """Write ``attendance.<format>`` for each of ``formats`` into ``out_dir``.

    The default (CSV, XLSX, PNG) is what the analysis writes; ``"html"`` adds
    the self-contained ``attendance.html`` (see :mod:`rollcall.reports.html`).
    The directory is created if needed. All files are rendered to temp
    files first and only then moved into place, so an error in any writer
    leaves the previous reports (if any) untouched and no temp files behind.
    Returns ``{format: path}``, e.g. ``{"csv": path, "xlsx": path, "png": path}``.
    """
    writers: dict[str, Callable[[Path], None]] = {
        "csv": lambda tmp: _write_csv_to(report, tmp),
        "xlsx": lambda tmp: _write_xlsx_to(report, tmp),
        "png": lambda tmp: _write_png_to(report, tmp),
    }
    if "html" in formats:
        from rollcall.reports.html import write_meeting_html_to

        writers["html"] = lambda tmp: write_meeting_html_to(report, tmp)
    unknown = [f for f in formats if f not in writers]
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(unknown)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {f: out / f"attendance.{f}" for f in formats}
    _commit_atomically([(paths[f], writers[f]) for f in formats])
    return paths


# --------------------------------------------------------------------------- terminal

_STRIP_WIDTH = 60


def _minute_strip(minutes: Sequence[int], width: int = _STRIP_WIDTH) -> str:
    """Presence as at most ``width`` characters, grouping consecutive minutes.

    ``█`` all present, ``▓`` at least half, ``░`` some, ``·`` none.
    """
    n = len(minutes)
    if n == 0:
        return ""
    group = max(1, math.ceil(n / width))
    chars = []
    for start in range(0, n, group):
        chunk = minutes[start : start + group]
        share = sum(1 for m in chunk if m) / len(chunk)
        chars.append("█" if share == 1 else "▓" if share >= 0.5 else "░" if share > 0 else "·")
    return "".join(chars)


def summary_table(report: AttendanceReport) -> Table:
    """A rich table for the terminal: one row per student plus a presence strip.

    Columns: id, name, present minutes / total, attendance %, status (coloured)
    and a per-minute strip (one character per minute, or per group of minutes
    for meetings longer than 60 minutes). The caption gives counts per status
    and the number of unknown faces. Untrusted text is never parsed as markup.
    """
    n_min = report.n_minutes
    group = max(1, math.ceil(n_min / _STRIP_WIDTH))
    title = Text(f"{report.meeting_title or report.course_id} — {_format_start(report.start_time)}")
    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Present", justify="right", no_wrap=True)
    table.add_column("%", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    strip_header = "minutes" if group == 1 else f"minutes ({group} per char)"
    table.add_column(strip_header, no_wrap=True)

    for s in report.students:
        table.add_row(
            Text(s.student_id),
            Text(s.name),
            Text(
                f"{s.present_minutes}/{len(s.minutes) or n_min}"
                + ("*" if s.corrected_minutes else ""),
                style="magenta" if s.corrected_minutes else "",
            ),
            Text(f"{s.attendance_pct:.1f}"),
            Text(_status_label(s.status), style=_RICH_STATUS_STYLE.get(s.status, "bold")),
            _strip_text(s),
        )

    caption = Text()
    for i, (status, count) in enumerate(_status_counts(report).items()):
        if i:
            caption.append(" · ")
        caption.append(f"{_status_label(status)}: {count}", style=_RICH_STATUS_STYLE.get(status))
    caption.append(f" · unknown faces: {report.unknown_clusters}")
    if _has_corrections(report):
        caption.append(" · * corrected by an instructor (magenta minutes)", style="magenta")
    if report.warnings:
        caption.append(f" · warnings: {len(report.warnings)}", style="yellow")
    table.caption = caption
    return table


def _strip_text(s: StudentAttendance) -> Text:
    text = Text()
    n = len(s.minutes)
    group = max(1, math.ceil(n / _STRIP_WIDTH)) if n else 1
    corrected_groups = {m // group for m in s.corrected_minutes}
    for k, ch in enumerate(_minute_strip(s.minutes)):
        style = "green" if ch in "█▓" else "yellow" if ch == "░" else "dim"
        text.append(ch, style="magenta" if k in corrected_groups else style)
    return text
