"""Turning Zoom events (webhook, WebSocket, polling) into jobs. One path for all three.

A ``recording.completed`` event (or a recording found by polling) becomes one
job for its best video file (gallery view first), keyed by meeting UUID and
file id, so the same recording delivered three times is one job. A recording
that maps to no course is stored as a skipped job with a log line.
``recording.trashed``/``recording.deleted`` cancel the meeting's jobs and
``recording.recovered`` puts them back in the queue. A recording that polling
finds again while its job is failed gets one more chance with fresh download
data (``[jobs] poll_revivals`` times at most): the webhook's download token
may have expired, the worker then reads the files again with the OAuth token.

The event loop never touches SQLite here: :class:`Intake` records each event
in a worker thread with a connection opened and closed in that thread, so a
database locked by another process delays that one event, not the service.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import sqlite_utils

from rollcall.bot.course_mapping import course_for
from rollcall.bot.events import (
    MEETING_ENDED,
    RECORDING_COMPLETED,
    RECORDING_DELETED,
    RECORDING_RECOVERED,
    RECORDING_TRASHED,
    ZoomEvent,
    event_object,
    meeting_uuid,
)
from rollcall.bot.zoom_client import ZoomRecording, parse_recording, pick_video_file
from rollcall.config import Config
from rollcall.store import jobs, storage
from rollcall.store.db import now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    job_id: int | None
    created: bool
    state: str


def enqueue_recording(
    db: sqlite_utils.Database,
    config: Config,
    recording: ZoomRecording,
    *,
    download_token: str | None,
    source: str,
) -> IntakeResult:
    """Create (or find) the job for this recording's best video file."""
    file, warning = pick_video_file(recording)
    context = {
        "meeting_uuid": recording.uuid,
        "zoom_meeting_id": recording.meeting_id,
        "source": source,
    }
    if file is None:
        log.warning(
            "recording has no usable video file; ignored", extra=dict(context, reason=warning)
        )
        return IntakeResult(None, False, "ignored")
    course = course_for(
        config.zoom.course_map,
        meeting_id=recording.meeting_id,
        topic=recording.topic,
        host_email=recording.host_email,
    )
    payload = {
        "download_url": file.download_url,
        "download_token": download_token,
        "token_received_at": now_iso() if download_token else None,
        "file_size": file.file_size,
        "recording_type": file.recording_type,
        "start_time": recording.start_time.isoformat() if recording.start_time else None,
        "warning": warning,
        "source": source,
    }
    state = jobs.QUEUED if course else jobs.SKIPPED
    job, created = jobs.enqueue(
        db,
        course_id=course,
        meeting_uuid=recording.uuid,
        file_id=file.id,
        payload=payload,
        state=state,
        max_attempts=config.jobs.max_attempts,
        zoom_meeting_id=recording.meeting_id,
        topic=recording.topic,
        host_email=recording.host_email,
        reason="" if course else "no [[zoom.course_map]] rule matches this meeting",
    )
    if created and not course:
        log.info(
            "recording maps to no course; stored as skipped",
            extra=dict(context, job_id=job.id, topic=recording.topic),
        )
    elif created:
        log.info("recording queued", extra=dict(context, job_id=job.id, course_id=course))
    elif source == "poll" and job.state == jobs.FAILED:
        fresh = {k: payload[k] for k in ("download_url", "file_size")}
        fresh |= {
            "download_token": download_token,
            "token_received_at": payload["token_received_at"],
        }
        revived = jobs.revive_failed(
            db,
            job.id,
            fresh,
            max_revivals=config.jobs.poll_revivals,
            reason="polling found the recording again",
        )
        if revived is not None:
            log.info("failed recording requeued by polling", extra=dict(context, job_id=job.id))
            return IntakeResult(revived.id, False, revived.state)
    else:
        log.debug("recording already known", extra=dict(context, job_id=job.id))
    return IntakeResult(job.id, created, job.state)


class Intake:
    """The ``EventSink`` of the service: records events as jobs, nothing slower.

    Each event is recorded off the event loop (``asyncio.to_thread``) with its own
    connection; recording is idempotent, so an event whose sink timed out and that
    Zoom delivers again becomes no second job.
    """

    def __init__(self, config: Config):
        self.config = config

    async def __call__(self, event: ZoomEvent) -> None:
        await asyncio.to_thread(self.record, event)

    def record(self, event: ZoomEvent) -> list[IntakeResult]:
        """Record one event with a connection of this thread's own (worker thread)."""
        db = storage.open_db(self.config.home)
        try:
            return self.handle(db, event)
        finally:
            db.conn.close()

    def handle(self, db: sqlite_utils.Database, event: ZoomEvent) -> list[IntakeResult]:
        uuid = meeting_uuid(event)
        log.info(
            "zoom event", extra={"event": event.event, "source": event.source, "meeting_uuid": uuid}
        )
        if event.event == RECORDING_COMPLETED:
            recording = parse_recording(event_object(event))
            return [
                enqueue_recording(
                    db,
                    self.config,
                    recording,
                    download_token=event.download_token,
                    source=event.source,
                )
            ]
        if event.event in (RECORDING_TRASHED, RECORDING_DELETED) and uuid:
            cancelled = jobs.cancel_meeting(db, uuid, f"Zoom event {event.event}")
            log.info(
                "recording removed in Zoom; jobs cancelled",
                extra={"meeting_uuid": uuid, "cancelled": len(cancelled)},
            )
            return [IntakeResult(j.id, False, j.state) for j in cancelled]
        if event.event == RECORDING_RECOVERED and uuid:
            return self._recovered(db, event, uuid)
        if event.event == MEETING_ENDED:
            # The participants report is fetched by the worker once the recording is analysed.
            log.info("meeting ended", extra={"meeting_uuid": uuid})
            return []
        log.debug("event ignored", extra={"event": event.event})
        return []

    def _recovered(
        self, db: sqlite_utils.Database, event: ZoomEvent, uuid: str
    ) -> list[IntakeResult]:
        """A recording restored from the trash: its cancelled jobs run again (an unknown
        one is queued as if it had just completed)."""
        changes = {}
        if event.download_token:
            changes = {"download_token": event.download_token, "token_received_at": now_iso()}
        requeued = jobs.recover_meeting(
            db, uuid, f"Zoom event {event.event}", payload_changes=changes
        )
        log.info(
            "recording recovered in Zoom; cancelled jobs requeued",
            extra={"meeting_uuid": uuid, "requeued": len(requeued)},
        )
        if requeued:
            return [IntakeResult(j.id, False, j.state) for j in requeued]
        recording = parse_recording(event_object(event))
        if not recording.recording_files or jobs.list_jobs_of_meeting(db, uuid):
            return []
        return [
            enqueue_recording(
                db, self.config, recording, download_token=event.download_token, source=event.source
            )
        ]
