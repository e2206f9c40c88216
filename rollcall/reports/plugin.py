"""The built-in ``report_files`` plugin: a meeting's CSV, XLSX and PNG files.

It lives beside the writers it calls and is registered by name like the other
built-ins (``rollcall.pipeline.plugin_manager.BUILTINS``), so core code never
imports a plugin and the plugins never import the report writers.
"""

from __future__ import annotations

from pathlib import Path

from rollcall.hookspecs import hookimpl
from rollcall.reports.meeting import write_reports
from rollcall.types import AttendanceReport, MeetingContext


class ReportFilesPlugin:
    """Writes ``attendance.csv``, ``.xlsx`` and ``.png`` for every analysed meeting."""

    name = "report_files"

    @hookimpl
    def rollcall_report(
        self, meeting: MeetingContext, report: AttendanceReport, out_dir: Path
    ) -> list[Path]:
        return list(write_reports(report, out_dir).values())
