"""``rollcall report ...`` and ``rollcall attendance ...``: reports and manual corrections.

``register(sub)`` adds the command groups to the CLI's argparse subparsers;
each command has the CLI's ``(args, config, console) -> exit code`` signature.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from pipeline import storage
from pipeline.config import Config


def cmd_report_meeting(args: argparse.Namespace, config: Config, console: Console) -> int:
    from pipeline.report import summary_table, write_reports
    from pipeline.results import meeting_report

    report = meeting_report(storage.open_db(config.home), args.meeting)
    console.print(summary_table(report))
    if args.out:
        for path in write_reports(report, Path(args.out)).values():
            console.print(f"wrote {path}", highlight=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` (and ``attendance``) command groups to the CLI's subparsers."""
    group = sub.add_parser("report", help="reports of stored results")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    text = "show (and write) a meeting's report"
    p = actions.add_parser("meeting", help=text, description=text)
    p.set_defaults(func=cmd_report_meeting)
    p.add_argument("meeting", type=int)
    p.add_argument("--out", help="folder to write attendance.csv/.xlsx/.png into")
