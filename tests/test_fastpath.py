"""The fast path on hand-made galleries (no models): grid detection, tile skipping,
re-verification, tracks across re-arranged galleries, decode prefetching."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rollcall.pipeline.decode import prefetched
from rollcall.pipeline.gallery import TileGate, find_tiles
from rollcall.pipeline.tracking import FaceTracker
from rollcall.synthetic.meeting import BACKGROUND_BGR, CAMERA_OFF_BGR, gallery_layout
from rollcall.types import Face, FaceMatch

W, H = 1280, 720


def person(pid: int, w: int, h: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """A tile showing person ``pid``: a textured picture of their own (what matters is that
    two people differ and one person stays alike), plus webcam-like noise."""
    base = np.random.default_rng(pid)
    coarse = base.integers(40, 230, (6, 10, 3)).astype(np.float32)
    tile = np.kron(coarse, np.ones((h // 6 + 1, w // 10 + 1, 1), np.float32))[:h, :w]
    if rng is not None:
        tile = tile + rng.normal(0, 4, tile.shape)
    return np.clip(tile, 0, 255).astype(np.uint8)


def gallery(people: list[int | None], rng: np.random.Generator | None = None) -> np.ndarray:
    """A frame with one tile per entry (None = camera off), in order."""
    frame = np.empty((H, W, 3), np.uint8)
    frame[...] = BACKGROUND_BGR
    for pid, r in zip(people, gallery_layout(len(people), W, H), strict=True):
        if pid is None:
            frame[r.y : r.y + r.h, r.x : r.x + r.w] = CAMERA_OFF_BGR
        else:
            frame[r.y : r.y + r.h, r.x : r.x + r.w] = person(pid, r.w, r.h, rng)
    return frame


@pytest.mark.parametrize("n", [1, 2, 4, 7, 9, 16, 24, 25])
def test_grid_is_found_for_every_gallery_size(n):
    tiles = find_tiles(gallery(list(range(n)), np.random.default_rng(n))[..., 1])
    truth = gallery_layout(n, W, H)
    assert len(tiles) == n
    for t, r in zip(tiles, truth, strict=True):
        assert abs(t.x - r.x) <= 3 and abs(t.y - r.y) <= 3
        assert abs(t.w - r.w) <= 3 and abs(t.h - r.h) <= 3


@pytest.mark.parametrize("n", [7, 21, 23])
def test_short_last_row_without_one_complete_tile_is_found(n):
    """People in dark clothes before a dark wall: in the centred last row every tile's
    sides and bottom blend into the background, so none of them shows its full size."""
    frame = gallery(list(range(n)), np.random.default_rng(n))
    truth = gallery_layout(n, W, H)
    for r in truth:
        if r.y == truth[-1].y:
            frame[r.y + r.h * 3 // 4 : r.y + r.h, r.x : r.x + r.w] = BACKGROUND_BGR
            frame[r.y : r.y + r.h, r.x : r.x + r.w // 5] = BACKGROUND_BGR
            frame[r.y : r.y + r.h, r.x + r.w * 4 // 5 : r.x + r.w] = BACKGROUND_BGR
    tiles = find_tiles(frame[..., 1])
    assert len(tiles) == n
    for t, r in zip(tiles, truth, strict=True):
        assert abs(t.x - r.x) <= 3 and abs(t.y - r.y) <= 3
        assert abs(t.w - r.w) <= 3 and abs(t.h - r.h) <= 3


def test_camera_off_tiles_are_tiles_and_no_gallery_is_one_tile():
    assert len(find_tiles(gallery([1, None, 3, None])[..., 0])) == 4
    photo = np.random.default_rng(0).integers(0, 255, (H, W), dtype=np.uint8)
    assert [(t.x, t.y, t.w, t.h) for t in find_tiles(photo)] == [(0, 0, W, H)]


class FakeModels:
    """A detector that finds one face in the middle of a tile that is not flat, and a
    recognizer whose embedding is the face's mean colour (same person, same vector)."""

    def __init__(self):
        self.detected = 0  # tiles passed to the detector
        self.embedded = 0  # faces embedded
        self.frame: np.ndarray | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        self.detected += 1
        h, w = image.shape[:2]
        if image.std() < 3:
            return []
        x0, y0, w, h = self._tile_of_window(image) or (0, 0, w, h)
        box = np.array([w * 0.35, h * 0.2, w * 0.65, h * 0.8], np.float32) + [x0, y0, x0, y0]
        kps = np.array([[w * (0.42 + 0.08 * i), h * 0.5] for i in range(5)], np.float32)
        return [Face(bbox=box.astype(np.float32), score=0.9, kps=kps + np.float32([x0, y0]))]

    def _tile_of_window(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """For a window inside a gallery tile (a view of the frame smaller than the tile):
        the tile as (x, y, w, h) relative to the window, so that the face stays where it
        is in the tile; None for a whole tile or frame."""
        frame = self.frame
        if frame is None or image.base is None or image.strides != frame.strides:
            return None
        offset = image.__array_interface__["data"][0] - frame.__array_interface__["data"][0]
        if not 0 <= offset < frame.nbytes:
            return None
        y, x = divmod(offset, frame.strides[0])
        x //= frame.strides[1]
        h, w = image.shape[:2]
        for t in find_tiles(frame.mean(axis=2).astype(np.uint8)):
            inside = t.x <= x and t.y <= y and x + w <= t.x + t.w and y + h <= t.y + t.h
            if inside and (w, h) != (t.w, t.h):
                return t.x - x, t.y - y, t.w, t.h
        return None

    def embed(self, faces: list[Face]) -> np.ndarray:
        self.embedded += len(faces)
        out = []
        for f in faces:
            x1, y1, x2, y2 = (int(v) for v in f.bbox)
            v = self.frame[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0) - 128.0
            out.append(np.append(v, 1.0) / np.linalg.norm(np.append(v, 1.0)))
        return np.stack(out).astype(np.float32)


def step(gate: TileGate, models: FakeModels, t: float, frame: np.ndarray, settled: bool = True):
    models.frame = frame
    faces = gate.faces(t, frame, models.detect, models.embed)
    gate.settle([settled] * len(faces))
    return faces


def test_unchanged_tiles_are_skipped_and_keep_their_faces():
    rng = np.random.default_rng(1)
    gate, models = TileGate(recheck_s=10, embed_max_age_s=30), FakeModels()
    first = step(gate, models, 0.0, gallery([1, 2, 3, 4], rng))
    assert len(first) == 4 and models.detected == 4 and models.embedded == 4
    assert all(gate.measured)
    again = step(gate, models, 1.0, gallery([1, 2, 3, 4], rng))  # new webcam noise only
    assert models.detected == 4 and models.embedded == 4  # nothing ran
    assert not any(gate.measured)
    for a, b in zip(first, again, strict=True):  # same faces, still where they are
        assert np.array_equal(a.bbox, b.bbox) and np.array_equal(a.kps, b.kps)
        assert b.embedding is not None and np.array_equal(a.embedding, b.embedding)


def test_replaced_face_is_detected_and_embedded_again():
    rng = np.random.default_rng(2)
    gate, models = TileGate(recheck_s=10, embed_max_age_s=30), FakeModels()
    step(gate, models, 0.0, gallery([1, 2, 3, 4], rng))
    faces = step(gate, models, 1.0, gallery([1, 2, 9, 4], rng))  # someone else in tile 3
    assert models.detected == 5 and models.embedded == 5
    assert gate.measured == [False, False, True, False]
    expected = models.embed([faces[2]])[0]
    assert np.allclose(faces[2].embedding, expected)


def test_every_tile_is_verified_again_after_recheck_s():
    rng = np.random.default_rng(3)
    gate, models = TileGate(recheck_s=5, embed_max_age_s=30), FakeModels()
    for t in range(6):
        step(gate, models, float(t), gallery([1, 2], rng))
    assert models.detected == 2 + 2  # at t=0 and again at t=5
    assert models.embedded == 2  # the faces looked the same: embeddings kept
    for t in range(6, 40):
        step(gate, models, float(t), gallery([1, 2], rng))
    assert models.embedded == 2 + 2  # ... but not for longer than embed_max_age_s


def test_unsettled_faces_are_measured_every_unsettled_every_s():
    rng = np.random.default_rng(4)
    gate = TileGate(recheck_s=10, embed_max_age_s=30, unsettled_every_s=2.0)
    models = FakeModels()
    for t in range(5):
        step(gate, models, float(t), gallery([1, 2], rng), settled=False)
    assert models.detected == 6 and models.embedded == 6  # at t = 0, 2 and 4
    assert gate.measured == [True, True]


def test_unsettled_face_is_measured_again_in_a_window_around_it():
    """A tile measured again only because its face's track is not settled is detected
    in a window around that face (about half the tile), and the face found there is
    where it was; a window without a face falls back to the whole tile."""
    rng = np.random.default_rng(5)
    gate = TileGate(recheck_s=10, embed_max_age_s=30, unsettled_every_s=2.0)
    models = FakeModels()
    sizes: list[tuple[int, int]] = []
    detect = models.detect

    def recording_detect(image):
        sizes.append(image.shape[:2])
        return detect(image)

    models.detect = recording_detect
    first = step(gate, models, 0.0, gallery([1, 2], rng), settled=False)
    tile_h, tile_w = sizes[0]
    again = step(gate, models, 2.0, gallery([1, 2], rng), settled=False)
    assert gate.stats.windowed == 2 and gate.measured == [True, True]
    for h, w in sizes[2:]:
        assert h <= tile_h and w < 0.7 * tile_w
    for a, b in zip(first, again, strict=True):
        assert np.allclose(a.bbox, b.bbox, atol=1.0)

    models.detect = lambda image: [] if image.shape[1] < 0.7 * tile_w else detect(image)
    step(gate, models, 4.0, gallery([1, 2], rng), settled=False)
    assert gate.stats.windowed == 2  # no face in the windows: the whole tiles were detected
    assert gate.measured == [True, True]


def test_unsettled_faces_are_measured_less_often_as_measurements_add_up():
    rng = np.random.default_rng(4)
    gate = TileGate(recheck_s=10, embed_max_age_s=30, unsettled_every_s=2.0, unsettled_ramp=5)
    models = FakeModels()
    measured_at, count = [], 0
    for t in range(200):
        models.frame = gallery([1], rng)
        gate.faces(float(t), models.frame, models.detect, models.embed)
        if gate.measured[0]:
            measured_at.append(t)
            count += 1
        gate.settle([False], [count])  # a face the tracker never settles
    gaps = np.diff(measured_at)
    assert list(gaps[:5]) == [2, 2, 2, 2, 2]  # unsettled_every_s for the first measurements
    assert list(gaps) == sorted(gaps)  # then ever wider apart ...
    assert gaps.max() == 10  # ... up to recheck_s
    assert len(measured_at) < 200 / 2 / 2  # less than half of the measurements every 2 s makes


def test_camera_off_tile_costs_nothing_until_the_camera_comes_back():
    rng = np.random.default_rng(5)
    gate, models = TileGate(recheck_s=10, embed_max_age_s=30), FakeModels()
    assert len(step(gate, models, 0.0, gallery([1, None], rng))) == 1
    step(gate, models, 1.0, gallery([1, None], rng))
    assert models.detected == 2
    faces = step(gate, models, 2.0, gallery([1, 7], rng))
    assert len(faces) == 2 and models.detected == 3 and models.embedded == 2


def test_off_switch_detects_every_frame_whole():
    rng = np.random.default_rng(6)
    gate, models = TileGate(recheck_s=0, embed_max_age_s=0), FakeModels()
    for t in range(3):
        step(gate, models, float(t), gallery([1, 2], rng))
    assert models.detected == 3  # one whole-frame call per sample


def test_tiles_that_move_when_someone_leaves_keep_their_tracks():
    rng = np.random.default_rng(7)
    gate, models = TileGate(recheck_s=10, embed_max_age_s=30), FakeModels()
    tracker = FaceTracker(iou_threshold=0.3, link_similarity=0.3, max_gap_s=3.0)

    def sample(t, people):
        faces = step(gate, models, t, gallery(people, rng))
        embs = np.stack([f.embedding for f in faces])
        matches = [FaceMatch(-1, 0.0) for _ in faces]
        tracked = tracker.update(t, faces, embs, matches, gate.measured, gate.keys)
        return {tf.track_id for tf in tracked}

    before = sample(0.0, [1, 2, 3, 4, 5])
    detected = models.detected
    after = sample(1.0, [1, 3, 4, 5])  # person 2 left: 3, 4, 5 move up
    assert after < before and len(after) == 4  # same tracks, no new one
    assert models.detected == detected  # moved tiles were recognised, not re-detected


def test_reused_samples_count_as_seen_but_do_not_vote():
    tracker = FaceTracker(iou_threshold=0.3, link_similarity=0.3, max_gap_s=3.0)
    face = Face(np.array([0, 0, 50, 60], np.float32), 0.9, np.zeros((5, 2), np.float32))
    emb = np.array([[1.0, 0, 0]], np.float32)
    for t in range(10):
        tracker.update(float(t), [face], emb, [FaceMatch(0, 0.8)], [t % 5 == 0], [1])
    (track,) = tracker.finish()
    assert track.n == 10 and track.n_measured == 2 and track.votes[0] == 2


def test_prefetched_keeps_order_raises_in_order_and_stops_early():
    with prefetched(iter(range(100)), depth=3) as items:
        assert list(items) == list(range(100))

    def failing():
        yield 1
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"), prefetched(failing()) as items:
        got.extend(items)
    assert got == [1]

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    with prefetched(endless(), depth=2) as items:
        assert next(iter(items)) == 0
    assert closed.is_set()
