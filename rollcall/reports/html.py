"""Self-contained HTML reports (a meeting's, a course's term) rendered with Jinja2.

One file each, no external resources: the CSS is inline and the charts are
PNGs embedded as base64 ``data:`` URIs, so the report can be mailed, archived
or opened offline. Jinja2's autoescaping keeps untrusted names and titles
(rosters, Zoom metadata) from becoming markup.

Marks the tests and readers rely on: a corrected minute cell has the class
``corrected`` and a ``title`` saying who changed it, when and why; a minute that
needs review has the class ``review`` and shows ``?``; a present or needs-review
minute's ``title`` says why (the stored evidence, also listed in the table
``#evidence``); a student under the course threshold has the row class
``below-threshold``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import jinja2

from rollcall.reports.common import (
    correction_text,
    evidence_rows,
    format_duration,
    format_score,
    format_start,
    incomplete_notice,
    minute_labels,
    minute_notes,
    minute_why,
    review_text,
    status_counts,
)
from rollcall.reports.course_png import figure_png, meetings_figure, students_figure
from rollcall.reports.course_types import CourseReport
from rollcall.reports.png import png_bytes
from rollcall.types import AttendanceReport

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _generated() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_meeting_html(report: AttendanceReport) -> str:
    """The meeting report as one HTML page (chart, matrix with corrections, legend)."""
    labels = minute_labels(report)
    rows = []
    for s in report.students:
        notes = minute_notes(s, labels)
        why = minute_why(s)
        rows.append(
            {
                "student": s,
                "cells": [
                    {
                        "value": int(m),
                        "corrected": j in notes,
                        "review": j in s.review_minutes,
                        "note": correction_text(notes[j], labels) if j in notes else "",
                        "why": why.get(j, ""),
                    }
                    for j, m in enumerate(s.minutes)
                ],
            }
        )
    corrections = sorted(
        ((c, s) for s in report.students for c in s.corrections), key=lambda p: p[0].id
    )
    return (
        _environment()
        .get_template("meeting.html.j2")
        .render(
            report=report,
            labels=labels,
            rows=rows,
            counts=status_counts(report),
            start=format_start(report.start_time),
            duration=format_duration(report.duration_s),
            chart=_data_uri(png_bytes(report)),
            corrections=[(correction_text(c, labels), s) for c, s in corrections],
            review=review_text(report),
            evidence=evidence_rows(report, labels),
            fmt=format_score,
            generated=_generated(),
            incomplete=incomplete_notice(report),
        )
    )


def render_course_html(report: CourseReport) -> str:
    """The term report as one HTML page (charts, student x meeting table, legend)."""
    return (
        _environment()
        .get_template("course.html.j2")
        .render(
            report=report,
            rows=[
                {"student": s, "cells": list(zip(report.meetings, s.cells, strict=True))}
                for s in report.students
            ],
            class_pcts=report.class_pcts,
            students_chart=_data_uri(figure_png(students_figure(report))),
            meetings_chart=_data_uri(figure_png(meetings_figure(report))),
            generated=_generated(),
        )
    )


def write_meeting_html_to(report: AttendanceReport, path: Path) -> None:
    """Write the meeting's HTML page straight to ``path`` (the atomic move is the caller's)."""
    path.write_text(render_meeting_html(report), encoding="utf-8")


def write_course_html_to(report: CourseReport, path: Path) -> None:
    """Write the term report's HTML page straight to ``path`` (the atomic move is the caller's)."""
    path.write_text(render_course_html(report), encoding="utf-8")
