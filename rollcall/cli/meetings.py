"""``rollcall meeting|unknown ...``: analysed meetings and the faces that matched no student.

``register(sub)`` adds the two command groups to the CLI's argparse
subparsers; each command has the CLI's ``(args, config, console) -> exit code``
signature.
"""

from __future__ import annotations

import argparse
import getpass

from rich.table import Column, Table

from rollcall.cli.args import command, command_group, record_id
from rollcall.cli.common import EXIT_FAILURE, cell, confirm_removal, open_db, say
from rollcall.store import storage


def cmd_meeting_list(args, config, console) -> int:
    from rollcall.store.participant_reports import status_by_meeting

    db = open_db(config)
    # a Zoom participants report not stored yet: "pending" (asked again) or "missing"
    reports = status_by_meeting(db)
    table = Table(
        Column("id", no_wrap=True),
        "course",
        "title",
        "start",
        Column("minutes", no_wrap=True),
        Column("status", no_wrap=True),
        # one line per meeting, whatever the error (the whole text stays in the database)
        Column("error", no_wrap=True, overflow="ellipsis", max_width=32),
    )
    for m in storage.list_meetings(db, args.course):
        status = m["status"] or ""
        if m["id"] in reports:
            status += f" (participants report {reports[m['id']]})"
        table.add_row(
            str(m["id"]),
            cell(m["course_id"]),
            cell(m["title"]),
            cell(m["start_time"]),
            f"{(m['duration_s'] or 0) / 60:.1f}",
            cell(status),
            cell(_one_line(m["error"])),
        )
    console.print(table)
    return 0


def cmd_meeting_remove(args, config, console) -> int:
    db = open_db(config)
    if not confirm_removal(console, storage.plan_meeting_removal(db, args.meeting), args.yes):
        return EXIT_FAILURE
    removed = storage.remove_meeting(db, args.meeting, config.home)
    console.print(say("deleted ", removed.summary()))
    return 0


def _one_line(error: str | None, limit: int = 60) -> str:
    """A stored error on one short line (the whole text stays in the database)."""
    text = " ".join((error or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_unknown_list(args, config, console) -> int:
    from rollcall.presence import minute_lengths

    db = open_db(config)
    table = Table(
        "cluster", "tracks", "seconds seen", "first seen", "last seen", "minutes seen", "label",
        "labelled by", "labelled at",
    )  # fmt: skip
    for c in storage.unknown_clusters(db, args.meeting):
        label = ""
        if c["label_student_pk"]:
            label = db["students"].get(c["label_student_pk"])["student_id"]
            if c["enrolled_embedding_id"]:
                label += " (enrolled)"
        minutes = sum(1 for s in c["seconds_by_minute"] if s > 0)
        table.add_row(
            str(c["cluster_no"]),
            str(c["n_tracks"]),
            f"{sum(c['seconds_by_minute']):.0f}",
            f"{c['first_s']:.0f} s",
            f"{c['last_s']:.0f} s",
            f"{minutes}/{len(minute_lengths(storage.get_meeting(db, args.meeting)['duration_s']))}",
            cell(label),
            cell(c["labeled_by"] or "") if c["label_student_pk"] else "",
            (c["labeled_at"] or "") if c["label_student_pk"] else "",
        )
    console.print(table)
    return 0


def cmd_unknown_label(args, config, console) -> int:
    from rollcall.pipeline.unknowns import label_cluster

    db = open_db(config)
    previous = _label_of(db, args.meeting, args.cluster)
    row = label_cluster(
        db,
        args.meeting,
        args.cluster,
        args.student,
        attendance_settings=config.attendance,
        enroll=args.enroll,
        by=args.by or default_user(),
    )
    console.print(
        say(
            f"cluster {args.cluster} of meeting {args.meeting} labelled {args.student}: now "
            f"{row['present_minutes']} minute(s) present ({row['attendance_pct']}%, "
            f"{row['status']})",
            "; its embedding was added to the student's template" if args.enroll else "",
            (f"; taken back from {previous}" if previous and previous != args.student else ""),
        )
    )
    return 0


def cmd_unknown_unlabel(args, config, console) -> int:
    from rollcall.pipeline.unknowns import unlabel_cluster

    db = open_db(config)
    previous = _label_of(db, args.meeting, args.cluster)
    row = unlabel_cluster(db, args.meeting, args.cluster, attendance_settings=config.attendance)
    if row is None:
        console.print(f"cluster {args.cluster} of meeting {args.meeting} was not labelled")
        return 0
    console.print(
        say(
            f"cluster {args.cluster} of meeting {args.meeting} is no longer {previous}: "
            f"{previous} now {row['present_minutes']} minute(s) present "
            f"({row['attendance_pct']}%, {row['status']})"
        )
    )
    return 0


def _label_of(db, meeting_id: int, cluster_no: int) -> str:
    """The student id a cluster is labelled with ("" when none)."""
    for c in storage.unknown_clusters(db, meeting_id):
        if c["cluster_no"] == cluster_no and c["label_student_pk"]:
            return db["students"].get(c["label_student_pk"])["student_id"]
    return ""


def default_user() -> str:
    """Who is labelling: the OS login name ("unknown" when there is none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``meeting`` and ``unknown`` command groups to the CLI's subparsers."""
    meetings = command_group(sub, "meeting", "analysed meetings")
    p = command(meetings, "list", cmd_meeting_list, "list meetings")
    p.add_argument("--course")
    p = command(
        meetings,
        "remove",
        cmd_meeting_remove,
        "delete a meeting with its results, corrections, notifications and Zoom job rows",
    )
    p.add_argument("meeting", type=int)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    unknown = command_group(sub, "unknown", "faces that matched no student")
    text = "list a meeting's unknown-face clusters, with their labels: who labelled them and when"
    p = command(unknown, "list", cmd_unknown_list, text)
    p.add_argument("meeting", type=record_id)
    text = "attribute a cluster to a student (relabelling moves its minutes to the new student)"
    p = command(unknown, "label", cmd_unknown_label, text)
    p.add_argument("meeting", type=record_id)
    p.add_argument("cluster", type=record_id)
    p.add_argument("student")
    p.add_argument(
        "--enroll",
        action="store_true",
        help="also add the cluster's embedding to the student's template",
    )
    p.add_argument("--by", help="who labels the cluster (default: the OS user)")
    text = "undo a cluster's label: its minutes no longer count for the student"
    p = command(unknown, "unlabel", cmd_unknown_unlabel, text)
    p.add_argument("meeting", type=record_id)
    p.add_argument("cluster", type=record_id)
