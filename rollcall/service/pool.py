"""Analysing several recordings at once in worker processes (``[analysis] workers``).

Decoding and inference are CPU work that holds the GIL for part of the time,
so threads in one process do not scale past one recording; with
``workers > 1`` each recording goes to one of ``workers`` processes instead.
Every process loads the face models once (in the pool's initializer) and
then analyses one job at a time with its own SQLite connection; the asyncio
workers in ``rollcall.service.worker`` await the result without blocking the event loop.

Processes are started with ``spawn`` (never ``fork``: the service process
runs an event loop, a scheduler and onnxruntime threads, none of which
survive a fork safely). When ``[models] threads`` is 0 the cores are shared
out: each process gets ``cpu_count // workers`` onnxruntime threads.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from rollcall.config import Config
from rollcall.store import jobs

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 300.0

# The analysis function of *this* worker process, set once by the pool's
# initializer (the documented way to give ProcessPoolExecutor workers state).
_process_analysis: Callable[..., int] | None = None


def config_for_workers(config: Config, workers: int, cpus: int | None = None) -> Config:
    """``config`` with onnxruntime threads shared out between ``workers`` processes."""
    if config.models.threads or workers <= 1:
        return config
    threads = max(1, (cpus or os.cpu_count() or 1) // workers)
    return config.model_copy(
        update={"models": config.models.model_copy(update={"threads": threads})}
    )


def _init_process(config: Config, started: Any) -> None:  # a multiprocessing Barrier
    global _process_analysis
    from rollcall.logs import setup_logging
    from rollcall.service.worker import analysis_for

    setup_logging(config.logging.level, config.logging.format)
    _process_analysis = analysis_for(config)
    log.info("analysis process ready", extra={"pid": os.getpid()})
    try:  # every process is up before the first job runs (see AnalysisPool)
        started.wait(timeout=STARTUP_TIMEOUT_S)
    except threading.BrokenBarrierError:
        log.warning("not every analysis process started in time", extra={"pid": os.getpid()})


def _ready() -> int:
    return os.getpid()


def _analyze_in_process(
    video: Path, job: jobs.Job, options: dict[str, Any] | None = None
) -> tuple[int, int]:
    """Runs in a worker process: (our meeting id, the process id that analysed it).
    ``options`` are the analysis' keyword arguments (``participants``, ``notify``)."""
    if _process_analysis is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("analysis process was not initialised")
    return _process_analysis(video, job, **(options or {})), os.getpid()


class AnalysisPool:
    """``workers`` processes that each analyse one recording at a time."""

    def __init__(self, config: Config, workers: int):
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_process,
            initargs=(config_for_workers(config, workers), context.Barrier(workers)),
        )
        # Start all processes now (the executor would start them one per submitted job)
        # and let them wait for each other: from then on, N queued recordings are
        # analysed by N processes at once, and no job waits for a process to start.
        self._started = [self._executor.submit(_ready) for _ in range(workers)]

    async def run(self, video: Path, job: jobs.Job, **options: Any) -> tuple[int, int]:
        """Analyse in a worker process: (our meeting id, the id of the process that did it)."""
        loop = asyncio.get_running_loop()
        meeting_id, pid = await loop.run_in_executor(
            self._executor, _analyze_in_process, video, job, options
        )
        log.info(
            "recording analysed in a worker process",
            extra={"job_id": job.id, "meeting_id": meeting_id, "pid": pid},
        )
        return meeting_id, pid

    async def analyze(self, video: Path, job: jobs.Job, **options: Any) -> int:
        return (await self.run(video, job, **options))[0]

    def shutdown(self) -> None:
        """Stop the processes, including one still analysing after the shutdown grace
        period: its job was requeued, and results are only stored by a complete run."""
        processes = list(getattr(self._executor, "_processes", {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
