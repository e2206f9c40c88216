"""``rollcall serve``: the long-running service, wired together.

One asyncio process: the aiohttp server (``POST /zoom/webhook``,
``GET /healthz``; headers and bodies must arrive within ``[server]
header_timeout_s`` / ``body_timeout_s``, at most ``max_connections`` at once), the optional WebSocket event subscription, APScheduler
(polling backstop, retention clean-up), and ``[analysis] workers`` job
workers. Zoom parts whose credentials are missing are switched off with a
clear log line; the local parts run regardless. SIGTERM stops claiming new
jobs, gives running ones ``[server] shutdown_grace_s`` to finish, and puts
the rest back in the queue.

No SQLite connection crosses threads and the event loop does no blocking
database work: the intake, /healthz, the admin API, polling, the scheduler's
jobs and the shutdown requeue each open their connection in the worker thread
that uses it; each job worker has its own database thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from rollcall.bot.intake import Intake
from rollcall.bot.webhook import webhook_routes
from rollcall.config import Config, zoom_credentials_missing
from rollcall.service.pool import AnalysisPool
from rollcall.service.worker import (
    WorkerContext,
    analysis_for,
    in_thread,
    remote_in_thread,
    worker_loop,
)
from rollcall.store import jobs, retention, storage
from rollcall.web.connections import ConnectionGuard, http_limits, start_listener

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """What /healthz reports."""

    started_at: float = field(default_factory=time.time)
    last_poll_ok: float | None = None
    last_poll_error: str = ""
    disabled: dict[str, str] = field(default_factory=dict)
    workers: list[asyncio.Task] = field(default_factory=list)  # the job workers' tasks
    cluster: Any = None  # the cluster Dispatcher, with [cluster] broker_url

    def stopped_workers(self) -> int:
        """Job worker tasks that ended (a worker loop only ends on shutdown)."""
        return sum(1 for task in self.workers if task.done())


def disabled_parts(config: Config) -> dict[str, str]:
    """Which Zoom parts are off, and why (names the keys to set)."""
    out = {}
    missing = zoom_credentials_missing(config)
    if missing:
        keys = ", ".join(f"[zoom] {m} (ROLLCALL_ZOOM_{m.upper()})" for m in missing)
        reason = f"Zoom credentials missing: {keys}"
        out["polling"] = reason
        out["websocket"] = reason
        out["oauth downloads"] = reason
    elif not config.zoom.poll_minutes:
        out["polling"] = "[zoom] poll_minutes = 0"
    if "websocket" not in out and not config.zoom.websocket_subscription_id:
        out["websocket"] = "[zoom] websocket_subscription_id is not set"
    if not config.zoom.webhook_secret_token.get_secret_value():
        out["webhook"] = (
            "[zoom] webhook_secret_token (ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN) is "
            "not set; POST /zoom/webhook answers 503"
        )
    return out


def _queue_depth(config: Config) -> dict[str, int]:
    """The job queue's depth by state, read with a connection of this thread's own."""
    db = storage.open_db(config.home)
    try:
        return jobs.queue_depth(db)
    finally:
        db.conn.close()


def purge_retention(config: Config) -> int:
    """The scheduler's daily retention clean-up (a scheduler thread; own connection)."""
    db = storage.open_db(config.home)
    try:
        deleted = retention.purge_older_than(db, config.privacy.retention_days, config.home)
    finally:
        db.conn.close()
    if deleted:
        log.info("retention: old meetings deleted", extra={"meetings": deleted})
    return deleted


def requeue_workers(config: Config, worker_ids: list[str]) -> list[int]:
    """Put the jobs these workers still hold back in the queue (thread; own connection)."""
    db = storage.open_db(config.home)
    try:
        return [job.id for wid in worker_ids for job in jobs.requeue_owned(db, wid)]
    finally:
        db.conn.close()


