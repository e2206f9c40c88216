"""Optional evidence on disk: sampled frames and unknown-face crops.

Off by default (``[privacy] store_frames`` / ``store_face_crops``): rollcall
keeps no pixels of a recording unless an admin asks. When asked, it keeps one
sampled frame per minute and, per unknown-face cluster, one face crop, so an
instructor can see who an unknown face was before labelling it, and one crop per
track attributed to a student (``rollcall explain`` lists them). The files live
under ``<data dir>/evidence/<meeting id>/`` and go with the meeting's results.
A keeper without a folder (a cluster worker's, which has no data directory of the
coordinator) keeps the files in memory, in ``files``, for the coordinator to write.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from rollcall.types import SampledFrame, TrackedFace


class EvidenceKeeper:
    """Collects what the admin asked to keep while one recording is analysed."""

    def __init__(self, folder: Path | None, *, frames: bool, face_crops: bool):
        self.folder = folder
        self.files: dict[str, bytes] = {}  # name -> bytes, when there is no folder
        self.frames = frames
        self.face_crops = face_crops
        self._last_minute = -1
        self._crops: dict[int, tuple[float, bytes]] = {}  # track id -> (det score, JPEG)
        if (frames or face_crops) and folder is not None and folder.exists():
            shutil.rmtree(folder)  # a re-analysis replaces the evidence too

    def see(self, frame: SampledFrame, faces: list[TrackedFace]) -> None:
        if self.frames and int(frame.t // 60) != self._last_minute:
            self._last_minute = int(frame.t // 60)
            self._write(f"frame-{self._last_minute:04d}.jpg", frame.image)
        if not self.face_crops:
            return
        for tracked in faces:
            score = tracked.face.score
            if score > self._crops.get(tracked.track_id, (-1.0, b""))[0]:
                crop = _crop(frame.image, tracked.face.bbox)
                if crop is not None:
                    ok, jpeg = cv2.imencode(".jpg", crop)
                    if ok:
                        self._crops[tracked.track_id] = (score, jpeg.tobytes())

    def save_track_crops(self, track_ids) -> None:
        """One crop per attributed track (``track-<id>.jpg``): the faces that decided a
        student's presence, listed by ``rollcall explain``."""
        if not self.face_crops:
            return
        for track_id in track_ids:
            if track_id in self._crops:
                self._save(f"track-{track_id}.jpg", self._crops[track_id][1])

    def save_cluster_crops(self, clusters) -> None:
        """One crop per unknown cluster, from its best-scored track."""
        if not self.face_crops:
            return
        for cluster in clusters:
            best = max(
                (self._crops[t.track_id] for t in cluster.tracks if t.track_id in self._crops),
                default=None,
            )
            if best is not None:
                self._save(f"unknown-{cluster.cluster_no}.jpg", best[1])
        self._crops.clear()

    def _write(self, name: str, image: np.ndarray) -> None:
        if self.folder is None:
            ok, jpeg = cv2.imencode(".jpg", image)
            if ok:
                self.files[name] = jpeg.tobytes()
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(self.folder / name), image)

    def _save(self, name: str, data: bytes) -> None:
        if self.folder is None:
            self.files[name] = data
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / name).write_bytes(data)


def _crop(image: np.ndarray, bbox: np.ndarray, margin: float = 0.3) -> np.ndarray | None:
    x1, y1, x2, y2 = bbox
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = image.shape[:2]
    a, b = max(0, int(y1 - my)), min(h, int(y2 + my))
    c, d = max(0, int(x1 - mx)), min(w, int(x2 + mx))
    return image[a:b, c:d].copy() if b > a and d > c else None
