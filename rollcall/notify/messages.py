"""Composing instructor messages: what to queue for an analysed meeting, and what a queued row says.

:func:`enqueue_meeting` queues a meeting's summary on each channel its course
uses (the queue itself is :mod:`rollcall.store.outbox`). :func:`build_message`
renders a claimed row into the :class:`~rollcall.types.OutgoingMessage` a
notifier plugin sends, from the database *at send time*: the summary
(:mod:`rollcall.notify.summary`), the secret target read from the configuration
(never stored), and for email the report files as attachments.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import sqlite_utils

from rollcall.config import Config, course_notify
from rollcall.notify.summary import build_summary, report_for
from rollcall.store import outbox, storage
from rollcall.store.outbox import OutboxError
from rollcall.types import AttendanceReport, OutgoingMessage

log = logging.getLogger(__name__)


def enqueue_meeting(
    db: sqlite_utils.Database, config: Config, meeting_id: int, *, now: datetime | None = None
) -> list[str]:
    """Queue the summary of an analysed meeting on each channel of its course, once.

    Returns the channels newly queued (empty when already queued or none configured).
    """
    meeting = storage.get_meeting(db, meeting_id)
    targets = outbox.channel_targets(config, meeting["course_id"])
    queued = outbox.enqueue(db, meeting_id, meeting["course_id"], targets, now=now)
    if queued:
        log.info("notifications queued", extra={"meeting_id": meeting_id, "channels": queued})
    return queued


def secret_target(config: Config, course_id: str, channel: str) -> str:
    """Where to send: the addresses, or the webhook URL (a secret) from the configuration.

    Raises :class:`OutboxError` when the course no longer uses the channel.
    """
    entry = course_notify(config, course_id)
    if entry is None:
        raise OutboxError(f"course {course_id} has no [[notify.courses]] entry any more")
    if channel == "email":
        if not entry.emails:
            raise OutboxError(f"course {course_id} has no instructor emails any more")
        if not config.smtp.host:
            raise OutboxError("[smtp] host is not set")
        return ", ".join(entry.emails)
    url = {"slack": entry.slack_webhook, "teams": entry.teams_webhook}[channel]
    if not url.get_secret_value():
        raise OutboxError(f"course {course_id} has no {channel}_webhook any more")
    return url.get_secret_value()


def _write_attachments(
    db: sqlite_utils.Database, config: Config, meeting_id: int, folder: Path
) -> tuple[AttendanceReport, tuple[Path, ...], Path]:
    # The report writers are imported when an email is rendered: they are slow to import.
    from rollcall.reports.csv_report import write_csv
    from rollcall.reports.png import write_png
    from rollcall.reports.xlsx import write_xlsx

    report = report_for(db, config, meeting_id)
    files = (
        write_xlsx(report, folder / "attendance.xlsx"),
        write_csv(report, folder / "attendance.csv"),
    )
    chart = write_png(report, folder / "attendance.png")
    return report, files, chart


def build_message(
    db: sqlite_utils.Database, config: Config, row: dict, folder: Path
) -> OutgoingMessage:
    """Render what ``row`` says to send, from the database as it is now.

    Email attachments are written into ``folder`` (the caller deletes it).
    """
    target = secret_target(config, row["course_id"], row["channel"])
    attachments: tuple[Path, ...] = ()
    chart = None
    report = None
    if row["channel"] == "email":
        report, attachments, chart = _write_attachments(db, config, row["meeting_id"], folder)
    summary = build_summary(db, config, row["meeting_id"], report)
    return OutgoingMessage(
        id=row["id"],
        channel=row["channel"],
        recipient=row["recipient"],
        target=target,
        summary=summary,
        config=config,
        attachments=attachments,
        chart=chart,
    )
