"""The coordinator's end of the broker: tasks out, results in.

``rollcall serve`` with ``[cluster] broker_url`` keeps its job queue, its leases and
its exactly-once guarantees; only the frame analysis moves. For each claimed job
the analysis step (``rollcall.service.worker.analysis_for``) builds the meeting
and the roster as usual and then calls :func:`remote_frames` instead of analysing:
it sends a signed :class:`~rollcall.cluster.messages.Task` to the task queue and
waits for the :class:`~rollcall.cluster.messages.Result` with the same token.
While it waits, the job's heartbeat keeps running and the job is checked every
few seconds: a cancelled or re-leased job stops the wait, and its late result,
when it comes, matches no waiting task and is dropped. The results are stored
by the coordinator, in one transaction, under the same commit guard as a local
analysis.

:class:`Dispatcher` owns the broker connection: a thread consumes the result
queue (reconnecting after a broker restart), hands each result to the task
waiting for it and acknowledges it; ``assignments()`` says which worker has
which job (``/healthz``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollcall.cluster import messages
from rollcall.cluster.broker import (
    ANALYSE_ACTOR,
    RESULT_QUEUE,
    TASK_QUEUE,
    broker_address,
    make_broker,
    send,
)
from rollcall.config import Config
from rollcall.pipeline.decode import RecordingError
from rollcall.pipeline.orchestrator import FrameAnalysis, FrameJob

log = logging.getLogger(__name__)
#: How often a waiting task checks that its job is still held (seconds).
CHECK_S = 2.0
#: Back-off of the result consumer after a broker error: 0.5 s doubling up to 10 s.
RECONNECT_S = (0.5, 10.0)


class RemoteError(RuntimeError):
    """A worker could not analyse the recording; ``kind`` is a result kind of
    :mod:`~rollcall.cluster.messages` (download, token_refused, error)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class TaskTimeout(RemoteError):
    """No result within ``[cluster] task_timeout_s``."""


@dataclass
class Pending:
    """A task sent and not yet answered."""

    task: messages.Task
    future: concurrent.futures.Future[messages.Result] = field(
        default_factory=concurrent.futures.Future
    )
    sent_at: float = field(default_factory=time.time)
    worker: str = ""  # the worker that took it, once it said so
    started_at: float | None = None


class Dispatcher:
    """Sends tasks and routes their results back (one per ``rollcall serve``)."""

    def __init__(self, config: Config, broker: Any = None):
        self.config = config
        self.address = broker_address(config)
        self._secret = config.cluster.secret.get_secret_value()
        self._broker = broker if broker is not None else make_broker(config)
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = False
        self.last_error = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for queue in (TASK_QUEUE, RESULT_QUEUE):
            self._broker.declare_queue(queue)
        self._thread = threading.Thread(
            target=self._consume, name="rollcall-cluster-results", daemon=True
        )
        self._thread.start()
        log.info("cluster coordinator started", extra={"broker": self.address})

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with self._lock:
            for pending in self._pending.values():
                pending.future.cancel()
        self._broker.close()

    # ------------------------------------------------------------ tasks

    def submit(self, task: messages.Task) -> Pending:
        """Send ``task``; the returned :class:`Pending` gets its result."""
        pending = Pending(task)
        with self._lock:
            self._pending[task.token] = pending
        try:
            send(self._broker, TASK_QUEUE, ANALYSE_ACTOR, messages.seal(self._secret, "task", task))
        except Exception:
            self.forget(task.token)
            raise
        log.info(
            "task sent to the cluster",
            extra={"job_id": task.job_id, "task": task.token, "broker": self.address},
        )
        return pending

    def forget(self, token: str) -> None:
        with self._lock:
            self._pending.pop(token, None)

    def assignments(self) -> list[dict[str, Any]]:
        """The tasks out now: job, worker (None until one took it), since when."""
        with self._lock:
            pending = list(self._pending.values())
        return [
            {
                "job_id": p.task.job_id,
                "worker": p.worker or None,
                "sent_at": _iso(p.sent_at),
                "started_at": _iso(p.started_at) if p.started_at else None,
            }
            for p in sorted(pending, key=lambda p: p.task.job_id)
        ]

    def status(self) -> dict[str, Any]:
        return {
            "broker": self.address,
            "connected": self.connected,
            "error": self.last_error or None,
            "tasks": self.assignments(),
        }

    # ------------------------------------------------------------ results

    def deliver(self, result: messages.Result) -> bool:
        """Hand ``result`` to the task waiting for it; False (dropped) when none is."""
        with self._lock:
            pending = self._pending.get(result.token)
            if pending is None or pending.task.job_id != result.job_id:
                pending = None
            elif result.kind == messages.STARTED:
                pending.worker, pending.started_at = result.worker, time.time()
            elif not pending.future.done():
                pending.future.set_result(result)
        if pending is None:
            log.warning(
                "result for no waiting task dropped (job cancelled, re-leased or restarted)",
                extra={"job_id": result.job_id, "task": result.token, "worker": result.worker},
            )
            return False
        return True

    def _consume(self) -> None:
        failures = 0
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self._broker.consume(RESULT_QUEUE, prefetch=16, timeout=1000)
                while not self._stop.is_set():
                    message = next(consumer)  # a broker call: it answered
                    if not self.connected:
                        self.connected, self.last_error, failures = True, "", 0
                        log.info("cluster broker connected", extra={"broker": self.address})
                    if message is None:
                        continue
                    self._handle(message)
                    consumer.ack(message)
            except Exception as exc:  # a broker restart, a lost connection: connect again
                failures += 1
                self.connected, self.last_error = False, str(exc) or type(exc).__name__
                delay = min(RECONNECT_S[0] * 2 ** min(failures, 10), RECONNECT_S[1])
                log.warning(
                    "cluster broker unreachable; trying again",
                    extra={"broker": self.address, "error": self.last_error, "delay_s": delay},
                )
                self._stop.wait(delay)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):  # the connection may be gone
                        consumer.close()

    def _handle(self, message: Any) -> None:
        try:
            result = messages.unseal(self._secret, "result", message.args[0])
        except (messages.BadSignature, IndexError, ValueError, TypeError) as exc:
            log.error("unusable message on the result queue dropped", extra={"error": str(exc)})
            return
        if isinstance(result, messages.Result):
            self.deliver(result)


