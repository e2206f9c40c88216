"""The meeting report in the terminal: a rich table, one row per student with a presence strip.

Untrusted text (names, ids, titles) is never parsed as rich markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from rollcall.printable import printable
from rollcall.reports.common import (
    REVIEW_MARK,
    format_start,
    has_corrections,
    incomplete_notice,
    review_text,
    status_counts,
    status_label,
)
from rollcall.types import AttendanceReport, StudentAttendance

_RICH_STATUS_STYLE: dict[str, str] = {
    "present": "bold green",
    "late": "bold yellow",
    "left_early": "bold blue",
    "absent": "bold red",
}

_STRIP_WIDTH = 60


def minute_strip(
    minutes: Sequence[int], width: int = _STRIP_WIDTH, review: Sequence[int] = ()
) -> str:
    """Presence as at most ``width`` characters, grouping consecutive minutes.

    ``█`` all present, ``▓`` at least half, ``░`` some, ``·`` none; ``?`` when no
    minute of the group is present and one of them (0-based in ``review``) needs review.
    """
    n = len(minutes)
    if n == 0:
        return ""
    group = max(1, math.ceil(n / width))
    doubt = set(review)
    chars = []
    for start in range(0, n, group):
        chunk = minutes[start : start + group]
        share = sum(1 for m in chunk if m) / len(chunk)
        if share == 0 and doubt.intersection(range(start, start + group)):
            chars.append(REVIEW_MARK)
            continue
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
    title = Text(
        printable(f"{report.meeting_title or report.course_id} — {format_start(report.start_time)}")
    )
    notice = incomplete_notice(report)
    if notice:
        title = Text.assemble((notice, "bold red"), "\n", title)
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
            Text(printable(s.student_id)),
            Text(printable(s.name)),
            Text(
                f"{s.present_minutes}/{len(s.minutes) or n_min}"
                + ("*" if s.corrected_minutes else "")
                + (f" ({len(s.review_minutes)}?)" if s.review_minutes else ""),
                style="magenta" if s.corrected_minutes else "",
            ),
            Text(f"{s.attendance_pct:.1f}"),
            Text(status_label(s.status), style=_RICH_STATUS_STYLE.get(s.status, "bold")),
            _strip_text(s),
        )

    caption = Text()
    for i, (status, count) in enumerate(status_counts(report).items()):
        if i:
            caption.append(" · ")
        caption.append(f"{status_label(status)}: {count}", style=_RICH_STATUS_STYLE.get(status))
    caption.append(f" · unknown faces: {report.unknown_clusters}")
    if review_text(report):
        caption.append(f" · ? {review_text(report)}", style="bold dark_orange")
    if has_corrections(report):
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
    for k, ch in enumerate(minute_strip(s.minutes, review=s.review_minutes)):
        style = (
            "green"
            if ch in "█▓"
            else "yellow"
            if ch == "░"
            else "bold dark_orange"
            if ch == REVIEW_MARK
            else "dim"
        )
        text.append(ch, style="magenta" if k in corrected_groups else style)
    return text
