"""``rollcall notify ...``: the notification outbox from the command line.

``register(sub)`` adds the ``notify`` group to the CLI's argparse subparsers:

- ``rollcall notify list [--meeting M] [--state S]`` - queued, sent and failed messages;
- ``rollcall notify resend MEETING [--channel email|slack|teams]`` - queue a meeting's
  summary again (a new message; the previous ones stay in the list). A message of
  the meeting still in the queue is not copied: a waiting one is made due now;
- ``rollcall notify send [--now]`` - deliver every message that is due now (for setups
  without ``rollcall serve``, e.g. from cron after ``rollcall analyze``), name the
  messages still waiting for a retry and when, and exit 1 while any is waiting;
  ``--now`` sends the waiting ones now instead of at their retry time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group, record_id
from rollcall.cli.common import cell
from rollcall.config import Config
from rollcall.notify.delivery import deliver_due
from rollcall.store import outbox, storage
from rollcall.store.db import utc_now

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
        done = outbox.resend(db, config, args.meeting, [args.channel] if args.channel else None)
    except outbox.OutboxError as exc:
        Console(stderr=True, highlight=False).print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_FAILURE
    new = [r for r in done if r.queued]
    if new:
        console.print(
            f"meeting {args.meeting}: {len(new)} notification(s) queued (ids "
            f"{', '.join(str(r.row_id) for r in new)}); `rollcall serve` sends them, "
            "or run `rollcall notify send`",
            highlight=False,
        )
    for r in done:
        if r.queued:
            continue
        what = "made due now" if r.state == "pending" else "being sent right now by another process"
        console.print(
            f"meeting {args.meeting}: {r.channel} message {r.row_id} is still in the queue, "
            f"no copy made; it was {what}"
            + ("; `rollcall notify send` delivers it" if r.state == "pending" else ""),
            highlight=False,
        )
    return 0


def _when(stamp: str, now: datetime) -> str:
    """``2026-09-01T10:00:30+00:00`` -> ``2026-09-01 10:00:30 UTC (in 25 s)``."""
    at = datetime.fromisoformat(stamp)
    seconds = max(0, round((at - now).total_seconds()))
    span = f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
    return f"{at.strftime('%Y-%m-%d %H:%M:%S')} UTC (in {span})"


def describe_waiting(rows: Sequence[dict], now: datetime) -> list[str]:
    """One line per message that is queued but not due (``notify send`` shows them)."""
    lines = []
    for r in rows:
        head = f"message {r['id']} (meeting {r['meeting_id']}, {r['channel']} to {r['recipient']})"
        if r["state"] == "sending":
            lines.append(f"{head}: being sent by another process since {r['claimed_at']}")
            continue
        error = f"; last error: {r['last_error'][:120]}" if r["last_error"] else ""
        lines.append(
            f"{head}: next attempt {_when(r['next_attempt_at'], now)}, "
            f"attempt {r['attempts']} so far{error}"
        )
    return lines


def cmd_notify_send(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.pipeline.plugin_manager import notifier_manager

    db = storage.open_db(config.home)
    if args.now:
        outbox.make_due(db)
    result = deliver_due(db, config, notifier_manager(db=db, config=config))
    now = utc_now()
    rows = outbox.waiting(db, now=now)
    console.print(
        f"{result.sent} sent, {result.retried} to retry later, {result.failed} failed, "
        f"{len(rows)} waiting",
        highlight=False,
    )
    for line in describe_waiting(rows, now):
        console.print(Text(f"  waiting: {line}"))
    if any(r["state"] == "pending" for r in rows):
        console.print(
            "`rollcall notify send --now` sends the waiting messages now; "
            "`rollcall notify list` shows every message",
            highlight=False,
        )
    return 0 if not (result.retried or result.failed or rows) else EXIT_FAILURE


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
    p.add_argument("--meeting", type=record_id)
    p.add_argument("--state", choices=outbox.STATES)
    p = command(actions, "resend", cmd_notify_resend, "queue a meeting's summary again")
    p.add_argument("meeting", type=record_id)
    p.add_argument("--channel", choices=outbox.CHANNELS, help="default: every configured channel")
    text = (
        "deliver the notifications that are due now; name those waiting for a retry "
        "(exit 1 while any is waiting)"
    )
    p = command(actions, "send", cmd_notify_send, text)
    p.add_argument(
        "--now",
        action="store_true",
        help="also send the messages waiting for a retry now, not at their retry time",
    )
