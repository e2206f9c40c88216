"""The term report's PNG charts: attendance per student over the term, class attendance per meeting.

Both are matplotlib figures on their own Agg canvas (no pyplot, thread-friendly);
:func:`figure_png` renders one to bytes (the HTML report embeds them).
"""

from __future__ import annotations

import io

from rollcall.reports.common import CORRECTED_COLOUR, shorten
from rollcall.reports.course_types import CourseReport

BELOW_COLOUR = "#c62828"  # students under the course's threshold


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
        f"{shorten(report.course_title, 60)} — attendance per student, {report.period}",
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
        [shorten(f"{s.name} ({s.student_id})", 32) for s in report.students],
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
        f"{shorten(report.course_title, 60)} — class attendance per meeting",
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
    """A figure rendered as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