def build_app(
    config: Config,
    intake: Intake,
    state: ServiceState,
    scheduler,
    guard: ConnectionGuard | None = None,
) -> web.Application:
    """The routes; ``guard`` (the listener's) learns from its middleware when a
    request is being handled."""
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[guard.middleware] if guard is not None else [],
    )
    app.add_routes(
        webhook_routes(
            config.zoom.webhook_secret_token,
            intake,
            max_body_bytes=config.server.max_body_bytes,
            body_timeout_s=config.server.body_timeout_s,
        )
    )

    async def healthz(request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok"}
        try:
            body["queue"] = await asyncio.to_thread(_queue_depth, config)
            body["database"] = "ok"
        except Exception as exc:  # report, don't crash the health check
            body["database"] = f"error: {exc}"
            body["status"] = "degraded"
        body["scheduler"] = "running" if scheduler.running else "stopped"
        if not scheduler.running:
            body["status"] = "degraded"
        stopped = state.stopped_workers()
        body["workers"] = {"running": len(state.workers) - stopped, "stopped": stopped}
        if stopped:
            body["status"] = "degraded"
        body["last_successful_poll"] = (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.last_poll_ok))
            if state.last_poll_ok
            else None
        )
        body["last_poll_error"] = state.last_poll_error or None
        body["disabled"] = state.disabled
        if state.cluster is not None:  # which worker machine has which job
            body["cluster"] = state.cluster.status()
            if not body["cluster"]["connected"]:
                body["status"] = "degraded"
        return web.json_response(body, status=200 if body["status"] == "ok" else 503)

    app.router.add_get("/healthz", healthz)
    from rollcall.web.admin_api import admin_routes

    app.add_routes(admin_routes(config))
    from rollcall.web.app import setup_web_app

    setup_web_app(app, config, lambda: dict(vars(state)))
    return app


def _schedule_notifications(scheduler, config: Config) -> None:
    """Deliver due outbox messages every ``[notify] send_interval_s`` (SMTP/HTTP in a thread)."""
    from rollcall.notify.delivery import deliver_due
    from rollcall.pipeline.plugin_manager import notifier_manager

    managers: list = []  # built on the first run (third-party notifiers: enabled at start)

    def deliver() -> None:
        notify_db = storage.open_db(config.home)
        try:
            if not managers:
                managers.append(notifier_manager(db=notify_db, config=config))
            deliver_due(notify_db, config, managers[0])
        finally:
            notify_db.conn.close()

    async def deliver_notifications() -> None:
        try:
            await asyncio.to_thread(deliver)
        except Exception as exc:  # never stops the service; the outbox keeps the messages
            log.error("notification delivery failed", extra={"error": str(exc)})

    scheduler.add_job(
        deliver_notifications,
        "interval",
        seconds=config.notify.send_interval_s,
        id="notify",
        max_instances=1,
        coalesce=True,
    )


def _schedule_participants_retry(scheduler, config: Config, fetch) -> None:
    """Ask Zoom again for participants reports that were not ready (a thread; own connection)."""
    from rollcall.bot.participants import retry_due_reports

    def retry() -> int:
        db = storage.open_db(config.home)
        try:
            return retry_due_reports(db, config, fetch)
        finally:
            db.conn.close()

    async def retry_reports() -> None:
        try:
            await asyncio.to_thread(retry)
        except Exception as exc:  # never stops the service; the rows stay due
            log.error("participants report retry failed", extra={"error": str(exc)})

    scheduler.add_job(
        retry_reports,
        "interval",
        seconds=min(config.zoom.participants_retry_s, 60.0),
        id="participants",
        max_instances=1,
        coalesce=True,
    )


