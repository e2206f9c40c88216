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
the meeting's queued notifications. Its results are stored only if the worker
still holds the job, checked in the transaction that stores them: a recording
trashed in Zoom while it was analysed (job cancelled) gets nothing stored and
no participants report stored.

Zoom's participants report is asked for just before the analysis (Zoom has
usually built it by the time the recording is ready) and passed to it, so a
face match of a student the report says was not connected becomes "needs
review" (``rollcall.pipeline.counter_evidence``). When it is not ready, the
recording is analysed without it and the report is asked for again later
(``rollcall.bot.participants.retry_due_reports``), which then applies it to the
stored minutes. Either way the instructor summary of a Zoom meeting is queued
only once the report is stored (or Zoom gave up), so the summary an instructor
gets is the final result.

With ``[cluster] broker_url`` the download and the frame analysis are done by a
``rollcall worker`` on another machine (``rollcall.cluster``): the worker loop
claims, heart-beats and completes the job as always, hands the worker the
download URL and token, and stores what comes back under the same commit guard.

The download uses the webhook's ``download_token`` while it is fresh; when Zoom
refuses it (its sign-in page, 401/403) or it is older than
:data:`DOWNLOAD_TOKEN_MAX_AGE_S`, the recording's files are read again from the
API and downloaded with the OAuth token.

A worker loop survives any error of one iteration (a locked database, say): it
logs it, backs off and goes on; ``/healthz`` reports a worker task that ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollcall.bot.download import DownloadError, download_recording
from rollcall.config import Config
from rollcall.service.db_thread import DbThread
from rollcall.store import jobs, participant_reports, storage
from rollcall.store.db import backoff_delay
from rollcall.types import Participant

log = logging.getLogger(__name__)
IDLE_POLL_S = 1.0
#: A webhook download token lives 24 hours; one older than this is not tried.
DOWNLOAD_TOKEN_MAX_AGE_S = 23 * 3600.0
#: Back-off of a worker loop after an unexpected error: 1 s doubling up to 60 s.
LOOP_BACKOFF_S = (1.0, 60.0)


@dataclass
class WorkerContext:
    config: Config
    # (video, job, participants=, notify=) -> our meeting id
    analyze: Callable[..., Awaitable[int]]
    get_token: Callable[[], str] | None  # OAuth token for downloads without an event token
    fetch_participants: Callable[[str], list] | None = None  # Zoom's participants report
    # A meeting instance's recordings read again from the API (fresh download data)
    refresh_recording: Callable[[str], Any] | None = None
    # [cluster]: a worker machine downloads and analyses
    # (download source, job, participants=, notify=) -> meeting id
    remote: Callable[..., Awaitable[int]] | None = None


@dataclass(frozen=True, slots=True)
class FetchedReport:
    """Zoom's participants report as asked for before the analysis: the participants,
    or ``None`` and why not (not built yet, Zoom unreachable)."""

    participants: list[Participant] | None
    error: str = ""


def wants_report(ctx: WorkerContext, job: jobs.Job) -> bool:
    """Whether the job's meeting has a participants report to ask Zoom for (a Zoom
    recording and a Zoom client; an upload in the web app has none)."""
    return ctx.fetch_participants is not None and not job.payload.get("local_path")


def fetch_report(ctx: WorkerContext, job: jobs.Job) -> FetchedReport:
    """Ask Zoom for the meeting's participants report (thread); a failure is no error."""
    assert ctx.fetch_participants is not None
    try:
        return FetchedReport(list(ctx.fetch_participants(job.meeting_uuid)))
    except Exception as exc:  # usually "not built yet": analysed without it, asked again
        error = str(exc) or type(exc).__name__
        log.info(
            "participants report not ready before the analysis",
            extra={"job_id": job.id, "meeting_uuid": job.meeting_uuid, "error": error},
        )
        return FetchedReport(None, error)


def settle_participants(
    ctx: WorkerContext, job: jobs.Job, meeting_id: int, report: FetchedReport
) -> None:
    """After the analysis (thread): store the report that came with the reconciliation
    and queue the instructor summary, or schedule the report to be asked for again (the
    meeting says it is missing; the summary waits for it or for Zoom to give up)."""
    from rollcall.bot.participants import report_arrived

    start = job.payload.get("start_time")
    start_time = datetime.fromisoformat(start) if start else None
    db = storage.open_db(ctx.config.home)
    try:
        if not db["meetings"].count_where("id = ?", [meeting_id]):  # removed meanwhile
            log.info("meeting gone before its participants report", extra={"job_id": job.id})
            return
        if report.participants is not None:  # the analysis used it already
            report_arrived(db, ctx.config, meeting_id, report.participants, start_time, doubt=False)
            return
        participant_reports.schedule(
            db,
            meeting_id,
            job.meeting_uuid,
            start_time,
            report.error,
            retry_s=ctx.config.zoom.participants_retry_s,
            give_up_h=ctx.config.zoom.participants_give_up_h,
        )
    finally:
        db.conn.close()


