"""Running queued jobs: download the recording, analyse it, store the result.

Each worker is an asyncio task. Network I/O (the download) runs on the event
loop; the worker's job-queue calls (claim, state changes, heartbeats) run on
its own database thread (:class:`~rollcall.service.db_thread.DbThread`), which
alone uses the worker's SQLite connection; the analysis (CPU) runs in another
thread or process with a connection of its own. A heartbeat keeps the job's
lease while it runs; if the process dies, the lease expires and another worker
(or the restarted service) takes the job again, and because a meeting's
results are replaced atomically by key, nothing is counted twice.

The analysis step is :func:`rollcall.analysis.process.process_recording`, the
same as ``rollcall analyze``'s: retention purge, analysis, stored results and
the meeting's queued notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rollcall.bot.download import download_recording
from rollcall.config import Config
from rollcall.service.db_thread import DbThread
from rollcall.store import jobs, storage

log = logging.getLogger(__name__)
IDLE_POLL_S = 1.0


@dataclass
class WorkerContext:
    config: Config
    analyze: Callable[[Path, jobs.Job], Awaitable[int]]  # returns our meeting id
    get_token: Callable[[], str] | None  # OAuth token for downloads without an event token
    fetch_participants: Callable[[str], list] | None = None  # Zoom's participants report


def reconcile_participants(ctx: WorkerContext, job: jobs.Job, meeting_id: int) -> None:
    """Fetch Zoom's participants report and store it beside the face presence (thread)."""
    from rollcall.bot.participants import store_participants

    participants = ctx.fetch_participants(job.meeting_uuid)
    start = job.payload.get("start_time")
    db = storage.open_db(ctx.config.home)
    try:
        store_participants(
            db, meeting_id, participants, datetime.fromisoformat(start) if start else None
        )
    finally:
        db.conn.close()


def analysis_for(config: Config) -> Callable[[Path, jobs.Job], int]:
    """The analysis step: one model load per process, one SQLite connection per call."""
    from rollcall.analysis.process import process_recording
    from rollcall.pipeline.plugin_manager import build_catalog, resolve_face_models
    from rollcall.store.plugin_admin import enabled_plugins

    models = resolve_face_models(config, progress=False)
    catalog = build_catalog(config, models)

    def analyze(video: Path, job: jobs.Job) -> int:
        db = storage.open_db(config.home)
        try:
            # plugin settings are read per job: enabling one needs no restart
            pm = catalog.manager_for(enabled_plugins(db, job.course_id))
            start = job.payload.get("start_time")
            result = process_recording(
                db,
                pm,
                models,
                config,
                video,
                job.course_id,
                title=job.topic or f"Zoom meeting {job.zoom_meeting_id}",
                start_time=datetime.fromisoformat(start) if start else None,
                source=job.payload.get("kind") or "zoom",  # "upload": the web app's
                source_key=f"{job.payload.get('kind') or 'zoom'}:{job.meeting_uuid}:{job.file_id}",
                warning=job.payload.get("warning") or "",
                report_dir=None,  # reports are rendered from the database (see process.py)
                notify=True,
            )
            return result.meeting_id
        finally:
            db.conn.close()

    return analyze


def in_thread(
    analyze: Callable[[Path, jobs.Job], int],
) -> Callable[[Path, jobs.Job], Awaitable[int]]:
    """The analysis run in a thread of this process (``[analysis] workers = 1``)."""

    async def run(video: Path, job: jobs.Job) -> int:
        return await asyncio.to_thread(analyze, video, job)

    return run


async def _heartbeat(db: DbThread, job_id: int, worker_id: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        await db.run(jobs.heartbeat, job_id, worker_id, lease_s)


async def run_job(db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str) -> None:
    """Take one claimed job to done, back to the queue (retry) or failed."""
    config = ctx.config
    extra = {"job_id": job.id, "meeting_uuid": job.meeting_uuid, "course_id": job.course_id}
    video = config.home / "downloads" / f"job-{job.id}.mp4"
    beat = asyncio.create_task(_heartbeat(db, job.id, worker_id, config.jobs.lease_s))
    try:
        if job.payload.get("local_path"):  # uploaded in the web app: already on disk
            video = Path(job.payload["local_path"])
        else:
            token = job.payload.get("download_token")
            if not token and ctx.get_token is not None:
                token = await asyncio.to_thread(ctx.get_token)
            log.info("downloading recording", extra=extra)
            await download_recording(
                job.payload["download_url"],
                video,
                token=token or "",
                expected_size=job.payload.get("file_size"),
                allowed_hosts=config.zoom.download_hosts,
                max_attempts=3,
            )
        await db.run(jobs.set_state, job.id, jobs.ANALYZING, worker_id=worker_id)
        log.info("analysing recording", extra=extra)
        meeting_id = await ctx.analyze(video, job)
        if ctx.fetch_participants is not None and not job.payload.get("local_path"):
            try:
                await asyncio.to_thread(reconcile_participants, ctx, job, meeting_id)
            except Exception as exc:  # the attendance result stands without it
                log.warning("participants report unavailable", extra=dict(extra, error=str(exc)))
        await db.run(jobs.complete, job.id, worker_id, meeting_id)
        log.info("job done", extra=dict(extra, meeting_id=meeting_id))
        if not config.storage.keep_videos:
            video.unlink(missing_ok=True)
    except jobs.LeaseLost as exc:
        log.warning(
            "job taken away (cancelled or lease lost); stopping", extra=dict(extra, reason=str(exc))
        )
        video.unlink(missing_ok=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is recorded against the job, then retried
        message = str(exc) or type(exc).__name__
        log.error("job failed", extra=dict(extra, error=message))
        with contextlib.suppress(jobs.LeaseLost):
            await db.run(
                jobs.fail,
                job.id,
                worker_id,
                message,
                base_backoff_s=config.jobs.retry_base_s,
                max_backoff_s=config.jobs.retry_max_s,
            )
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beat


async def worker_loop(ctx: WorkerContext, worker_id: str, stop: asyncio.Event) -> None:
    """Claim and run jobs until ``stop`` is set."""
    db = DbThread(ctx.config.home, name=f"rollcall-worker-{worker_id}")
    try:
        while not stop.is_set():
            job = await db.run(jobs.claim, worker_id, lease_s=ctx.config.jobs.lease_s)
            if job is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_POLL_S)
                continue
            await run_job(db, ctx, job, worker_id)
    finally:
        await db.close()
