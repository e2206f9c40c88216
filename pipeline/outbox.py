"""The notification outbox: every message is stored, then delivered with retries."""

from __future__ import annotations

import sqlite_utils


def migrate_outbox(db: sqlite_utils.Database) -> None:
    db["outbox"].create(
        {
            "id": int,
            "meeting_id": int,
            "course_id": str,
            "channel": str,  # "email", "slack" or "teams"
            "recipient": str,  # address, or the name of the configured webhook (never its URL)
            "dedupe_key": str,  # meeting:channel:recipient:generation - a message is queued once
            "state": str,  # pending, sending, sent, failed
            "attempts": int,
            "next_attempt_at": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
    )
    db["outbox"].create_index(["dedupe_key"], unique=True)
    db["outbox"].create_index(["state", "next_attempt_at"])
