"""A meeting's report files: ``attendance.<format>`` for each chosen format, written together.

:func:`write_reports` dispatches to the writer of each format
(:mod:`~rollcall.reports.csv_report`, :mod:`~rollcall.reports.xlsx`,
:mod:`~rollcall.reports.png`, :mod:`~rollcall.reports.html`) and commits every
file atomically (:mod:`rollcall.reports.atomic`): all or nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from rollcall.reports import csv_report, png, xlsx
from rollcall.reports.atomic import commit_atomically
from rollcall.types import AttendanceReport


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
        "csv": lambda tmp: csv_report.write_csv_to(report, tmp),
        "xlsx": lambda tmp: xlsx.write_xlsx_to(report, tmp),
        "png": lambda tmp: png.write_png_to(report, tmp),
    }
    if "html" in formats:
        from rollcall.reports import html  # jinja2 is only imported when HTML is asked for

        writers["html"] = lambda tmp: html.write_meeting_html_to(report, tmp)
    unknown = [f for f in formats if f not in writers]
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(unknown)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {f: out / f"attendance.{f}" for f in formats}
    commit_atomically([(paths[f], writers[f]) for f in formats])
    return paths