def holds_job(job: jobs.Job) -> Callable[[Any], Any]:
    """The commit guard of a job's analysis: its worker (the lease owner the job was
    claimed by) must still hold it when the results are stored."""
    worker_id = job.lease_owner or ""

    def guard(db) -> None:
        jobs.assert_held(db, job.id, worker_id)

    return guard


def mark_cancelled(db, home: Path, job: jobs.Job, reason: str) -> None:
    """The meeting row the cancelled analysis started says so; its evidence is removed."""
    import shutil

    from rollcall.store.db import write_transaction

    with write_transaction(db):
        rows = list(
            db.query(
                "select id from meetings where source_key = ? and status != 'done'",
                [source_key(job)],
            )
        )
        for row in rows:
            storage.set_meeting_status(db, row["id"], "cancelled", reason)
    for row in rows:
        shutil.rmtree(home / "evidence" / str(row["id"]), ignore_errors=True)
    log.info(
        "analysis of a cancelled job stored nothing",
        extra={"job_id": job.id, "meetings": [r["id"] for r in rows]},
    )


def source_key(job: jobs.Job) -> str:
    """The meeting key of a job's recording: ``zoom:`` for Zoom's, ``upload:`` for the web app's."""
    return f"{job.payload.get('kind') or 'zoom'}:{job.meeting_uuid}:{job.file_id}"


def analysis_for(config: Config, dispatcher: Any = None) -> Callable[..., int]:
    """The analysis step: one model load per process, one SQLite connection per call.

    ``analyze(video, job)`` analyses the downloaded ``video``; with a cluster
    ``dispatcher``, ``analyze(video, job, source)`` has a worker machine download
    ``source`` and analyse it (``video`` is then only the recording's name).
    """
    from rollcall.analysis.process import process_recording
    from rollcall.pipeline.plugin_manager import build_catalog, resolve_face_models
    from rollcall.store.plugin_admin import enabled_plugins

    models = resolve_face_models(config, progress=False)
    catalog = build_catalog(config, models)

    def analyze(
        video: Path,
        job: jobs.Job,
        source: Any = None,
        *,
        participants: list[Participant] | None = None,
        notify: bool = True,
    ) -> int:
        db = storage.open_db(config.home)
        try:
            # plugin settings are read per job: enabling one needs no restart
            enabled = enabled_plugins(db, job.course_id)
            pm = catalog.manager_for(enabled)
            frames = None
            if source is not None:
                frames = _remote_frames(dispatcher, config, db, job, source, enabled, models)
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
                source_key=source_key(job),
                warning=job.payload.get("warning") or "",
                report_dir=None,  # reports are rendered from the database (see process.py)
                notify=notify,  # False: queued once the participants report is settled
                commit_guard=holds_job(job),
                frames=frames,
                participants=participants,
            )
            return result.meeting_id
        except jobs.JobCancelled as exc:
            mark_cancelled(db, config.home, job, str(exc))
            raise
        finally:
            db.conn.close()

    return analyze


def _remote_frames(dispatcher, config: Config, db, job: jobs.Job, source, enabled, models):
    """The frames step done by a cluster worker, for :func:`analysis_for` (its thread)."""
    from rollcall.cluster.coordinator import remote_frames

    owner = job.lease_owner or ""

    def on_started(worker: str) -> None:
        jobs.update_payload(
            db, job.id, owner, {"worker": worker}, message=f"analysing on worker {worker}"
        )

    return remote_frames(
        dispatcher,
        config,
        job.id,
        source,
        tuple(sorted(enabled)),
        models.model_key,
        check_held=lambda: jobs.assert_held(db, job.id, owner),
        on_started=on_started,
    )


def in_thread(analyze: Callable[..., int]) -> Callable[..., Awaitable[int]]:
    """The analysis run in a thread of this process (``[analysis] workers = 1``);
    keyword arguments (``participants``, ``notify``) are passed on."""

    async def run(video: Path, job: jobs.Job, **options: Any) -> int:
        return await asyncio.to_thread(analyze, video, job, **options)

    return run


