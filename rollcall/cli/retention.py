"""``rollcall retention run [--dry-run]``: delete results older than ``[privacy] retention_days``.

A meeting's age counts from the day of the class (its start time) when known,
else from the day it was analysed (:mod:`rollcall.store.retention`).
``--dry-run`` lists what would be deleted and deletes nothing.

``register(sub)`` adds the ``retention`` group to the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse

from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group
from rollcall.cli.common import open_db
from rollcall.store import retention


def cmd_retention_run(args, config, console) -> int:
    days = config.privacy.retention_days
    if not days:
        console.print("[privacy] retention_days = 0: results are kept forever, nothing deleted")
        return 0
    expired = retention.purge(open_db(config), days, config.home, dry_run=args.dry_run)
    if expired:
        table = Table("meeting", "course", "title", "counted from", "age (days)")
        for e in expired:
            table.add_row(
                str(e.meeting_id),
                Text(e.course_id),
                Text(e.title),
                f"{e.counted_from.date().isoformat()} ({e.basis})",
                str(e.age_days),
            )
        console.print(table)
    if args.dry_run:
        console.print(
            f"dry run: {len(expired)} meeting(s) older than {days} days would be deleted; "
            "nothing was deleted",
            highlight=False,
        )
    else:
        console.print(
            f"deleted {len(expired)} meeting(s) older than {days} days "
            "(counted from the class, or from the analysis when its start is unknown)",
            highlight=False,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``retention`` command group to the CLI's subparsers."""
    retention_group = command_group(sub, "retention", "data retention ([privacy] retention_days)")
    p = command(
        retention_group,
        "run",
        cmd_retention_run,
        "delete meetings older than the retention period (counted from the class's start)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the meetings that would be deleted, delete none",
    )
