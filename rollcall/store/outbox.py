"""The notification outbox: the queue of instructor messages, one row of table ``outbox`` each.

This module is the queue only: the table, queueing rows once (:func:`enqueue`,
:func:`resend`), claiming due rows, recording the outcome, listing them. What a
message says and how it is delivered live in :mod:`rollcall.notify`
(:mod:`~rollcall.notify.messages`, :mod:`~rollcall.notify.delivery`).

Life of a message:

- :func:`rollcall.notify.messages.enqueue_meeting` queues one row per channel a
  course uses (``email``, ``slack``, ``teams``) when a meeting has been analysed.
  The row's ``dedupe_key`` (``meeting:channel:generation``) is unique, so analysing
  the same meeting again, a retried job or a restarted service never queue a
  second summary; :func:`resend` queues a new generation on purpose, but never
  while an earlier message of the meeting on that channel is still in the queue
  (``pending`` or ``sending``): a pending one is made due now instead.
- :func:`rollcall.notify.delivery.deliver_due` (``rollcall notify send`` and
  ``rollcall serve`` every ``[notify] send_interval_s``) claims due rows
  (:func:`claim_next`: ``pending`` -> ``sending``), renders each message and hands
  it to the notifier plugins. Success -> ``sent`` (:func:`mark_sent`); an exception
  -> back to ``pending`` with ``next_attempt_at`` doubled each time
  (:func:`backoff_s`: ``retry_base_s`` .. ``retry_max_s``), ``failed`` after
  ``max_attempts`` (:func:`mark_failed`).
- :func:`waiting` names what is queued but not due yet (``rollcall notify send``
  says so and exits 1); :func:`make_due` moves it to now (``notify send --now``).
- A claimed row names the process sending it (``claimed_by``, ``host:pid``). A row
  left in ``sending`` by a process of this host that is no longer running (``kill -9``
  of ``rollcall serve`` while it rendered or sent the message) is taken again at the
  next delivery run; one claimed elsewhere, or by a process whose death cannot be
  seen, after :data:`STALE_SENDING_S` (:func:`requeue_stale`). Emails carry a
  Message-ID derived from the row, so if the process died after the mail server had
  accepted the message but before it was marked sent, a mail client shows it once.

Addresses are stored (they are shown by ``rollcall notify list``); webhook
URLs are not: a chat row names the webhook (``slack``/``teams`` of the
course) and the URL is read from the configuration when sending. Errors are
stored with any secret (URL, password) removed.

Schema: migration 6 in ``rollcall.store.schema``; transactions, clock and
backoff are the store's shared helpers (``rollcall.store.db``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def enqueue(
    db: sqlite_utils.Database,
    meeting_id: int,
    course_id: str,
    targets: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> list[str]:
    """Queue generation 0 of a meeting's message on each channel of ``targets``, once.

    ``targets`` maps channel -> recipient label (:func:`channel_targets`). Returns
    the channels newly queued (empty when every one was already queued).
    """
    queued = []
    with write_transaction(db):
        for channel, recipient in targets.items():
            if _insert(db, meeting_id, course_id, channel, recipient, 0, utc_now(now)):
                queued.append(channel)
    return queued


@dataclass(frozen=True, slots=True)
class Resent:
    """What :func:`resend` did on one channel.

    ``queued`` is True for a new message (a new generation); False when an earlier
    message was still in the queue (``state`` ``pending``: made due now; ``sending``:
    being delivered right now) and no copy was made.
    """

    channel: str
    row_id: int
    queued: bool
    state: str


def resend(
    db: sqlite_utils.Database,
    config: Config,
    meeting_id: int,
    channels: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
) -> list[Resent]:
    """Queue the meeting's summary again (a new generation) on each channel.

    A channel whose earlier message is still queued gets no second copy: a
    ``pending`` one is made due now, a ``sending`` one is left to finish.
    """
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
    out = []
    stamp = _iso(utc_now(now))
    with write_transaction(db):
        for channel in wanted:
            queued = db.execute(
                "select id, state from outbox where meeting_id = ? and channel = ? "
                "and state in ('pending', 'sending') order by id limit 1",
                [meeting_id, channel],
            ).fetchone()
            if queued is not None:
                if queued[1] == "pending":
                    db.execute(
                        "update outbox set next_attempt_at = ? where id = ? and next_attempt_at > ?",
                        [stamp, queued[0], stamp],
                    )
                out.append(Resent(channel, queued[0], False, queued[1]))
                continue
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
            new_id = db.execute("select last_insert_rowid()").fetchone()[0]
            out.append(Resent(channel, new_id, True, "pending"))
    log.info(
        "notifications resent",
        extra={
            "meeting_id": meeting_id,
            "queued": [r.row_id for r in out if r.queued],
            "already_queued": [r.row_id for r in out if not r.queued],
        },
    )
    return out


def waiting(db: sqlite_utils.Database, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Messages still in the queue but not deliverable now: ``pending`` with a later
    ``next_attempt_at`` (a backoff), or ``sending`` (another process has them)."""
    return list(
        db.query(
            "select * from outbox where (state = 'pending' and next_attempt_at > ?) "
            "or state = 'sending' order by next_attempt_at, id",
            [_iso(utc_now(now))],
        )
    )


