"""``rollcall explain MEETING STUDENT``: why a student is present (or needs review) in each minute.

Prints the evidence stored with the meeting's results (no images are needed):
per present or needs-review minute, the face samples of the deciding tracks,
how many matched the student on their own, the best and median similarity,
the margin over the next enrolled student and over faces of non-students, and
the decision path (vote / centroid / masked). Minutes an instructor corrected say so.
With ``[privacy] store_face_crops = true`` the crops of the deciding tracks are
listed.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command
from rollcall.cli.common import open_db
from rollcall.config import Config
from rollcall.store import storage
from rollcall.store.corrections import minute_labels_of


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cmd_explain(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.reports.results import evidence_of, meeting_students

    db = open_db(config)
    meeting = storage.get_meeting(db, args.meeting)
    student = storage.get_student(db, meeting["course_id"], args.student)
    labels = minute_labels_of(meeting)
    row = next(
        s
        for s in meeting_students(db, meeting, config.attendance)
        if s.student_id == student["student_id"]
    )
    evidence = [evidence_of(r) for r in storage.minute_evidence(db, meeting["id"], student["id"])]
    console.print(
        Text(
            f"{student['student_id']} {student['name']} in meeting {meeting['id']} "
            f"({meeting['title'] or ''}): {row.present_minutes} of {len(row.minutes)} minute(s) "
            f"present, {len(row.review_minutes)} need review, status {row.status}"
        )
    )
    if not evidence:
        console.print(
            "no face of this student was attributed in this meeting"
            + (" (minutes set by a correction are listed below)" if row.corrections else "")
        )
    else:
        table = Table(
            "minute", "decision", "samples", "matched", "best", "median",
            "margin: student", "margin: others", "path", "tracks", "why review",
        )  # fmt: skip
        corrected = set(row.corrected_minutes)
        for e in evidence:
            label = labels[e.minute] if e.minute < len(labels) else str(e.minute)
            decision = "present" if e.state == "present" else "needs review"
            if e.minute in corrected:
                now = "present" if row.minutes[e.minute] else "absent"
                decision += f" (corrected: {now})"
            table.add_row(
                label,
                Text(decision, style="green" if e.state == "present" else "bold dark_orange"),
                str(e.samples),
                str(e.matched),
                _fmt(e.best_similarity),
                _fmt(e.median_similarity),
                _fmt(e.margin_student),
                _fmt(e.margin_cohort),
                e.path,
                " ".join(map(str, e.tracks)),
                Text(e.reason),
            )
        console.print(table)
        console.print(
            "best/median: similarity 0..1 of the face samples to the student's enrollment "
            "photos; margins: how much closer the face is to this student than to the next "
            "enrolled student (student) and than to faces of people who are not enrolled "
            "(others); path: vote = enough single samples matched, centroid = the mean face "
            "of a long track matched, masked = a masked face matched the student's photos "
            "and their masked copies (and their photos with the lower face filled, when "
            "enrolled with them)"
        )
    for c in row.corrections:
        console.print(
            Text(
                f"correction #{c.id}: minutes {labels[c.minute_from]}-{labels[c.minute_to]} "
                f"{'present' if c.present else 'absent'} by {c.made_by} at {c.made_at}: {c.reason}"
            )
        )
    folder = config.home / "evidence" / str(meeting["id"])
    tracks = sorted({t for e in evidence for t in e.tracks})
    crops = [folder / f"track-{t}.jpg" for t in tracks if (folder / f"track-{t}.jpg").exists()]
    if crops:
        console.print("face crops of the deciding tracks:")
        for path in crops:
            # Whole paths on one line each, however narrow the terminal: they are copied.
            console.print(Text(f"  {path}"), soft_wrap=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``rollcall explain`` to the CLI's subparsers."""
    text = "why a student is present or needs review in each minute of a meeting"
    p = command(sub, "explain", cmd_explain, text)
    p.add_argument("meeting", type=int)
    p.add_argument("student", help="the student's id in the meeting's course")
