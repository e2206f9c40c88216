"""Loading insightface models onto onnxruntime with our session options."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime as ort

log = logging.getLogger(__name__)


def session_options(threads: int) -> ort.SessionOptions:
    """CPU session options: full graph optimisation, ``threads`` intra-op threads (0 = auto)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def load_insightface_model(path: Path, threads: int) -> Any:
    """An insightface model_zoo model (SCRFD, ArcFaceONNX...) for the ONNX file at ``path``."""
    from insightface.model_zoo import model_zoo

    ort.set_default_logger_severity(3)
    model = model_zoo.get_model(
        str(path), providers=["CPUExecutionProvider"], sess_options=session_options(threads)
    )
    if model is None:
        raise RuntimeError(f"{path} is not a model insightface recognises")
    log.debug("loaded model", extra={"path": str(path), "task": model.taskname})
    return model


class LazyModel:
    """Loads an insightface model on first use (thread-safe), so commands that never
    analyse anything never pay for it. ``prepare`` configures the loaded model."""

    def __init__(self, path: Path, threads: int, prepare: Callable[[Any], None]):
        self.path = path
        self.threads = threads
        self._prepare = prepare
        self._model: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                model = load_insightface_model(self.path, self.threads)
                self._prepare(model)
                self._model = model
        return self._model
