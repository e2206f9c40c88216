"""Loading insightface models onto onnxruntime with our session options."""

from __future__ import annotations

import logging
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
