"""The notification outbox: every message is stored, then delivered with retries.

Life of a message (one row of table ``outbox``):

- :func:`enqueue_meeting` queues one message per channel a course uses
  (``email``, ``slack``, ``teams``) when a meeting has been analysed. The row's
  ``dedupe_key`` (``meeting:channel:generation``) is unique, so analysing the
  same meeting again, a retried job or a restarted service never queue a
  second summary; :func:`resend` queues a new generation on purpose.
- :func:`deliver_due` (``rollcall notify send`` and ``rollcall serve`` every
  ``[notify] send_interval_s``) claims due rows (``pending`` -> ``sending``),
  renders the message from the database *at send time* and hands it to the
  ``rollcall_send_notification`` hook. Success -> ``sent``; an exception ->
  back to ``pending`` with ``next_attempt_at`` doubled each time
  (``retry_base_s`` .. ``retry_max_s``), ``failed`` after ``max_attempts``.
- A row left in ``sending`` by a process that died is taken again after
  :data:`STALE_SENDING_S`. Emails carry a Message-ID derived from the row, so
  in that rare case a mail client shows the message once.

Addresses are stored (they are shown by ``rollcall notify list``); webhook
URLs are not: a chat row names the webhook (``slack``/``teams`` of the
course) and the URL is read from the configuration when sending. Errors are
stored with any secret (URL, password) removed.

Schema: migration 6 in ``rollcall.store.schema``; transactions, clock and
backoff are the store's shared helpers (``rollcall.store.db``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from rollcall.config import Config, course_notify
from rollcall.store import storage
from rollcall.store.db import backoff_delay, now_iso, utc_now, write_transaction

log = logging.getLogger(__name__)

CHANNELS = ("email", "slack", "teams")
STATES = ("pending", "sending", "sent", "failed")
STALE_SENDING_S = 600.0  # a row "sending" for longer belongs to a dead process
MAX_ERROR_CHARS = 500


class OutboxError(Exception):
    """A notify command cannot be carried out (message explains)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a notifier plugin receives in ``rollcall_send_notification``.

    ``target`` is where to send: the comma-separated addresses for email, the
    webhook URL for chat (a secret: never log it). ``attachments`` are report
    files written for this attempt (deleted afterwards); ``chart`` is the PNG
    to show inline, or None.
    """

    id: int
    channel: str
    recipient: str
    target: str
    summary: Any  # rollcall.notify.summary.MeetingSummary
    config: Config
    attachments: tuple[Path, ...] = ()
    chart: Path | None = None

    @property
    def message_id_seed(self) -> str:
        return f"rollcall-{self.id}-{self.summary.meeting_id}"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _iso(t: datetime) -> str:
    """The outbox's timestamp text: UTC, whole seconds."""
    return now_iso(t)


def channel_targets(config: Config, course_id: str) -> dict[str, str]:
    """channel -> recipient label for each channel the course is configured to use."""
    entry = course_notify(config, course_id)
    if entry is None:
        return {}
    out: dict[str, str] = {}
    if entry.emails:
        if config.smtp.host:
            out["email"] = ", ".join(entry.emails)
        else:
            log.warning(
                "course has instructor emails but [smtp] host is not set; no email is sent",
                extra={"course_id": course_id},
            )
    if entry.slack_webhook.get_secret_value():
        out["slack"] = f"{course_id} slack webhook"
    if entry.teams_webhook.get_secret_value():
        out["teams"] = f"{course_id} teams webhook"
    return out


def _secret_target(config: Config, course_id: str, channel: str) -> str:
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


def _insert(
    db: sqlite_utils.Database,
    meeting_id: int,
    course_id: str,
    channel: str,
    recipient: str,
    generation: int,
    now: datetime,
) -> bool:
    cur = db.execute(
        "insert or ignore into outbox (meeting_id, course_id, channel, recipient, generation, "
        "dedupe_key, state, attempts, next_attempt_at, last_error, created_at) "
        "values (?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?)",
        [
            meeting_id,
            course_id,
            channel,
            recipient,
            generation,
            f"{meeting_id}:{channel}:{generation}",
            _iso(now),
            _iso(now),
        ],
    )
    return cur.rowcount == 1


