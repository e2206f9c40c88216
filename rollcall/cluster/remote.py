"""``rollcall worker``: analyses recordings for a coordinator, on any machine.

A worker needs the broker's URL and the cluster's secret, its own model pack
(checked at start exactly as ``rollcall serve`` checks it) and a scratch folder
(its own data directory); it needs no access to the coordinator's database or
disk. For each task it: tells the coordinator it took it, downloads the
recording with the token the task carries, runs the frame pipeline
(:func:`rollcall.pipeline.orchestrator.analyse_frames`) with the roster and the
settings of the task, sends the meeting's rows back, deletes the video, and only
then lets Dramatiq acknowledge the task. A failure is sent back as a result (the
coordinator's job queue decides about retries); a worker that dies mid-task
leaves the task unacknowledged, and the broker gives it to another worker.

``--concurrency N`` runs N processes (spawned, each with its own models and a
share of the cores), each analysing one recording at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rollcall.cluster import messages
from rollcall.cluster.broker import (
    ANALYSE_ACTOR,
    RESULT_ACTOR,
    RESULT_QUEUE,
    TASK_QUEUE,
    broker_address,
    make_broker,
    send,
)
from rollcall.config import Config

log = logging.getLogger(__name__)
#: How long a worker keeps trying to send a result through a broker outage.
REPLY_PATIENCE_S = 600.0
#: How long a stopping worker lets its running task finish (then the broker gives the
#: unacknowledged task to another worker).
STOP_GRACE_S = 30.0


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def config_for_processes(config: Config, processes: int) -> Config:
    """``config`` with onnxruntime threads shared out between ``processes``."""
    if config.models.threads or processes <= 1:
        return config
    threads = max(1, (os.cpu_count() or 1) // processes)
    return config.model_copy(
        update={"models": config.models.model_copy(update={"threads": threads})}
    )


class TaskRunner:
    """Runs the tasks of one worker process (one at a time)."""

    def __init__(self, config: Config, name: str, broker: Any):
        from rollcall.pipeline.plugin_manager import build_catalog, resolve_face_models

        self.config, self.name, self.broker = config, name, broker
        self._secret = config.cluster.secret.get_secret_value()
        self.models = resolve_face_models(config, progress=False)
        self.catalog = build_catalog(config, self.models)
        self._catalog_settings: str | None = None  # the task settings self.catalog was built with

    def handle(self, text: str) -> None:
        """The Dramatiq actor: one sealed task in, one sealed result out."""
        from rollcall.bot.download import DownloadError
        from rollcall.pipeline.decode import RecordingError

        try:
            task = messages.unseal(self._secret, "task", text)
        except (messages.BadSignature, ValueError, TypeError) as exc:
            log.error(
                "task dropped: not signed with this cluster's secret", extra={"error": str(exc)}
            )
            return
        extra = {"job_id": task.job_id, "task": task.token, "worker": self.name}
        started = time.monotonic()
        self._reply(messages.Result(task.token, task.job_id, self.name, messages.STARTED), 30.0)
        log.info("task taken", extra=extra)
        analysis, kind, error = None, messages.OK, ""
        try:
            analysis = self._analyse(task)
        except DownloadError as exc:
            kind = messages.TOKEN_REFUSED if exc.token_refused else messages.DOWNLOAD
            error = str(exc)
        except RecordingError as exc:
            kind, error = messages.RECORDING, exc.problem
        except Exception as exc:  # sent back: the coordinator's queue retries the job
            log.exception("task failed", extra=extra)
            kind, error = messages.ERROR, str(exc) or type(exc).__name__
        seconds = time.monotonic() - started
        result = messages.Result(task.token, task.job_id, self.name, kind, analysis, error, seconds)
        self._reply(result, REPLY_PATIENCE_S)
        log.info("task done", extra=dict(extra, kind=kind, error=error, seconds=round(seconds, 1)))

    def _analyse(self, task: messages.Task) -> Any:
        from rollcall.bot.download import download_recording
        from rollcall.pipeline.orchestrator import FrameJob, analyse_frames

        if task.model_key != self.models.model_key:
            raise RuntimeError(
                f"this worker's face models are {self.models.model_key}, the coordinator's "
                f"{task.model_key}: give both the same [models] pack"
            )
        config = self.config_for(task)
        scratch = self.config.home / "cluster"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="task-", dir=scratch) as folder:
            video = Path(folder) / "recording.mp4"
            source = task.download
            asyncio.run(
                download_recording(
                    source.url,
                    video,
                    token=source.token,
                    expected_size=source.size,
                    allowed_hosts=list(source.allowed_hosts),
                    max_attempts=3,
                )
            )
            pm = self.manager_for(task, config)
            job = FrameJob(
                path=video,
                roster=task.roster,
                meeting_id=task.meeting_id,
                course_id=task.course_id,
                title=task.title,
                start_time=task.start_time,
                people=task.people,
                participants=task.participants,
            )
            analysis = analyse_frames(pm, self.models, config, job, evidence_in_memory=True)
        parts = urlsplit(source.url)  # kept with the meeting: no query (it may hold a token)
        analysis.source = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return analysis

    def config_for(self, task: messages.Task) -> Config:
        """This worker's configuration with the coordinator's settings of ``task``."""
        return self.config.model_copy(
            update={
                name: type(getattr(self.config, name)).model_validate(values)
                for name, values in task.settings.items()
                if name in messages.SETTINGS_SECTIONS
            }
        )

    def manager_for(self, task: messages.Task, config: Config) -> Any:
        """The plugins of ``task``, built with its settings: the core plugins take the
        decision rule, thresholds and attendance rules from them (``config``), so a
        worker decides exactly as the coordinator would. The catalog is rebuilt only
        when the settings change (the models load again then)."""
        from rollcall.pipeline.plugin_manager import build_catalog

        key = json.dumps(task.settings, sort_keys=True, default=str)
        if key != self._catalog_settings:
            if self._catalog_settings is not None:
                log.info("task settings changed; plugins built again", extra={"worker": self.name})
            self.catalog = build_catalog(config, self.models)
            self._catalog_settings = key
        return self.catalog.manager_for(set(task.plugins))

    def _reply(self, result: messages.Result, patience_s: float) -> None:
        """Send ``result``, trying again through a broker outage for ``patience_s``."""
        text = messages.seal(self._secret, "result", result)
        deadline, delay = time.monotonic() + patience_s, 0.5
        while True:
            try:
                send(self.broker, RESULT_QUEUE, RESULT_ACTOR, text)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error(
                        "result not sent: broker unreachable",
                        extra={"job_id": result.job_id, "error": str(exc)},
                    )
                    raise  # the task is retried by Dramatiq, else the coordinator times out
                log.warning(
                    "broker unreachable; sending the result again", extra={"error": str(exc)}
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


def serve_tasks(
    config: Config, name: str, stop: threading.Event, parent_pid: int | None = None
) -> int:
    """Take tasks one at a time until ``stop`` is set (or the parent process is gone)."""
    import dramatiq

    broker = make_broker(config)
    runner = TaskRunner(config, name, broker)  # the model pack is checked here
    dramatiq.actor(
        runner.handle,
        actor_name=ANALYSE_ACTOR,
        queue_name=TASK_QUEUE,
        broker=broker,
        max_retries=3,
        min_backoff=1000,
        time_limit=int(config.cluster.task_timeout_s * 1000),
    )
    # the result queue is not declared here: a Dramatiq worker consumes every declared queue
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=1000)
    worker.queue_prefetch = 1  # a task waits in the broker, for any free worker, not here
    worker.start()
    log.info(
        "rollcall worker ready",
        extra={"worker": name, "broker": broker_address(config), "models": runner.models.model_key},
    )
    while not stop.wait(1.0):
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("parent process gone; stopping", extra={"worker": name})
            break
    log.info("rollcall worker stopping", extra={"worker": name})
    worker.stop(timeout=int(STOP_GRACE_S * 1000))
    broker.close()
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _process_main(config: Config, name: str, parent_pid: int) -> None:
    from rollcall.logs import setup_logging

    setup_logging(config.logging.level, config.logging.format)
    stop = threading.Event()
    _stop_on_signals(stop)
    raise SystemExit(serve_tasks(config, name, stop, parent_pid))


def run_worker(config: Config, concurrency: int = 1, name: str | None = None) -> int:
    """``rollcall worker``: ``concurrency`` processes taking tasks until SIGTERM."""
    from rollcall.pipeline.plugin_manager import resolve_face_models

    name = name or default_name()
    stop = threading.Event()
    _stop_on_signals(stop)
    if concurrency <= 1:
        return serve_tasks(config, name, stop)
    resolve_face_models(config, progress=False)  # fail here, before any process starts
    context = multiprocessing.get_context("spawn")
    shared = config_for_processes(config, concurrency)
    processes = [
        context.Process(
            target=_process_main, args=(shared, f"{name}/{i}", os.getpid()), name=f"worker-{i}"
        )
        for i in range(concurrency)
    ]
    for process in processes:
        process.start()
    log.info("rollcall worker processes started", extra={"worker": name, "processes": concurrency})
    while not stop.wait(1.0) and any(p.is_alive() for p in processes):
        pass
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: each lets its running task finish
    for process in processes:
        process.join(STOP_GRACE_S + 10)
    return max((p.exitcode or 0) for p in processes)
