"""Loading insightface models onto onnxruntime with our session options."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime as ort

log = logging.getLogger(__name__)


def auto_threads() -> int:
    """Intra-op threads when ``[models] threads`` is 0: half the cores, at least one.

    The analysis decodes the recording in a thread of its own while the models
    run, and the models see small inputs (gallery tiles, 112x112 crops) on which
    more threads mostly spin: on 2 cores a 10-minute 25-tile recording took
    30.5 s with one thread per session and 51.6 s with two (2026-12-01).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def session_options(threads: int) -> ort.SessionOptions:
    """CPU session options: full graph optimisation, ``threads`` intra-op threads
    (0 = :func:`auto_threads`), one inter-op thread."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or auto_threads()
    options.inter_op_num_threads = 1
    return options


#: ``[models] provider`` -> onnxruntime execution providers, in order of preference.
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def execution_providers(provider: str, available: list[str] | None = None) -> list[str]:
    """The onnxruntime providers for ``[models] provider``, those this onnxruntime lacks
    left out: ``cuda`` on a machine (or an onnxruntime build) without CUDA falls back
    to the CPU, with a warning saying so."""
    wanted = PROVIDERS[provider]
    available = ort.get_available_providers() if available is None else available
    usable = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    if wanted[0] not in usable:
        log.warning(
            "execution provider not available, using the CPU",
            extra={
                "provider": provider,
                "wanted": wanted[0],
                "available": ", ".join(available),
                "hint": "install onnxruntime-gpu with CUDA and cuDNN for the GPU",
            },
        )
    return usable


def load_insightface_model(path: Path, threads: int, provider: str = "cpu") -> Any:
    """An insightface model_zoo model (SCRFD, ArcFaceONNX...) for the ONNX file at ``path``,
    on ``provider`` (``[models] provider``: "cpu" or "cuda", which falls back to the CPU)."""
    from insightface.model_zoo import model_zoo

    ort.set_default_logger_severity(3)
    model = model_zoo.get_model(
        str(path),
        providers=execution_providers(provider),
        sess_options=session_options(threads),
        # SCRFD: one session for every input size. insightface's default builds a
        # fixed-shape session per size it sees, and gallery tiles come in a new
        # size at every layout change: on a 60-minute 25-tile recording that held
        # ~100 MB more than on a 10-minute one, for no speed gain on tiles.
        static_shape_sessions=False,
    )
    if model is None:
        raise RuntimeError(f"{path} is not a model insightface recognises")
    log.debug(
        "loaded model",
        extra={
            "path": str(path),
            "task": model.taskname,
            "providers": ", ".join(model.session.get_providers()),
        },
    )
    return model


class LazyModel:
    """Loads an insightface model on first use (thread-safe), so commands that never
    analyse anything never pay for it. ``prepare`` configures the loaded model."""

    def __init__(
        self, path: Path, threads: int, prepare: Callable[[Any], None], provider: str = "cpu"
    ):
        self.path = path
        self.threads = threads
        self.provider = provider
        self._prepare = prepare
        self._model: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                model = load_insightface_model(self.path, self.threads, self.provider)
                self._prepare(model)
                self._model = model
        return self._model