async def serve(
    config: Config, host: str, port: int, *, ready: asyncio.Event | None = None
) -> None:
    await asyncio.to_thread(_queue_depth, config)  # the schema is up to date before we listen
    state = ServiceState(disabled=disabled_parts(config))
    for part, reason in state.disabled.items():
        log.warning("disabled: %s", part, extra={"part": part, "reason": reason})
    intake = Intake(config)
    client = tokens = None
    if not zoom_credentials_missing(config):
        from rollcall.bot.zoom_client import ZoomClient

        client = ZoomClient.from_config(config.zoom)
        tokens = client.tokens

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(  # a plain function: APScheduler runs it in its thread pool
        purge_retention,
        "interval",
        hours=24,
        id="retention",
        args=[config],
        max_instances=1,
        coalesce=True,
    )
    if client is not None and config.zoom.poll_minutes:
        from rollcall.bot.poller import poll_once

        def poll_with_own_connection() -> int:
            poll_db = storage.open_db(config.home)
            try:
                return poll_once(poll_db, config, client)
            finally:
                poll_db.conn.close()

        async def poll() -> None:
            try:
                await asyncio.to_thread(poll_with_own_connection)
                state.last_poll_ok, state.last_poll_error = time.time(), ""
            except Exception as exc:
                state.last_poll_error = str(exc)
                log.error("poll failed", extra={"error": str(exc)})

        from datetime import UTC, datetime

        scheduler.add_job(
            poll,
            "interval",
            minutes=config.zoom.poll_minutes,
            id="poll",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
        )
    if client is not None:
        _schedule_participants_retry(scheduler, config, client.participants_report)
    _schedule_notifications(scheduler, config)
    scheduler.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task] = []
    if client is not None and config.zoom.websocket_subscription_id:
        from rollcall.bot.event_subscription import run_event_subscription

        tasks.append(
            asyncio.create_task(
                run_event_subscription(
                    config.zoom.websocket_url,
                    config.zoom.websocket_subscription_id,
                    tokens.token,
                    intake,
                    stop=stop,
                    invalidate_token=tokens.invalidate,
                )
            )
        )

    pool = dispatcher = None
    n_workers = config.analysis.workers
    if config.cluster.enabled:  # worker machines analyse; this process coordinates
        from rollcall.cluster.coordinator import Dispatcher

        dispatcher = Dispatcher(config)
        await asyncio.to_thread(dispatcher.start)
        state.cluster = dispatcher
        analysis = await asyncio.to_thread(analysis_for, config, dispatcher)
        analyze, remote = in_thread(analysis), remote_in_thread(analysis, config)
        n_workers = config.cluster.max_in_flight
    elif n_workers > 1:  # [analysis] workers > 1: each recording in one of that many processes
        pool = AnalysisPool(config, n_workers)
        analyze, remote = pool.analyze, None
    else:
        analyze, remote = in_thread(await asyncio.to_thread(analysis_for, config)), None
    ctx = WorkerContext(
        config=config,
        analyze=analyze,
        get_token=tokens.token if tokens else None,
        fetch_participants=client.participants_report if client else None,
        refresh_recording=client.get_meeting_recordings if client else None,
        remote=remote,
    )
    worker_ids = [f"{jobs.default_worker_id()}:{i}" for i in range(n_workers)]
    workers = [asyncio.create_task(worker_loop(ctx, wid, stop)) for wid in worker_ids]
    state.workers = workers

    guard = ConnectionGuard(http_limits(config))
    runner = web.AppRunner(
        build_app(config, intake, state, scheduler, guard),
        access_log=None,
        keepalive_timeout=config.server.header_timeout_s,
    )
    await runner.setup()
    listener = await start_listener(runner, guard, host, port)
    log.info(
        "rollcall serve listening", extra={"host": host, "port": port, "workers": len(workers)}
    )
    if ready is not None:
        ready.set()
    await stop.wait()

    log.info(
        "shutting down: finishing running jobs", extra={"grace_s": config.server.shutdown_grace_s}
    )
    listener.close()
    await runner.cleanup()
    scheduler.shutdown(wait=False)
    done, pending = await asyncio.wait(workers, timeout=config.server.shutdown_grace_s)
    for task in [*pending, *tasks]:
        task.cancel()
    await asyncio.gather(*pending, *tasks, return_exceptions=True)
    if pool is not None:
        pool.shutdown()
    if dispatcher is not None:
        await asyncio.to_thread(dispatcher.close)
    requeued = await asyncio.to_thread(requeue_workers, config, worker_ids)
    if requeued:
        log.info("jobs requeued for the next start", extra={"jobs": requeued})
    log.info("stopped")
