"""One recording from file to stored results, report files, retention and queued
notifications: :func:`process_recording`, called by ``rollcall analyze`` and by the
service's workers (in a thread or in an analysis process), so both run the same steps.

The caller loads the face models and the plugin manager (the service once per
process, the CLI once per command), opens the connection (used only in the
calling thread) and decides the things that differ between the two paths:
where report files go (the CLI's ``--out``; the service writes none, see
below), whether notifications are queued (the CLI only with ``--notify``, the
service always), and the Zoom-specific ``source_key``, title and warning.

The service passes no ``report_dir``: its reports are rendered from the database
on demand (the admin meeting page, the notification attachments, ``rollcall
report meeting``), and files written beside the database would outlive the
retention purge, which deletes a meeting's rows and evidence but knows nothing
of such folders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
import sqlite_utils

from rollcall.config import Config
from rollcall.reports.results import meeting_report
from rollcall.store import retention
from rollcall.types import AttendanceReport, MeetingContext

if TYPE_CHECKING:  # the orchestrator pulls in the frame pipeline: imported when used
    from rollcall.pipeline.orchestrator import FrameAnalysis, FrameJob, MeetingOutcome, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessedRecording:
    """What :func:`process_recording` did."""

    meeting: MeetingOutcome  # the stored analysis (meeting id, counts, timing)
    report: AttendanceReport  # the meeting's results as stored (with corrections)
    purged: int  # meetings deleted by the retention purge before the analysis
    report_paths: tuple[Path, ...]  # files the ``rollcall_report`` plugins wrote
    notifications: tuple[str, ...]  # channels queued now (empty when already queued)
    notify_error: str = ""  # why notifications could not be queued ("" when they were)

    @property
    def meeting_id(self) -> int:
        return self.meeting.meeting_id


def process_recording(
    db: sqlite_utils.Database,
    pm: pluggy.PluginManager,
    models,
    config: Config,
    video: Path,
    course_id: str,
    *,
    title: str = "",
    start_time: datetime | None = None,
    source: str = "file",
    source_key: str | None = None,
    warning: str = "",
    report_dir: Path | None = None,
    notify: bool = True,
    progress: Progress | None = None,
    announce: Callable[[str], None] | None = None,
    commit_guard: Callable[[sqlite_utils.Database], Any] | None = None,
    frames: Callable[[FrameJob], FrameAnalysis] | None = None,
    participants: list | None = None,
) -> ProcessedRecording:
    """Purge per ``[privacy] retention_days``, analyse ``video`` for ``course_id`` and
    store the results, let the reporting plugins write into ``report_dir`` (if given),
    and queue the course's instructor notifications (if ``notify``).

    ``warning`` is added to the meeting's stored warnings (e.g. Zoom had no gallery
    view). A failure to queue notifications never fails the analysis: it is logged
    and returned as ``notify_error`` (re-queueing later is safe, it is idempotent).
    ``announce`` is told when the recording's meeting exists and is being replaced.

    ``commit_guard(db)`` runs in the transaction that stores the results; when it
    raises, nothing is stored, no notification is queued and the error propagates
    (the service's check that its worker still holds the job). ``frames`` replaces the
    frame analysis (a cluster worker's, see ``analyze_recording``).

    ``participants`` (a Zoom participants report read from a file) doubts face matches
    of students it says were not connected.
    """
    from rollcall.pipeline.orchestrator import analyze_recording

    purged = retention.purge_older_than(db, config.privacy.retention_days, config.home)
    if purged:
        log.info(
            "retention: old meetings deleted",
            extra={"meetings": purged, "retention_days": config.privacy.retention_days},
        )
    outcome = analyze_recording(
        db,
        pm,
        models,
        config,
        video,
        course_id,
        title=title,
        start_time=start_time,
        source=source,
        source_key=source_key,
        progress=progress,
        announce=announce,
        commit_guard=commit_guard,
        frames=frames,
        participants=participants,
    )
    if warning:
        _add_warning(db, outcome.meeting_id, warning)
    report = meeting_report(db, outcome.meeting_id, rules=config.attendance)
    paths = write_report_files(pm, outcome.context, report, report_dir) if report_dir else ()
    channels: tuple[str, ...] = ()
    notify_error = ""
    if notify:
        try:
            channels = tuple(queue_notifications(db, config, outcome.meeting_id))
        except Exception as exc:  # the outbox can be filled again later; results stand
            notify_error = str(exc) or type(exc).__name__
            log.error(
                "notifications not queued",
                extra={"meeting_id": outcome.meeting_id, "error": notify_error},
            )
    log.info(
        "recording processed",
        extra={
            "meeting_id": outcome.meeting_id,
            "course_id": course_id,
            "source": source,
            "reports": len(paths),
            "notifications": list(channels),
        },
    )
    return ProcessedRecording(outcome, report, purged, paths, channels, notify_error)


def write_report_files(
    pm: pluggy.PluginManager, meeting: MeetingContext, report: AttendanceReport, out_dir: Path
) -> tuple[Path, ...]:
    """Let every reporting plugin write its files for the meeting into ``out_dir``."""
    paths: list[Path] = []
    for written in pm.hook.rollcall_report(meeting=meeting, report=report, out_dir=out_dir):
        paths.extend(written or [])
    return tuple(paths)


def queue_notifications(db: sqlite_utils.Database, config: Config, meeting_id: int) -> list[str]:
    """Queue the meeting's instructor notifications: the channels queued now, ``[]``
    when they already were (a retried job, a restarted service)."""
    from rollcall.notify.messages import enqueue_meeting

    return enqueue_meeting(db, config, meeting_id)


def _add_warning(db: sqlite_utils.Database, meeting_id: int, warning: str) -> None:
    existing = db["meetings"].get(meeting_id)["warnings"]
    db["meetings"].update(meeting_id, {"warnings": "\n".join(filter(None, [existing, warning]))})