def enqueue_meeting(
    db: sqlite_utils.Database, config: Config, meeting_id: int, *, now: datetime | None = None
) -> list[str]:
    """Queue the summary of an analysed meeting on each channel of its course, once.

    Returns the channels newly queued (empty when already queued or none configured).
    """
    meeting = storage.get_meeting(db, meeting_id)
    targets = channel_targets(config, meeting["course_id"])
    queued = []
    with write_transaction(db):
        for channel, recipient in targets.items():
            if _insert(db, meeting_id, meeting["course_id"], channel, recipient, 0, utc_now(now)):
                queued.append(channel)
    if queued:
        log.info("notifications queued", extra={"meeting_id": meeting_id, "channels": queued})
    return queued


def resend(
    db: sqlite_utils.Database,
    config: Config,
    meeting_id: int,
    channels: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
) -> list[int]:
    """Queue the meeting's summary again (a new generation); returns the new row ids."""
    meeting = storage.get_meeting(db, meeting_id)
    targets = channel_targets(config, meeting["course_id"])
    wanted = list(channels) if channels else list(targets)
    missing = [c for c in wanted if c not in targets]
    if missing or not wanted:
        configured = ", ".join(targets) or "none"
        raise OutboxError(
            f"course {meeting['course_id']} does not use {', '.join(missing) or 'any channel'} "
            f"(configured: {configured}; see [[notify.courses]] and [smtp] host)"
        )
    ids = []
    with write_transaction(db):
        for channel in wanted:
            row = db.execute(
                "select coalesce(max(generation), -1) from outbox where meeting_id = ? and channel = ?",
                [meeting_id, channel],
            ).fetchone()
            _insert(
                db,
                meeting_id,
                meeting["course_id"],
                channel,
                targets[channel],
                row[0] + 1,
                utc_now(now),
            )
            ids.append(db.execute("select last_insert_rowid()").fetchone()[0])
    return ids


