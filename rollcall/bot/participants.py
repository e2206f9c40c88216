"""Zoom's participants report, reconciled with what the camera saw.

Per enrolled student: minutes Zoom says they were connected but no face of
theirs was recognised (camera off, or not recognised), and students whose
face was recognised although no participant of that name joined (someone
else's account, a shared device, or a recognition error worth checking).
Participants are matched to students by email, else by name (case and
accents ignored).

The service asks for the report before analysing a recording, so that it can
doubt face matches (``rollcall.pipeline.counter_evidence``); when Zoom has not
built it yet, the meeting is analysed without it and :func:`retry_due_reports`
(the service's scheduler) asks again on its own schedule
(``rollcall.store.participant_reports``). A report that comes later is applied
to the stored minutes (``rollcall.analysis.stored_doubt``) by
:func:`report_arrived`, and the instructor summary is queued only then (or when
Zoom gave up), so a summary never changes after it went out.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from datetime import datetime

import sqlite_utils

from rollcall.bot.zoom_client import Participant
from rollcall.config import Config
from rollcall.presence import minute_lengths
from rollcall.store import participant_reports, storage
from rollcall.store.db import write_transaction

log = logging.getLogger(__name__)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    return " ".join("".join(c for c in text if not unicodedata.combining(c)).casefold().split())


def connected_minutes(
    intervals: list[tuple[datetime, datetime]], start: datetime, duration_s: float
) -> list[int]:
    """1 for each minute of the recording overlapped by a connection interval."""
    out = []
    for i, length in enumerate(minute_lengths(duration_s)):
        a, b = 60.0 * i, 60.0 * i + length
        hit = any(
            (j - start).total_seconds() < b and (leave - start).total_seconds() > a
            for j, leave in intervals
        )
        out.append(int(hit))
    return out


def store_participants(
    db: sqlite_utils.Database,
    meeting_id: int,
    participants: list[Participant],
    start: datetime | None,
) -> list[str]:
    """Store the join/leave intervals and the reconciliation; return report lines."""
    meeting = storage.get_meeting(db, meeting_id)
    students = list(db["students"].rows_where("course_id = ?", [meeting["course_id"]]))
    by_email = {_norm(s["email"]): s for s in students if s["email"]}
    by_name = {_norm(s["name"]): s for s in students}
    presence = {pk: mins for pk, mins in _presence(db, meeting_id).items()}
    # seen on camera, but in review because the report does not list them
    doubted = {
        r["student_pk"]
        for r in db.query(
            "select distinct student_pk from minute_evidence where meeting_id = ? "
            "and state = 'review' and reason like ?",
            [meeting_id, "%participants report%"],
        )
    }
    intervals: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = []
    unmatched_names = set()
    for p in participants:
        student = by_email.get(_norm(p.email)) or by_name.get(_norm(p.name))
        rows.append(
            {
                "meeting_id": meeting_id,
                "name": p.name,
                "email": p.email,
                "join_time": p.join_time.isoformat() if p.join_time else None,
                "leave_time": p.leave_time.isoformat() if p.leave_time else None,
                "student_pk": student["id"] if student else None,
            }
        )
        if student is None:
            unmatched_names.add(p.name)
        elif p.join_time and p.leave_time:
            intervals.setdefault(student["id"], []).append((p.join_time, p.leave_time))
    lines, recon = [], []
    for s in students:
        seen = presence.get(s["id"], [])
        connected = (
            connected_minutes(intervals.get(s["id"], []), start, meeting["duration_s"] or 0)
            if start
            else []
        )
        unrecognised = sum(1 for c, p in zip(connected, seen, strict=False) if c and not p)
        in_report = s["id"] in intervals
        recon.append(
            {
                "meeting_id": meeting_id,
                "student_pk": s["id"],
                "connected_minutes": sum(connected),
                "unrecognized_minutes": unrecognised,
                "in_participants": int(in_report),
            }
        )
        if unrecognised:
            lines.append(
                f"{s['student_id']} {s['name']}: connected {unrecognised} minute(s) "
                "without being recognised (camera off or not recognised)"
            )
        if not in_report and (any(seen) or s["id"] in doubted):
            lines.append(
                f"{s['student_id']} {s['name']}: recognised on camera but not in Zoom's "
                "participants list under this name or email"
            )
    with write_transaction(db):
        db.execute("delete from participants where meeting_id = ?", [meeting_id])
        db.execute("delete from reconciliation where meeting_id = ?", [meeting_id])
        db["participants"].insert_all(rows)
        db["reconciliation"].insert_all(recon)
        old = [
            w
            for w in (meeting["warnings"] or "").split("\n")
            if w and "participants" not in w and "recognised" not in w
        ]
        db["meetings"].update(meeting_id, {"warnings": "\n".join(old + lines)})
    return lines


def _presence(db: sqlite_utils.Database, meeting_id: int) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in db.query(
        "select student_pk, present from presence where meeting_id = ? order by minute",
        [meeting_id],
    ):
        out.setdefault(r["student_pk"], []).append(r["present"])
    return out


def report_arrived(
    db: sqlite_utils.Database,
    config: Config,
    meeting_id: int,
    participants: list[Participant],
    start: datetime | None,
    *,
    doubt: bool,
    now: datetime | None = None,
) -> list[str]:
    """Settle a meeting's participants report, in one transaction: with ``doubt`` (the
    analysis ran without the report) apply it to the stored minutes, store it and the
    reconciliation, end any retry and queue the instructor summary. Returns the
    reconciliation's lines."""
    from rollcall.analysis.stored_doubt import doubt_stored_minutes

    with write_transaction(db):
        if doubt:
            doubt_stored_minutes(db, config, meeting_id, participants, start)
        lines = store_participants(db, meeting_id, participants, start)
        participant_reports.record_done(db, meeting_id, now=now)
        queue_summary(db, config, meeting_id)
    return lines


