"""``rollcall retention run``: delete results older than ``[privacy] retention_days``.

``register(sub)`` adds the ``retention`` group to the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse

from rollcall.cli.args import command, command_group
from rollcall.cli.common import open_db
from rollcall.store import storage


def cmd_retention_run(args, config, console) -> int:
    days = config.privacy.retention_days
    deleted = storage.purge_older_than(open_db(config), days, config.home)
    if days:
        console.print(f"deleted {deleted} meeting(s) analysed more than {days} days ago")
    else:
        console.print("[privacy] retention_days = 0: results are kept forever, nothing deleted")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``retention`` command group to the CLI's subparsers."""
    retention = command_group(sub, "retention", "data retention ([privacy] retention_days)")
    command(retention, "run", cmd_retention_run, "delete meetings older than the retention period")
