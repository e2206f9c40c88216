"""Face detector plugin: SCRFD (insightface) on onnxruntime.

The frame is detected close to its native resolution (capped by
``[analysis] max_side``): in a 25-tile gallery a face is only 40-70 pixels
high, and the usual 640x640 detector input would halve that.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rollcall import Face, SampledFrame, hookimpl
from rollcall.plugins.onnx_session import LazyModel


def detector_input_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Detector input (w, h): the frame scaled to fit ``max_side``, rounded up to 32."""
    scale = min(1.0, max_side / max(width, height))
    return (
        max(32, math.ceil(width * scale / 32) * 32),
        max(32, math.ceil(height * scale / 32) * 32),
    )


class DetectorPlugin:
    """Finds faces with five keypoints in each sampled frame."""

    name = "detector"

    def __init__(
        self,
        model_path: Path,
        *,
        threshold: float,
        min_face_px: int,
        max_side: int,
        threads: int,
        provider: str = "cpu",
    ):
        self.model_path = model_path
        self.threshold = threshold
        self.min_face_px = min_face_px
        self.max_side = max_side
        self.threads = threads
        self.provider = provider
        self._model = LazyModel(
            model_path,
            threads,
            lambda m: m.prepare(-1, det_thresh=threshold, input_size=(640, 640)),
            provider,
        )

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        size = detector_input_size(w, h, self.max_side)
        boxes, kpss = self._model.get().detect(image, input_size=size, det_thresh=self.threshold)
        faces = []
        for i in range(len(boxes)):
            x1, y1, x2, y2, score = (float(v) for v in boxes[i])
            if min(x2 - x1, y2 - y1) < self.min_face_px:
                continue
            faces.append(
                Face(
                    bbox=np.array([x1, y1, x2, y2], np.float32),
                    score=score,
                    kps=np.asarray(kpss[i], np.float32),
                )
            )
        return faces

    @hookimpl
    def rollcall_detect_faces(self, frame: SampledFrame) -> list[Face]:
        return self.detect(frame.image)
