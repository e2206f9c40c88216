"""The meeting report as a PNG overview: attendance bars per student and a presence heatmap.

Minutes corrected by an instructor are hatched and the student's label starred.
matplotlib is imported lazily (it is slow to import) and used without pyplot:
each figure has its own Agg canvas, so rendering is thread-friendly. The file is
written atomically (:mod:`rollcall.reports.atomic`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rollcall.reports.atomic import commit_atomically
from rollcall.reports.common import (
    CORRECTED_COLOUR,
    MAX_NAME_CHARS,
    OTHER_COLOUR,
    REVIEW_COLOUR,
    STATUS_COLOURS,
    format_duration,
    minute_labels,
    shorten,
    status_counts,
    status_label,
)
from rollcall.types import AttendanceReport, StudentAttendance

if TYPE_CHECKING:  # matplotlib is imported lazily: it is slow to import
    from matplotlib.axes import Axes


def _student_label(s: StudentAttendance) -> str:
    """``Name (ID)`` for a tick label; long names are shortened, the id is kept."""
    sid = shorten(s.student_id, 12)
    name = shorten(s.name, max(8, MAX_NAME_CHARS - len(sid) - 3))
    return f"{name} ({sid})" if sid else name


def minute_tick_step(n_minutes: int, max_ticks: int = 16) -> int:
    """Minutes between labelled ticks so that at most ``max_ticks`` labels are shown."""
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
    details = [when, format_duration(report.duration_s)]
    if report.course_id and report.course_id != title:
        details.insert(0, shorten(report.course_id, 30))
    if report.unknown_clusters:
        details.append(f"unknown faces: {report.unknown_clusters}")
    if report.warnings:
        n = len(report.warnings)
        details.append(f"{n} warning{'s' if n != 1 else ''} (see XLSX summary)")
    notice = "INCOMPLETE: analysis not finished — not the meeting's attendance\n"
    return f"{notice if not report.complete else ''}{shorten(title, 80)}\n{' · '.join(details)}"


def write_png_to(report: AttendanceReport, path: Path) -> None:
    """Render the PNG straight to ``path`` (the atomic move is the caller's)."""
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
    colours = [STATUS_COLOURS.get(s.status, OTHER_COLOUR) for s in students]
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
    counts = status_counts(report)
    handles = [
        Patch(color=STATUS_COLOURS.get(st, OTHER_COLOUR), label=f"{status_label(st)} ({c})")
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
    # 0 absent, 1 present, 2 needs review (a third colour).
    matrix = [
        [2 if j in s.review_minutes else int(m) for j, m in enumerate(s.minutes)]
        + [0] * (n_min - len(s.minutes))
        for s in students
    ]
    cmap = ListedColormap(["#f6c6c3", "#3a9f5c", REVIEW_COLOUR])
    ax_heat.imshow(
        matrix,
        aspect="auto",
        cmap=cmap,
        vmin=0,
        vmax=2,
        interpolation="nearest",
        extent=(-0.5, n_min - 0.5, n - 0.5, -0.5),
    )
    if n > 1:
        ax_heat.hlines(
            [y + 0.5 for y in range(n - 1)], -0.5, n_min - 0.5, color="white", linewidth=0.6
        )
    labels = minute_labels(report)
    step = minute_tick_step(n_min)
    ticks = list(range(0, n_min, step))
    ax_heat.set_xticks(ticks)
    ax_heat.set_xticklabels([labels[i] for i in ticks], fontsize=8)
    ax_heat.set_xlabel("clock time" if report.start_time is not None else "minutes from start")
    ax_heat.tick_params(axis="y", left=False, labelleft=False)
    ax_heat.set_ylim(n - 0.5, -0.5)
    handles = [Patch(color="#3a9f5c", label="present"), Patch(color="#f6c6c3", label="absent")]
    if any(s.review_minutes for s in students):
        handles.append(Patch(color=REVIEW_COLOUR, label="needs review (?)"))
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
    commit_atomically([(final, lambda tmp: write_png_to(report, tmp))])
    return final