def list_messages(
    db: sqlite_utils.Database, meeting_id: int | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    where, args = [], []
    if meeting_id is not None:
        where.append("meeting_id = ?")
        args.append(meeting_id)
    if state:
        if state not in STATES:
            raise OutboxError(f"unknown state {state!r} (known: {', '.join(STATES)})")
        where.append("state = ?")
        args.append(state)
    sql = "select * from outbox" + (f" where {' and '.join(where)}" if where else "")
    return list(db.query(sql + " order by id", args))


def requeue_stale(db: sqlite_utils.Database, *, now: datetime | None = None) -> int:
    """Rows left ``sending`` by a process that died go back to ``pending``."""
    cutoff = _iso(utc_now(now) - timedelta(seconds=STALE_SENDING_S))
    with write_transaction(db):
        cur = db.execute(
            "update outbox set state = 'pending', last_error = 'interrupted while sending' "
            "where state = 'sending' and claimed_at < ?",
            [cutoff],
        )
    return cur.rowcount


def claim_next(db: sqlite_utils.Database, *, now: datetime | None = None) -> dict | None:
    """Take the next due message (``pending`` -> ``sending``), or None."""
    stamp = _iso(utc_now(now))
    with write_transaction(db):
        row = db.execute(
            "select id from outbox where state = 'pending' and next_attempt_at <= ? "
            "order by next_attempt_at, id limit 1",
            [stamp],
        ).fetchone()
        if row is None:
            return None
        db.execute(
            "update outbox set state = 'sending', attempts = attempts + 1, claimed_at = ? "
            "where id = ?",
            [stamp, row[0]],
        )
    return db["outbox"].get(row[0])


def backoff_s(config: Config, attempts: int) -> float:
    """Seconds before retrying a message after its ``attempts``-th failed attempt."""
    n = config.notify
    return backoff_delay(attempts, n.retry_base_s, n.retry_max_s)


def mark_sent(db: sqlite_utils.Database, row_id: int, *, now: datetime | None = None) -> None:
    with write_transaction(db):
        db.execute(
            "update outbox set state = 'sent', sent_at = ?, last_error = '' where id = ?",
            [_iso(utc_now(now)), row_id],
        )


def mark_failed(
    db: sqlite_utils.Database,
    config: Config,
    row: dict,
    error: str,
    *,
    retry: bool = True,
    now: datetime | None = None,
) -> str:
    """Record a failed attempt; returns the new state (``pending`` or ``failed``)."""
    final = not retry or row["attempts"] >= config.notify.max_attempts
    state = "failed" if final else "pending"
    when = utc_now(now) + timedelta(seconds=backoff_s(config, row["attempts"]))
    with write_transaction(db):
        db.execute(
            "update outbox set state = ?, last_error = ?, next_attempt_at = ? where id = ?",
            [state, error[:MAX_ERROR_CHARS], _iso(when), row["id"]],
        )
    return state


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _secrets(config: Config) -> list[str]:
    out = [config.smtp.password.get_secret_value()]
    for c in config.notify.courses:
        out += [c.slack_webhook.get_secret_value(), c.teams_webhook.get_secret_value()]
    return sorted((s for s in out if s), key=len, reverse=True)


def _write_attachments(db: sqlite_utils.Database, config: Config, meeting_id: int, folder: Path):
    from rollcall.notify.summary import report_for
    from rollcall.reports.report import write_csv, write_png, write_xlsx

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
    """Render what ``row`` says to send, from the database as it is now."""
    from rollcall.notify.summary import build_summary

    target = _secret_target(config, row["course_id"], row["channel"])
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


def deliver_one(db: sqlite_utils.Database, config: Config, pm, row: dict, now=None) -> str:
    """Send one claimed row; returns its new state. Never raises for a delivery problem."""
    extra = {"outbox_id": row["id"], "meeting_id": row["meeting_id"], "channel": row["channel"]}
    with tempfile.TemporaryDirectory(prefix="rollcall-notify-") as tmp:
        try:
            message = build_message(db, config, row, Path(tmp))
        except (OutboxError, storage.NotFound) as exc:  # nothing to retry: config or data gone
            log.error("notification cannot be sent", extra=dict(extra, error=str(exc)))
            return mark_failed(db, config, row, str(exc), retry=False, now=now)
        except Exception as exc:  # rendering problem: keep it, maybe a fix is deployed
            error = scrub(f"{type(exc).__name__}: {exc}", _secrets(config))
            log.error("notification rendering failed", extra=dict(extra, error=error))
            return mark_failed(db, config, row, error, now=now)
        try:
            handled = pm.hook.rollcall_send_notification(message=message)
        except Exception as exc:  # SMTP, HTTP, anything: retried with backoff
            error = scrub(f"{type(exc).__name__}: {exc}", [message.target, *_secrets(config)])
            state = mark_failed(db, config, row, error, now=now)
            log.warning(
                "notification not delivered",
                extra=dict(extra, error=error, state=state, attempts=row["attempts"]),
            )
            return state
    if not handled:
        error = f"no notifier plugin handles channel {row['channel']!r}"
        log.error("notification cannot be sent", extra=dict(extra, error=error))
        return mark_failed(db, config, row, error, retry=False, now=now)
    mark_sent(db, row["id"], now=now)
    log.info("notification sent", extra=dict(extra, recipient=row["recipient"]))
    return "sent"


def deliver_due(
    db: sqlite_utils.Database,
    config: Config,
    pm,
    *,
    now: datetime | None = None,
    limit: int = 100,
) -> DeliveryResult:
    """Send every message that is due (at most ``limit``); blocking (SMTP, HTTP)."""
    requeue_stale(db, now=now)
    counts = {"sent": 0, "pending": 0, "failed": 0}
    for _ in range(limit):
        row = claim_next(db, now=now)
        if row is None:
            break
        counts[deliver_one(db, config, pm, row, now=now)] += 1
    return DeliveryResult(sent=counts["sent"], retried=counts["pending"], failed=counts["failed"])
