"""Polling the recordings API: the backstop for events missed while disconnected."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import sqlite_utils

from rollcall.bot.intake import enqueue_recording
from rollcall.bot.zoom_client import ZoomClient
from rollcall.config import Config

log = logging.getLogger(__name__)


def poll_once(db: sqlite_utils.Database, config: Config, client: ZoomClient) -> int:
    """List every configured user's recordings of the last days; enqueue what is new.

    Returns the number of new jobs. Runs in a worker thread (zoomus is synchronous).
    """
    today = datetime.now(UTC).date()
    since = today - timedelta(days=config.jobs.poll_lookback_days)
    new = 0
    for user in config.zoom.users:
        for recording in client.list_recordings(user, since, today):
            result = enqueue_recording(
                db,
                config,
                recording,
                download_token=recording.download_access_token,
                source="poll",
            )
            new += result.created
            log.info(
                "zoom recording found by polling",
                extra={"source": "poll", "meeting_uuid": recording.uuid, "job_id": result.job_id},
            )
    log.info("polled recordings", extra={"users": len(config.zoom.users), "new_jobs": new})
    return new