def remote_in_thread(analyze: Callable[..., int], config: Config) -> Callable[..., Awaitable[int]]:
    """The cluster analysis (``analysis_for`` with a dispatcher) waited for in a thread."""

    async def run(source: Any, job: jobs.Job, **options: Any) -> int:
        video = config.home / "downloads" / f"job-{job.id}.mp4"  # its name only: not written
        return await asyncio.to_thread(analyze, video, job, source, **options)

    return run


async def _heartbeat(db: DbThread, job_id: int, worker_id: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            await db.run(jobs.heartbeat, job_id, worker_id, lease_s)
        except jobs.LeaseLost:
            return  # the worker learns it at its next state change
        except Exception as exc:  # a locked database: the next beat may get through
            log.warning("heartbeat failed", extra={"job_id": job_id, "error": str(exc)})


def _token_is_old(job: jobs.Job) -> bool:
    received = job.payload.get("token_received_at") or job.created_at
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(received)).total_seconds()
    except (TypeError, ValueError):
        return True
    return age > DOWNLOAD_TOKEN_MAX_AGE_S


async def _refresh_download(
    db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str
) -> tuple[str, int | None]:
    """Read the recording's files again from the API; keep the new download data in the
    job (dropping the refused token). Returns (download URL, expected size)."""
    from rollcall.bot.zoom_client import pick_video_file

    recording = await asyncio.to_thread(ctx.refresh_recording, job.meeting_uuid)
    file = next((f for f in recording.recording_files if f.id == job.file_id), None)
    if file is None or not file.download_url:
        file, _ = pick_video_file(recording)
    if file is None:
        raise DownloadError(f"Zoom lists no usable video file for meeting {job.meeting_uuid}")
    await db.run(
        jobs.update_payload,
        job.id,
        worker_id,
        {
            "download_url": file.download_url,
            "file_size": file.file_size,
            "download_token": None,
            "token_received_at": None,
        },
        message="download data read again from the Zoom API",
    )
    return file.download_url, file.file_size


async def download_job(
    db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str, video: Path
) -> None:
    """Download the job's recording: with the event's token while Zoom accepts it, else
    with the OAuth token and the files read again from the API."""
    config = ctx.config
    extra = {"job_id": job.id, "meeting_uuid": job.meeting_uuid}

    async def fetch(url: str, token: str, size: int | None) -> None:
        await download_recording(
            url,
            video,
            token=token,
            expected_size=size,
            allowed_hosts=config.zoom.download_hosts,
            max_attempts=3,
        )

    url, size = job.payload["download_url"], job.payload.get("file_size")
    event_token = job.payload.get("download_token")
    if event_token and ctx.get_token is not None and _token_is_old(job):
        log.info("download token too old; using the OAuth token", extra=extra)
    elif event_token or ctx.get_token is None:
        try:
            await fetch(url, event_token or "", size)
            return
        except DownloadError as exc:
            if not (exc.token_refused and event_token and ctx.get_token is not None):
                raise
            log.warning(
                "Zoom refused the download token; using the OAuth token",
                extra=dict(extra, error=str(exc)),
            )
    else:  # no event token: the OAuth token and the job's download data
        await fetch(url, await asyncio.to_thread(ctx.get_token), size)
        return
    if ctx.refresh_recording is not None:
        url, size = await _refresh_download(db, ctx, job, worker_id)
    await fetch(url, await asyncio.to_thread(ctx.get_token), size)


async def download_source(db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str):
    """Where a cluster worker downloads the job's recording, and with which token: the
    event's while it is fresh, else the OAuth token (with the files read again from
    the API when the event's token is too old)."""
    from rollcall.cluster.messages import DownloadSource

    url, size = job.payload["download_url"], job.payload.get("file_size")
    event_token = job.payload.get("download_token")
    if ctx.get_token is None or (event_token and not _token_is_old(job)):
        token = event_token or ""
    else:
        if event_token and ctx.refresh_recording is not None:
            url, size = await _refresh_download(db, ctx, job, worker_id)
        token = await asyncio.to_thread(ctx.get_token)
    return DownloadSource(url, token, size, tuple(ctx.config.zoom.download_hosts))


