"""``rollcall notify ...``: the notification outbox from the command line.

``register(sub)`` adds the ``notify`` group to the CLI's argparse subparsers:

- ``rollcall notify list [--meeting M] [--state S]`` - queued, sent and failed messages;
- ``rollcall notify resend MEETING [--channel email|slack|teams]`` - queue a meeting's
  summary again (a new message; the previous ones stay in the list);
- ``rollcall notify send`` - deliver every message that is due now (for setups
  without ``rollcall serve``, e.g. from cron after ``rollcall analyze``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group
from rollcall.cli.common import cell
from rollcall.config import Config
from rollcall.notify.delivery import deliver_due
from rollcall.store import outbox, storage

EXIT_FAILURE = 1


def cmd_notify_list(args: argparse.Namespace, config: Config, console: Console) -> int:
    db = storage.open_db(config.home)
    if args.meeting is not None:
        storage.get_meeting(db, args.meeting)
    try:
        rows = outbox.list_messages(db, args.meeting, args.state)
    except outbox.OutboxError as exc:
        Console(stderr=True, highlight=False).print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_FAILURE
    table = Table(
        "id", "meeting", "course", "channel", "recipient", "gen", "state", "attempts",
        "next attempt", "sent", "error",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["meeting_id"]),
            cell(r["course_id"]),
            cell(r["channel"]),
            cell(r["recipient"]),
            str(r["generation"]),
            cell(r["state"]),
            f"{r['attempts']}/{config.notify.max_attempts}",
            r["next_attempt_at"] if r["state"] == "pending" else "",
            r["sent_at"] or "",
            cell((r["last_error"] or "")[:80]),
        )
    if not rows:
        console.print("no notifications" + (" for this meeting" if args.meeting else ""))
        return 0
    console.print(table)
    return 0


def cmd_notify_resend(args: argparse.Namespace, config: Config, console: Console) -> int:
    db = storage.open_db(config.home)
    try:
        ids = outbox.resend(db, config, args.meeting, [args.channel] if args.channel else None)
    except outbox.OutboxError as exc:
        Console(stderr=True, highlight=False).print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_FAILURE
    console.print(
        f"meeting {args.meeting}: {len(ids)} notification(s) queued (ids "
        f"{', '.join(map(str, ids))}); `rollcall serve` sends them, or run `rollcall notify send`",
        highlight=False,
    )
    return 0


def cmd_notify_send(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.pipeline.plugin_manager import notifier_manager

    db = storage.open_db(config.home)
    result = deliver_due(db, config, notifier_manager(db=db, config=config))
    console.print(
        f"{result.sent} sent, {result.retried} to retry later, {result.failed} failed",
        highlight=False,
    )
    return 0 if not (result.retried or result.failed) else EXIT_FAILURE


def deliver_now(config: Config, console: Console, meeting_id: int, queued: Sequence[str]) -> int:
    """Deliver what is due once a meeting's summary was queued (``queued``: the channels
    queued just now), for ``analyze --notify``; 1 if the course has no channel at all."""
    from rollcall.pipeline.plugin_manager import notifier_manager

    db = storage.open_db(config.home)
    if not queued and not outbox.list_messages(db, meeting_id=meeting_id):
        console.print(
            "no notification channel is configured for this course ([[notify.courses]])",
            highlight=False,
        )
        return EXIT_FAILURE
    result = deliver_due(db, config, notifier_manager(db=db, config=config))
    console.print(
        f"notifications: {result.sent} sent, {result.retried} to retry later "
        f"(`rollcall notify send`), {result.failed} failed",
        highlight=False,
    )
    return 0 if not result.failed else EXIT_FAILURE


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``notify`` command group to the CLI's subparsers."""
    actions = command_group(sub, "notify", "instructor notifications (the outbox)")

    p = command(actions, "list", cmd_notify_list, "list queued, sent and failed notifications")
    p.add_argument("--meeting", type=int)
    p.add_argument("--state", choices=outbox.STATES)
    p = command(actions, "resend", cmd_notify_resend, "queue a meeting's summary again")
    p.add_argument("meeting", type=int)
    p.add_argument("--channel", choices=outbox.CHANNELS, help="default: every configured channel")
    command(actions, "send", cmd_notify_send, "deliver the notifications that are due now")