def make_due(db: sqlite_utils.Database, *, now: datetime | None = None) -> int:
    """Make every ``pending`` message due now (``rollcall notify send --now``); returns how
    many were waiting. Rows another process is sending are left alone."""
    stamp = _iso(utc_now(now))
    with write_transaction(db):
        cur = db.execute(
            "update outbox set next_attempt_at = ? where state = 'pending' and next_attempt_at > ?",
            [stamp, stamp],
        )
    return cur.rowcount


def list_messages(
    db: sqlite_utils.Database, meeting_id: int | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    where: list[str] = []
    args: list[int | str] = []
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


def this_process() -> str:
    """What a claim made by this process records in ``claimed_by``: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(claimed_by: str | None) -> bool:
    """True when ``claimed_by`` names a process of this host that is no longer running.

    A claim from another host, an unreadable one, or a process that may still run
    (or whose pid was reused) is not known to be gone: it waits for
    :data:`STALE_SENDING_S`.
    """
    host, _, pid = (claimed_by or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


def requeue_stale(db: sqlite_utils.Database, *, now: datetime | None = None) -> int:
    """Rows left ``sending`` by a process that died go back to ``pending`` (due now):
    at once when the process is known to be gone, else after :data:`STALE_SENDING_S`."""
    cutoff = _iso(utc_now(now) - timedelta(seconds=STALE_SENDING_S))
    with write_transaction(db):
        sending = db.execute(
            "select id, claimed_at, claimed_by from outbox where state = 'sending'"
        ).fetchall()
        ids = [
            row_id
            for row_id, claimed_at, claimed_by in sending
            if (claimed_at or "") < cutoff or process_gone(claimed_by)
        ]
        for row_id in ids:
            db.execute(
                "update outbox set state = 'pending', last_error = 'interrupted while sending' "
                "where id = ? and state = 'sending'",
                [row_id],
            )
    if ids:
        log.warning(
            "messages interrupted while sending are queued again", extra={"outbox_ids": ids}
        )
    return len(ids)


def claim_next(
    db: sqlite_utils.Database, *, now: datetime | None = None, claimer: str | None = None
) -> dict[str, Any] | None:
    """Take the next due message (``pending`` -> ``sending``) for ``claimer`` (default:
    :func:`this_process`), or None."""
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
            "update outbox set state = 'sending', attempts = attempts + 1, claimed_at = ?, "
            "claimed_by = ? where id = ?",
            [stamp, claimer or this_process(), row[0]],
        )
    return db.table("outbox").get(row[0])


def backoff_s(config: Config, attempts: int) -> float:
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
    row: dict[str, Any],
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
