"""Shared helpers of the face analyzers: finding their models and cutting face crops.

The analyzers' models live in ``<models dir>/extra/`` (``[models] dir`` or
``$ROLLCALL_MODELS_DIR``); a missing file raises ``models.ModelError`` naming
the file, where it was looked for and how to obtain it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import cv2
import numpy as np
import onnxruntime as ort

from rollcall.models import ModelError
from rollcall.plugins.onnx_session import session_options

log = logging.getLogger(__name__)
EXTRA_DIR = "extra"


def extra_model_path(models_dir: str, filename: str) -> Path:
    """Where the analyzer model ``filename`` is: ``<models dir>/extra/<filename>``.

    Raises ``ModelError`` with the expected path when the file is missing.
    """
    raw = models_dir or os.environ.get("ROLLCALL_MODELS_DIR", "")
    if not raw:
        raise ModelError(
            f"analyzer model {filename} not found: no models dir is configured. Set [models] dir "
            f"(or ROLLCALL_MODELS_DIR) to a folder holding {EXTRA_DIR}/{filename}."
        )
    path = Path(raw).expanduser() / EXTRA_DIR / filename
    if not path.is_file():
        raise ModelError(
            f"analyzer model {filename} not found at {path}. Copy it there "
            f"(see the models README: {EXTRA_DIR}/ holds the analyzers' ONNX files)."
        )
    return path


def load_session(path: Path, threads: int, *, dynamic_batch: bool = False) -> ort.InferenceSession:
    """An onnxruntime CPU session for ``path`` with rollcall's session options.

    ``dynamic_batch`` re-declares the first dimension of every graph input and
    output as symbolic, for models exported with a fixed batch of 1 (FSA-Net),
    so all faces of a frame go through one call instead of one call each.
    """
    ort.set_default_logger_severity(3)
    model: str | bytes = str(path)
    if dynamic_batch:
        import onnx

        graph = onnx.load(str(path))
        for value in [*graph.graph.input, *graph.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        model = graph.SerializeToString()
    session = ort.InferenceSession(
        model, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    log.debug("loaded analyzer model", extra={"path": str(path)})
    return session


def square_crop(
    image: np.ndarray, bbox: np.ndarray, size: int, *, margin: float = 0.0
) -> np.ndarray:
    """A ``size`` x ``size`` crop of the square around ``bbox`` (x1, y1, x2, y2).

    The square's side is the box's longer side times ``1 + margin``; parts
    outside the image are filled by replicating the border.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox[:4])
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    half = side / 2.0
    left, top = int(round(cx - half)), int(round(cy - half))
    right, bottom = int(round(cx + half)), int(round(cy + half))
    h, w = image.shape[:2]
    pad = max(0, -left, -top, right - w, bottom - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top, right, bottom = left + pad, top + pad, right + pad, bottom + pad
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        crop = np.zeros((size, size) + image.shape[2:], image.dtype)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def face_px(bbox: np.ndarray) -> float:
    """The shorter side of a face box, in pixels."""
    return float(min(bbox[2] - bbox[0], bbox[3] - bbox[1]))


T = TypeVar("T")


class PerMeeting(Generic[T]):
    """Thread-safe state per meeting id, for analyzers that run several jobs at once."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._states: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self, meeting_id: int) -> T:
        with self._lock:
            return self._states.setdefault(meeting_id, self._factory())

    def pop(self, meeting_id: int) -> T:
        """Remove and return the meeting's state (a fresh one when it never ran)."""
        with self._lock:
            return self._states.pop(meeting_id, None) or self._factory()
