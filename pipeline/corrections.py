"""Instructors' manual attendance corrections (stored beside the automatic results)."""

from __future__ import annotations

import sqlite_utils


def migrate_corrections(db: sqlite_utils.Database) -> None:
    db["corrections"].create(
        {
            "id": int,
            "meeting_id": int,
            "student_pk": int,
            "minute_from": int,  # first corrected minute, 0-based
            "minute_to": int,  # last corrected minute, inclusive
            "present": int,  # 1 = present, 0 = absent
            "reason": str,
            "made_by": str,
            "made_at": str,
        },
        pk="id",
    )
    db["corrections"].create_index(["meeting_id", "student_pk"])