def _iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def remote_frames(
    dispatcher: Dispatcher,
    config: Config,
    job_id: int,
    source: messages.DownloadSource,
    plugins: tuple[str, ...],
    model_key: str,
    *,
    check_held: Callable[[], Any],
    on_started: Callable[[str], Any],
) -> Callable[[FrameJob], FrameAnalysis]:
    """The ``frames`` step of ``analyze_recording`` done by a worker machine.

    ``check_held()`` raises when the job was cancelled or re-leased (the wait ends
    with that error); ``on_started(worker)`` is told which worker took the task.
    Raises :class:`RecordingError` for a recording a worker found unusable,
    :class:`RemoteError` for the other failures and :class:`TaskTimeout`.
    """
    settings = {
        name: getattr(config, name).model_dump(mode="json") for name in messages.SETTINGS_SECTIONS
    }

    def frames(job: FrameJob) -> FrameAnalysis:
        task = messages.Task(
            token=uuid.uuid4().hex,
            job_id=job_id,
            meeting_id=job.meeting_id,
            course_id=job.course_id,
            title=job.title,
            start_time=job.start_time,
            roster=job.roster,
            download=source,
            settings=settings,
            plugins=plugins,
            model_key=model_key,
            people=job.people,
            participants=job.participants,
        )
        pending = dispatcher.submit(task)
        try:
            result = _wait(pending, config.cluster.task_timeout_s, check_held, on_started)
        finally:
            dispatcher.forget(task.token)
        extra = {"job_id": job_id, "worker": result.worker, "seconds": round(result.seconds, 1)}
        if result.kind == messages.OK and result.analysis is not None:
            log.info("analysed by a cluster worker", extra=extra)
            return result.analysis
        log.warning(
            "cluster worker failed", extra=dict(extra, kind=result.kind, error=result.error)
        )
        if result.kind == messages.RECORDING:
            raise RecordingError(job.path, result.error)
        raise RemoteError(result.kind, f"worker {result.worker}: {result.error}")

    return frames


def _wait(
    pending: Pending,
    timeout_s: float,
    check_held: Callable[[], Any],
    on_started: Callable[[str], Any],
) -> messages.Result:
    deadline = time.monotonic() + timeout_s
    told = ""
    while True:
        try:
            result = pending.future.result(timeout=CHECK_S)
        except concurrent.futures.TimeoutError:
            pass
        else:
            if result.worker and result.worker != told:
                on_started(result.worker)  # a task done within one check: its worker too
            return result
        check_held()  # cancelled or re-leased: raises, and the late result is dropped
        if pending.worker and pending.worker != told:
            told = pending.worker
            on_started(told)
        if time.monotonic() > deadline:
            raise TaskTimeout(
                messages.ERROR,
                f"no result from the cluster within {timeout_s:.0f} s "
                f"(worker: {pending.worker or 'none took the task'})",
            )
