"""Delivering queued messages: claim what is due, render it, hand it to the notifier plugins.

:func:`deliver_due` (``rollcall notify send``, and ``rollcall serve`` every
``[notify] send_interval_s``) takes due rows from the outbox queue
(:mod:`rollcall.store.outbox`), renders each one
(:func:`rollcall.notify.messages.build_message`) and calls the
``rollcall_send_notification`` hook. Success marks the row ``sent``; an exception
puts it back to ``pending`` with a backoff, or ``failed`` after ``max_attempts``.
Errors are stored and logged with every secret (webhook URL, SMTP password) removed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from rollcall.config import Config
from rollcall.notify.messages import build_message
from rollcall.store import storage
from rollcall.store.outbox import OutboxError, claim_next, mark_failed, mark_sent, requeue_stale

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How many of the messages taken were sent, put back for a retry, or given up."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


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
