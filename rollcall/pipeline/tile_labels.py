"""Zoom's name labels on gallery tiles: kept in memory during the analysis, read only on demand.

Zoom writes each participant's display name in the bottom-left corner of their
tile. While frames go by, :class:`TileLabels` keeps, per face track, a small
copy of that corner of the track's tile (at most one per minute and
``MAX_STRIPS`` per track, never stored on disk); after the tracks are decided,
:class:`LabelReader` reads only the strips of the tracks whose decision is in
doubt (``rollcall.pipeline.counter_evidence``), with RapidOCR on onnxruntime
(its detection and recognition models ship in its wheel), and measures what
that cost.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from rollcall.pipeline.gallery import Tile, find_tiles
from rollcall.types import SampledFrame, TrackedFace

log = logging.getLogger(__name__)

#: The label sits in this bottom share of the tile's height and left share of its width.
STRIP_HEIGHT = 0.24
STRIP_WIDTH = 0.85
#: Strips are kept at this height in pixels (small ones enlarged: the OCR reads text of
#: 20-40 px best); larger ones are shrunk to at most ``MAX_STRIP_PX``.
STRIP_PX = 96
MAX_STRIP_PX = 200
#: At most this many strips per track, at least 60 s apart.
MAX_STRIPS = 3
#: A line read with less confidence than this is no reading.
MIN_CONFIDENCE = 0.75


@dataclass(frozen=True, slots=True)
class LabelReading:
    """What the OCR read on one strip: the text and its confidence (0..1)."""

    text: str
    confidence: float


@dataclass(slots=True)
class LabelStats:
    """What reading labels cost in one analysis."""

    tracks: int = 0  # tracks whose label was read
    tiles: int = 0  # strips read (one OCR call each)
    seconds: float = 0.0  # wall time of those calls

    @property
    def ms_per_tile(self) -> float:
        return 1000.0 * self.seconds / self.tiles if self.tiles else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "label_tracks": self.tracks,
            "label_tiles": self.tiles,
            "label_ms_per_tile": round(self.ms_per_tile, 1),
        }


@dataclass(slots=True)
class TileLabels:
    """Label strips of each track's tile, collected while the frames go by."""

    enabled: bool = True
    strips: dict[int, list[tuple[float, np.ndarray]]] = field(default_factory=dict)

    def see(
        self, frame: SampledFrame, tracked: list[TrackedFace], grid: list[Tile] | None = None
    ) -> None:
        """Keep the label strip of each tracked face's tile when its track needs one.
        ``grid`` is the frame's tiles when already found (the tile gate's)."""
        if not self.enabled or not tracked:
            return
        for tf in tracked:
            kept = self.strips.setdefault(tf.track_id, [])
            if len(kept) >= MAX_STRIPS or (kept and frame.t - kept[-1][0] < 60.0):
                continue
            if grid is None:  # a few ms of numpy, only on frames that need a strip
                grid = find_tiles(cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY))
            tile = _tile_of(grid, tf.face.bbox)
            if tile is not None:
                kept.append((frame.t, label_strip(tile.crop(frame.image))))


def _tile_of(grid: list[Tile], bbox: np.ndarray) -> Tile | None:
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    for tile in grid:
        if tile.x <= cx < tile.x + tile.w and tile.y <= cy < tile.y + tile.h:
            return tile
    return None


def label_strip(tile: np.ndarray) -> np.ndarray:
    """The bottom-left corner of a tile where Zoom writes the name, at OCR size."""
    h, w = tile.shape[:2]
    strip = tile[int(h * (1 - STRIP_HEIGHT)) :, : max(1, int(w * STRIP_WIDTH))]
    sh = strip.shape[0]
    target = STRIP_PX if sh < STRIP_PX else min(sh, MAX_STRIP_PX)
    if target == sh:
        return np.ascontiguousarray(strip)
    scale = target / sh
    size = (max(1, round(strip.shape[1] * scale)), target)
    inter = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.resize(strip, size, interpolation=inter)


@functools.lru_cache(maxsize=1)
def ocr_engine():
    """The RapidOCR engine (loaded once per process; its models ship in its wheel).

    One thread per inference: analysis already keeps the cores busy, and the
    strips are small.
    """
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(
        det_limit_side_len=STRIP_PX,
        det_limit_type="min",
        intra_op_num_threads=1,
        inter_op_num_threads=1,
        use_cls=False,
    )


class LabelReader:
    """Reads label strips with the OCR engine and keeps the cost in :attr:`stats`."""

    def __init__(self, engine=None) -> None:
        self._engine = engine
        self.stats = LabelStats()

    def read(self, strip: np.ndarray) -> LabelReading | None:
        """The text on one strip (lines joined left to right), or None when nothing
        was read with at least ``MIN_CONFIDENCE``."""
        engine = self._engine or ocr_engine()
        started = time.perf_counter()
        found, _ = engine(strip, use_cls=False)
        self.stats.seconds += time.perf_counter() - started
        self.stats.tiles += 1
        lines = [
            (float(np.min(np.asarray(box)[:, 0])), str(text).strip(), float(score))
            for box, text, score in (found or [])
            if str(text).strip() and float(score) >= MIN_CONFIDENCE
        ]
        if not lines:
            return None
        lines.sort()
        text = " ".join(t for _, t, _ in lines)
        return LabelReading(text=text, confidence=min(s for _, _, s in lines))