def queue_summary(db: sqlite_utils.Database, config: Config, meeting_id: int) -> list[str]:
    """Queue the meeting's instructor summary (once; the channels queued now)."""
    from rollcall.notify.messages import enqueue_meeting

    return enqueue_meeting(db, config, meeting_id)


def retry_due_reports(
    db: sqlite_utils.Database,
    config: Config,
    fetch: Callable[[str], list[Participant]],
    *,
    now: datetime | None = None,
) -> int:
    """Ask Zoom again for every participants report that is due; store those that came.

    Returns the number stored. A report that is still not ready is due again in
    ``[zoom] participants_retry_s`` seconds, until ``participants_give_up_h`` hours
    after the first try (then the meeting says it is missing for good). A report that
    came doubts the stored minutes it contradicts (:func:`report_arrived`); the
    instructor summary, held until now, is queued when the report is stored or given up.
    """
    stored = 0
    for pending in participant_reports.due(db, now=now):
        extra = {"meeting_id": pending.meeting_id, "meeting_uuid": pending.meeting_uuid}
        if not db["meetings"].count_where("id = ?", [pending.meeting_id]):
            with write_transaction(db):
                db.execute(
                    "delete from participant_reports where meeting_id = ?", [pending.meeting_id]
                )
            continue
        try:
            participants = fetch(pending.meeting_uuid)
        except Exception as exc:  # not ready, rate limited, Zoom down: try again later
            with write_transaction(db):
                state = participant_reports.record_failure(
                    db,
                    pending.meeting_id,
                    str(exc) or type(exc).__name__,
                    retry_s=config.zoom.participants_retry_s,
                    now=now,
                )
                if state == participant_reports.MISSING:  # the summary waits no longer
                    queue_summary(db, config, pending.meeting_id)
            continue
        try:
            report_arrived(
                db,
                config,
                pending.meeting_id,
                participants,
                pending.start_time,
                doubt=True,
                now=now,
            )
        except Exception as exc:  # nothing of it stored (one transaction): due again later
            log.error(
                "participants report not stored", exc_info=True, extra=dict(extra, error=str(exc))
            )
            continue
        log.info("participants report stored after retrying", extra=extra)
        stored += 1
    return stored
