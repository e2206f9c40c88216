"""The detector plugin on real SCRFD weights: tiles of every gallery size."""

from __future__ import annotations

import cv2
import numpy as np

from rollcall.synthetic.demo import bundled_group_photo
from rollcall.synthetic.meeting import gallery_layout


def _webcam_tile(person: np.ndarray, w: int, h: int) -> np.ndarray:
    """``person`` filling 80 % of the height of a ``w`` x ``h`` grey tile, centred."""
    tile = np.full((h, w, 3), 90, np.uint8)
    ph = int(h * 0.8)
    pw = min(w, ph * person.shape[1] // person.shape[0])
    scaled = cv2.resize(person, (pw, ph), interpolation=cv2.INTER_AREA)
    y, x = (h - ph) // 2, (w - pw) // 2
    tile[y : y + ph, x : x + pw] = scaled
    return tile


def test_tiles_of_every_gallery_size_share_one_session(detector):
    """A meeting goes through many layouts, each with its own tile size. Each size
    is detected, and all of them run on one onnxruntime session: insightface's
    default (a fixed-shape session per input size, 12-120 MB each) would make
    memory grow with the number of layouts a recording goes through."""
    photo = cv2.imread(str(bundled_group_photo()))
    h, w = photo.shape[:2]
    person = photo[: h * 3 // 4, : w // 3]  # the leftmost of the six, with some margin
    sizes = set()
    for n in (1, 2, 4, 6, 9, 12, 16, 20, 25):
        tile = gallery_layout(n, 1280, 720)[0]
        image = _webcam_tile(person, tile.w, tile.h)
        faces = detector.detect(image)
        assert len(faces) >= 1, f"no face in the {tile.w}x{tile.h} tile of a {n}-tile gallery"
        sizes.add((tile.w, tile.h))
    assert len(sizes) >= 6
    sessions = detector._model.get().resolution_sessions
    assert len({id(s) for s in sessions.values()}) == 1, sorted(sessions)