async def analyse_remotely(
    db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str, **options: Any
) -> int:
    """Have a cluster worker download and analyse the job's recording; its results are
    stored here (our meeting id). A token Zoom refused is dropped for the next attempt.
    ``options`` (``participants``, ``notify``) go to the analysis."""
    from rollcall.cluster.coordinator import RemoteError
    from rollcall.cluster.messages import TOKEN_REFUSED

    assert ctx.remote is not None
    source = await download_source(db, ctx, job, worker_id)
    await db.run(
        jobs.set_state, job.id, jobs.ANALYZING, worker_id=worker_id, message="sent to the cluster"
    )
    try:
        return await ctx.remote(source, job, **options)
    except RemoteError as exc:
        if exc.kind == TOKEN_REFUSED and job.payload.get("download_token"):
            await db.run(
                jobs.update_payload,
                job.id,
                worker_id,
                {"download_token": None, "token_received_at": None},
                message="Zoom refused the download token; the next attempt uses the OAuth token",
            )
        raise


async def run_job(db: DbThread, ctx: WorkerContext, job: jobs.Job, worker_id: str) -> None:
    """Take one claimed job to done, back to the queue (retry) or failed."""
    config = ctx.config
    extra = {"job_id": job.id, "meeting_uuid": job.meeting_uuid, "course_id": job.course_id}
    video = config.home / "downloads" / f"job-{job.id}.mp4"
    beat = asyncio.create_task(_heartbeat(db, job.id, worker_id, config.jobs.lease_s))
    try:
        report = None
        if job.payload.get("local_path"):  # uploaded in the web app: already on disk
            video = Path(job.payload["local_path"])
            if ctx.remote is not None:  # on this machine's disk: no worker machine can read it
                log.info("uploaded recording analysed on the coordinator", extra=extra)
            await db.run(jobs.set_state, job.id, jobs.ANALYZING, worker_id=worker_id)
            log.info("analysing recording", extra=extra)
            meeting_id = await ctx.analyze(video, job)
        elif ctx.remote is not None:
            report = await _report_for(ctx, job)
            log.info("sending recording to the cluster", extra=extra)
            meeting_id = await analyse_remotely(db, ctx, job, worker_id, **_options(report))
        else:
            log.info("downloading recording", extra=extra)
            await download_job(db, ctx, job, worker_id, video)
            report = await _report_for(ctx, job)
            await db.run(jobs.set_state, job.id, jobs.ANALYZING, worker_id=worker_id)
            log.info("analysing recording", extra=extra)
            meeting_id = await ctx.analyze(video, job, **_options(report))
        await db.run(jobs.assert_held, job.id, worker_id)  # cancelled meanwhile: no report
        if report is not None:
            await asyncio.to_thread(settle_participants, ctx, job, meeting_id, report)
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


async def _report_for(ctx: WorkerContext, job: jobs.Job) -> FetchedReport | None:
    """The participants report asked for before the analysis (None: none to ask for)."""
    return await asyncio.to_thread(fetch_report, ctx, job) if wants_report(ctx, job) else None


def _options(report: FetchedReport | None) -> dict[str, Any]:
    """The analysis' ``participants`` and ``notify``: with a report to wait for, the
    summary is queued by :func:`settle_participants`, not by the analysis."""
    if report is None:
        return {}
    return {"participants": report.participants, "notify": False}


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def worker_loop(ctx: WorkerContext, worker_id: str, stop: asyncio.Event) -> None:
    """Claim and run jobs until ``stop`` is set.

    An error in one iteration (SQLite "database is locked", anything unexpected)
    never ends the loop: it is logged and the worker backs off, 1 s doubling up
    to 60 s, then goes on (a job it held is retried once its lease expires).
    """
    db = DbThread(ctx.config.home, name=f"rollcall-worker-{worker_id}")
    failures = 0
    try:
        while not stop.is_set():
            try:
                job = await db.run(jobs.claim, worker_id, lease_s=ctx.config.jobs.lease_s)
                if job is None:
                    failures = 0
                    await _pause(stop, IDLE_POLL_S)
                    continue
                await run_job(db, ctx, job, worker_id)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = backoff_delay(min(failures, 30), *LOOP_BACKOFF_S)
                log.error(
                    "worker error; backing off",
                    exc_info=True,
                    extra={
                        "worker_id": worker_id,
                        "error": str(exc) or type(exc).__name__,
                        "failures": failures,
                        "delay_s": delay,
                    },
                )
                await _pause(stop, delay)
    finally:
        await db.close()
