"""``rollcall meeting|unknown ...``: analysed meetings and the faces that matched no student.

``register(sub)`` adds the two command groups to the CLI's argparse
subparsers; each command has the CLI's ``(args, config, console) -> exit code``
signature.
"""

from __future__ import annotations

import argparse

from rich.table import Table

from rollcall.cli.args import command, command_group
from rollcall.cli.common import open_db
from rollcall.store import storage


def cmd_meeting_list(args, config, console) -> int:
    from rollcall.store.participant_reports import status_by_meeting

    db = open_db(config)
    # a Zoom participants report not stored yet: "pending" (asked again) or "missing"
    reports = status_by_meeting(db)
    table = Table("id", "course", "title", "start", "minutes", "status", "error")
    for m in storage.list_meetings(db, args.course):
        status = m["status"] or ""
        if m["id"] in reports:
            status += f" (participants report {reports[m['id']]})"
        table.add_row(
            str(m["id"]),
            m["course_id"],
            m["title"] or "",
            m["start_time"] or "",
            f"{(m['duration_s'] or 0) / 60:.1f}",
            status,
            m["error"] or "",
        )
    console.print(table)
    return 0


def cmd_unknown_list(args, config, console) -> int:
    from rollcall.presence import minute_lengths

    db = open_db(config)
    table = Table(
        "cluster", "tracks", "seconds seen", "first seen", "last seen", "minutes seen", "label"
    )
    for c in storage.unknown_clusters(db, args.meeting):
        label = ""
        if c["label_student_pk"]:
            label = db["students"].get(c["label_student_pk"])["student_id"]
        minutes = sum(1 for s in c["seconds_by_minute"] if s > 0)
        table.add_row(
            str(c["cluster_no"]),
            str(c["n_tracks"]),
            f"{sum(c['seconds_by_minute']):.0f}",
            f"{c['first_s']:.0f} s",
            f"{c['last_s']:.0f} s",
            f"{minutes}/{len(minute_lengths(storage.get_meeting(db, args.meeting)['duration_s']))}",
            label,
        )
    console.print(table)
    return 0


def cmd_unknown_label(args, config, console) -> int:
    from rollcall.pipeline.unknowns import label_cluster

    row = label_cluster(
        open_db(config),
        args.meeting,
        args.cluster,
        args.student,
        attendance_settings=config.attendance,
        enroll=args.enroll,
    )
    console.print(
        f"cluster {args.cluster} of meeting {args.meeting} labelled {args.student}: now "
        f"{row['present_minutes']} minute(s) present ({row['attendance_pct']}%, {row['status']})"
        + ("; its embedding was added to the student's template" if args.enroll else ""),
        highlight=False,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``meeting`` and ``unknown`` command groups to the CLI's subparsers."""
    meetings = command_group(sub, "meeting", "analysed meetings")
    p = command(meetings, "list", cmd_meeting_list, "list meetings")
    p.add_argument("--course")

    unknown = command_group(sub, "unknown", "faces that matched no student")
    p = command(unknown, "list", cmd_unknown_list, "list a meeting's unknown-face clusters")
    p.add_argument("meeting", type=int)
    p = command(unknown, "label", cmd_unknown_label, "attribute a cluster to a student")
    p.add_argument("meeting", type=int)
    p.add_argument("cluster", type=int)
    p.add_argument("student")
    p.add_argument(
        "--enroll",
        action="store_true",
        help="also add the cluster's embedding to the student's template",
    )
