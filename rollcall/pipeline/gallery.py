"""The fast path: work per gallery tile, and only where the picture changed.

A Zoom gallery recording is a grid of 16:9 tiles on a flat dark background.
:func:`find_tiles` finds that grid in each sampled frame (a few milliseconds
of numpy on the grey frame). The grid changes when people join or leave; a
tile of the new grid that shows what a tile of the old one showed (the person
moved up a slot) keeps that tile's state and faces, moved and scaled, and the
faces keep their keys so that ``FaceTracker`` continues their tracks; other
tiles start afresh. :class:`TileGate` then decides, tile by tile, what a
sample costs:

- a tile whose downscaled grey picture is close to what it showed when it was
  last analysed (mean absolute difference below ``change_threshold`` grey
  levels: webcam noise and compression are averaged away, a different person
  is far above) keeps the faces found then: no detection, no embedding;
- a tile showing a face whose track is not settled yet (``FaceTracker.settled``:
  too few measurements to know who it is) is analysed every
  ``unsettled_every_s`` seconds for the track's first ``unsettled_ramp``
  measurements (spaced samples are more independent evidence than consecutive
  ones), then ever less often, the spacing growing with the number of
  measurements up to ``recheck_s``: who a track is gets decided from the mean
  of its measurements when the recording ends, and the n-th measurement moves
  that mean by 1/n only. The face is reused in between;
- every tile is analysed again at least every ``recheck_s`` seconds whatever
  the difference says, so a change the measure missed is noticed;
- an analysed tile runs the detector on the tile alone; a face found where a
  face was before, looking the same (small difference of the downscaled face
  patch) and embedded less than ``embed_max_age_s`` ago keeps its embedding;
  the others are embedded together, in one batch per sample.

Frames without a recognisable gallery (speaker view, screen share, anything
else) are one tile covering the whole frame, which is safe, just not fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from rollcall.pipeline.tracking import iou_matrix
from rollcall.types import Face

#: A pixel belongs to a tile when its grey level differs from the background by more than this.
_BG_TOLERANCE = 5
#: A row or column is a gap when at most this share of its pixels is farther than
#: _GAP_TOLERANCE grey levels from the background (x264 smears a gap's few pixels).
_GAP_SHARE = 0.1
_GAP_TOLERANCE = 12
#: Tiles smaller than this share of the frame's shorter side are noise, not tiles.
_MIN_TILE_FRACTION = 0.06
#: Tile aspect ratios (w / h) accepted as gallery tiles.
_ASPECT = (1.2, 2.4)
#: A run of pixels is a whole tile (or lies inside one) within this many pixels.
_SIZE_SLACK_PX = 3
#: Two grids are the same when every corner moved by at most this many pixels.
_GRID_SLACK_PX = 4
#: Size of the grey thumbnail a tile is compared by (w, h), and of a face patch.
_TILE_THUMB = (32, 18)
_FACE_THUMB = (16, 16)
#: A face measured again is detected in a window this share of its size wider on each side.
_WINDOW_MARGIN = 0.5


@dataclass(frozen=True, slots=True)
class Tile:
    x: int
    y: int
    w: int
    h: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.h, self.x : self.x + self.w]


def find_tiles(grey: np.ndarray) -> list[Tile]:
    """The gallery tiles of a grey frame, row by row; ``[whole frame]`` if there is no gallery.

    The background is the median of the frame's border. Rows that are close
    to the background (almost) all along separate bands of tiles, and inside
    each band columns that are close to the background over the band's whole
    height separate tiles. The result is accepted only when it looks like a
    gallery: tiles 16:9-ish, all tiles of a band equally wide.
    """
    h, w = grey.shape[:2]
    whole = [Tile(0, 0, w, h)]
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    bg = float(np.median(border))
    if np.mean(np.abs(border.astype(np.int16) - bg) <= _BG_TOLERANCE) < 0.6:
        return whole  # no flat background around the picture: not a gallery
    far = (cv2.absdiff(grey, np.full_like(grey, int(round(bg)))) > _GAP_TOLERANCE).view(np.uint8)
    min_px = max(2, int(_MIN_TILE_FRACTION * min(h, w)))
    rows = _runs(_share(far, axis=1) > _GAP_SHARE, min_px)
    if not rows:
        return whole
    tile_h = _typical([y1 - y0 for y0, y1 in rows])
    bands = [
        (y0, y1, _runs(_share(far[y0:y1], axis=0) > _GAP_SHARE, min_px))
        for y0, y1 in _merge_runs(rows, tile_h)
    ]
    bands = [(y0, y1, runs) for y0, y1, runs in bands if runs]
    if not bands:
        return whole
    # All tiles have one size. A dark stretch inside a tile can split it or eat its
    # edge: merge pieces that fit in one tile, then put every piece on the lattice
    # of the complete tiles (of its band, for columns: a last row is centred).
    tile_w = _typical([x1 - x0 for _, _, runs in bands for x0, x1 in runs])
    if not _ASPECT[0] <= tile_w / tile_h <= _ASPECT[1]:
        return whole
    gap = max(2, round(0.006 * h))
    merged = [(y0, y1, _merge_runs(runs, tile_w)) for y0, y1, runs in bands]
    ys = _on_lattice([(y0, y1) for y0, y1, _ in merged], tile_h, gap)
    xs_per_band = [_on_lattice(runs, tile_w, gap) for _, _, runs in merged]
    if any(xs is None for xs in xs_per_band):
        # A band without one complete tile (a short last row whose people wear
        # dark clothes on a dark wall): Zoom centres a row, so its tiles sit
        # where a centred row of that many tiles at the other bands' pitch does.
        pitch = _pitch([xs for xs in xs_per_band if xs is not None], tile_w + gap)
        xs_per_band = [
            xs if xs is not None else _centred(runs, tile_w, pitch, w)
            for xs, (_, _, runs) in zip(xs_per_band, merged, strict=True)
        ]
    if ys is None or len(set(ys)) != len(ys) or any(xs is None for xs in xs_per_band):
        return whole
    tiles: list[Tile] = []
    for y, xs in zip(ys, xs_per_band, strict=True):
        for x in sorted(set(xs)):
            if x < 0 or y < 0 or x + tile_w > w or y + tile_h > h:
                return whole
            tiles.append(Tile(x, y, tile_w, tile_h))
    return tiles or whole


def _share(mask: np.ndarray, axis: int) -> np.ndarray:
    """Share of set pixels of a 0/1 uint8 mask along ``axis`` (``mask.mean(axis)``, 20x faster)."""
    return cv2.reduce(mask, axis, cv2.REDUCE_AVG, dtype=cv2.CV_32F).reshape(-1)


def _typical(sizes: list[int]) -> int:
    """The size of a complete tile: the median of the sizes close to the largest."""
    top = max(sizes)
    return int(np.median([v for v in sizes if v >= 0.98 * top]))


def _on_lattice(runs: list[tuple[int, int]], size: int, gap: int) -> list[int] | None:
    """Start of the tile each run belongs to, on the lattice its complete runs define.

    Runs of about ``size`` (within 3 px) are complete tiles; their starts give the
    origin and the pitch (else ``size + gap``); the others (a tile with a dark
    edge, a tile fattened by compression) go to the nearest lattice position.
    None when no run is complete.
    """
    full = [a for a, b in runs if abs(b - a - size) <= _SIZE_SLACK_PX]
    if not full:
        return None
    nominal = size + gap
    steps = [(b - a) / round((b - a) / nominal) for a, b in zip(full, full[1:], strict=False)]
    pitch = float(np.median(steps)) if steps else nominal
    origin = full[0]
    return [origin + round(round(((a + b - size) / 2 - origin) / pitch) * pitch) for a, b in runs]


def _pitch(lattices: list[list[int]], nominal: int) -> float:
    """Distance between neighbouring tiles of the bands placed so far (else ``nominal``)."""
    starts = [sorted(set(xs)) for xs in lattices]
    steps = [b - a for xs in starts for a, b in zip(xs, xs[1:], strict=False)]
    return float(np.median(steps)) if steps else float(nominal)


def _centred(runs: list[tuple[int, int]], size: int, pitch: float, width: int) -> list[int] | None:
    """Starts of a centred row of ``len(runs)`` tiles, when each run lies in its tile."""
    start = (width - (len(runs) - 1) * pitch - size) / 2
    xs = [round(start + i * pitch) for i in range(len(runs))]
    fits = all(
        x - _SIZE_SLACK_PX <= a and b <= x + size + _SIZE_SLACK_PX
        for x, (a, b) in zip(xs, runs, strict=True)
    )
    return xs if fits else None


def _merge_runs(runs: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """Neighbouring runs merged while together they still fit in ``width`` (+2 px)."""
    out: list[tuple[int, int]] = []
    for x0, x1 in runs:
        if out and x1 - out[-1][0] <= width + 2:
            out[-1] = (out[-1][0], x1)
        else:
            out.append((x0, x1))
    return out


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """``[start, end)`` of the runs of True in a 1-d mask at least ``min_len`` long."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [
        (int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= min_len
    ]


def same_grid(a: list[Tile], b: list[Tile]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        abs(p.x - q.x) <= _GRID_SLACK_PX
        and abs(p.y - q.y) <= _GRID_SLACK_PX
        and abs(p.x + p.w - q.x - q.w) <= _GRID_SLACK_PX
        and abs(p.y + p.h - q.y - q.h) <= _GRID_SLACK_PX
        for p, q in zip(a, b, strict=True)
    )


def thumbnail(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``grey`` shrunk to ``size`` (w, h) by area averaging, as float32."""
    if grey.size == 0:
        return np.zeros(size[::-1], np.float32)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.float32)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, in grey levels."""
    return float(np.mean(np.abs(a - b)))


def face_patch(grey: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    h, w = grey.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in bbox)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(w, max(x2, x1 + 1)), min(h, max(y2, y1 + 1))
    return thumbnail(grey[y1:y2, x1:x2], _FACE_THUMB)


@dataclass(slots=True)
class _Known:
    """A face found in a tile, with what its embedding was computed from."""

    face: Face
    patch: np.ndarray  # face patch thumbnail when the embedding was computed
    embedded_t: float
    key: int  # follows the face while the gate keeps it (see FaceTracker.update's keys)
    settled: bool = False  # its track is settled: its embedding may be reused
    measurements: int = 0  # measured samples of its track so far


@dataclass(slots=True)
class _TileState:
    tile: Tile
    thumb: np.ndarray  # tile thumbnail at the last analysis
    analysed_t: float
    faces: list[_Known] = field(default_factory=list)


@dataclass(slots=True)
class GateStats:
    samples: int = 0
    grid_changes: int = 0
    tiles_analysed: int = 0
    tiles_reused: int = 0
    new_tiles: int = 0  # analysed: no state (start, grid change)
    rechecks: int = 0  # analysed: recheck_s elapsed
    unsettled: int = 0  # analysed: a face of the tile is not settled yet
    changed: int = 0  # analysed: the picture changed
    windowed: int = 0  # analysed in a window around the tile's face (see TileGate._detect_tile)
    faces_embedded: int = 0
    faces_reused: int = 0  # faces whose embedding was kept (tile reused or face unchanged)

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


Detect = Callable[[np.ndarray], list[Face]]  # faces in an image (a tile), its pixel coordinates
Embed = Callable[[list[Face]], np.ndarray]  # (n, d) embeddings of faces of the current frame


class TileGate:
    """Per-recording state of the fast path; one ``faces`` call per sampled frame.

    ``recheck_s <= 0`` turns the gate off: every sample is detected as one
    whole-frame tile and every face is embedded (the reference behaviour).
    """

    def __init__(
        self,
        *,
        recheck_s: float,
        embed_max_age_s: float,
        change_threshold: float = 15.0,
        face_change_threshold: float = 12.0,
        unsettled_every_s: float = 2.0,
        unsettled_ramp: int = 5,
    ) -> None:
        self.recheck_s = recheck_s
        self.embed_max_age_s = embed_max_age_s
        self.change_threshold = change_threshold
        self.face_change_threshold = face_change_threshold
        self.unsettled_every_s = unsettled_every_s
        self.unsettled_ramp = unsettled_ramp
        self.stats = GateStats()
        self._grid: list[Tile] = []
        #: the gallery tiles found in the last frame (None: the gate is off)
        self.frame_grid: list[Tile] | None = None
        self._thumbs: dict[Tile, np.ndarray] = {}
        self._states: dict[Tile, _TileState] = {}
        self._current: list[_Known] = []
        self._next_key = 0
        self.measured: list[bool] = []
        self.keys: list[int | None] = []

    @property
    def enabled(self) -> bool:
        return self.recheck_s > 0

    def faces(self, t: float, image: np.ndarray, detect: Detect, embed: Embed) -> list[Face]:
        """The faces of the frame at time ``t``, each with its ``embedding`` set.

        :attr:`measured` then tells, face by face, whether the embedding was
        computed from this frame; call :meth:`settle` with the tracker's verdict
        before the next frame.
        """
        self.stats.samples += 1
        if not self.enabled:
            faces = detect(image)
            self._embed(faces, embed)
            self.stats.tiles_analysed += 1
            self.measured = [True] * len(faces)
            self.keys = [None] * len(faces)
            self._current = []
            return faces
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        grid = find_tiles(grey)
        self.frame_grid = grid
        self._thumbs = {tile: thumbnail(tile.crop(grey), _TILE_THUMB) for tile in grid}
        if not same_grid(grid, self._grid):
            self.stats.grid_changes += 1
            self._states = self._follow(grid)
            self._grid = grid
        grid_now, grid = grid, self._grid
        current: list[tuple[_Known, bool]] = []  # every face of the frame, measured?
        to_embed: list[_Known] = []
        for new_tile, tile in zip(grid_now, grid, strict=True):
            thumb = self._thumbs[new_tile]
            state = self._states.get(tile)
            why = self._why_analyse(t, thumb, state)
            if why is None:
                self.stats.tiles_reused += 1
                self.stats.faces_reused += len(state.faces)
                current.extend((k, False) for k in state.faces)
                continue
            self.stats.tiles_analysed += 1
            setattr(self.stats, why, getattr(self.stats, why) + 1)
            found = self._detect_tile(image, tile, thumb, state, why, detect)
            previous = state.faces if state is not None else []
            new_state = _TileState(tile=tile, thumb=thumb, analysed_t=t)
            for face in found:
                known = self._carry(t, grey, face, previous)
                if known is None:
                    known = _Known(face, face_patch(grey, face.bbox), t, self._new_key())
                    to_embed.append(known)
                    current.append((known, True))
                else:
                    self.stats.faces_reused += 1
                    current.append((known, False))
                new_state.faces.append(known)
            self._states[tile] = new_state
        self._embed([k.face for k in to_embed], embed)
        self._current = [k for k, _ in current]
        self.measured = [m for _, m in current]
        self.keys = [k.key for k, _ in current]
        return [k.face for k, _ in current]

    def _detect_tile(
        self,
        image: np.ndarray,
        tile: Tile,
        thumb: np.ndarray,
        state: _TileState | None,
        why: str,
        detect: Detect,
    ) -> list[Face]:
        """The faces of ``tile``: detected in a window around its one face when the tile
        is measured again only because that face's track is not settled and the tile
        looks as it did (the face is where it was), else in the whole tile.

        The window is the face plus ``_WINDOW_MARGIN`` of its size on each side, at
        the same scale: about half the detector's input of a 25-tile gallery's
        tile. A window without exactly one face falls back to the whole tile."""
        if (
            why == "unsettled"
            and state is not None
            and len(state.faces) == 1
            and difference(thumb, state.thumb) <= self.change_threshold
        ):
            window = _window(state.faces[0].face.bbox, tile)
            found = [_shift(f, window.x, window.y) for f in detect(window.crop(image))]
            found = [f for f in found if _centre_inside(f, tile)]
            if len(found) == 1:
                self.stats.windowed += 1
                return found
        found = [_shift(f, tile.x, tile.y) for f in detect(tile.crop(image))]
        return [f for f in found if _centre_inside(f, tile)]

    def _why_analyse(self, t: float, thumb: np.ndarray, state: _TileState | None) -> str | None:
        """Why the tile must be analysed now (a ``GateStats`` counter), None if it need not."""
        if state is None:
            return "new_tiles"
        if t - state.analysed_t >= self.recheck_s:
            return "rechecks"
        unsettled = [k.measurements for k in state.faces if not k.settled]
        if unsettled and t - state.analysed_t >= self.unsettled_spacing(min(unsettled)):
            return "unsettled"
        if difference(thumb, state.thumb) > self.change_threshold:
            return "changed"
        return None

    def unsettled_spacing(self, measurements: int) -> float:
        """Seconds until a face whose track is not settled and has ``measurements``
        measured samples is measured again.

        ``unsettled_every_s`` up to ``unsettled_ramp`` measurements, then in
        proportion to their number (a track measured m times gains about
        sqrt(m) more per minute), at most ``recheck_s``. Measured on the 25-tile
        throughput recording (10 min): hard-to-recognise faces, whose tracks
        rarely settle, made 58 % of all tile analyses when measured every 2 s;
        this spacing took those analyses from 1,965 to 1,150 and embeddings
        from 2,493 to 1,868, per-minute F1 0.981 -> 0.984.
        """
        ramp = max(1.0, measurements / max(self.unsettled_ramp, 1))
        return min(self.recheck_s, self.unsettled_every_s * ramp)

    def settle(self, settled: list[bool], measurements: list[int] | None = None) -> None:
        """The tracker's verdict on the faces :meth:`faces` returned last, in that order:
        only faces of settled tracks may skip detection and embedding later;
        ``measurements`` (the measured samples of each face's track) spaces the
        measurements of the others (:meth:`unsettled_spacing`)."""
        if not self.enabled:
            return
        counts = measurements if measurements is not None else [0] * len(settled)
        for known, flag, count in zip(self._current, settled, counts, strict=True):
            known.settled = flag
            known.measurements = count

    def _new_key(self) -> int:
        self._next_key += 1
        return self._next_key

    def _follow(self, grid: list[Tile]) -> dict[Tile, _TileState]:
        """States for a new grid: a tile showing what an old tile showed (the person
        moved when someone joined or left) takes that tile's state, faces moved and
        scaled with it; other tiles start afresh."""
        old = list(self._states.values())
        if not old:
            return {}
        grey_thumbs = [self._thumbs.get(tile) for tile in grid]
        pairs = []
        for i, thumb in enumerate(grey_thumbs):
            if thumb is None:
                continue
            for j, state in enumerate(old):
                d = difference(thumb, state.thumb)
                if d <= self.change_threshold:
                    pairs.append((d, i, j))
        states: dict[Tile, _TileState] = {}
        used_new, used_old = set(), set()
        for _d, i, j in sorted(pairs):
            if i in used_new or j in used_old:
                continue
            used_new.add(i)
            used_old.add(j)
            src, dst = old[j], grid[i]
            states[dst] = _TileState(
                tile=dst,
                thumb=src.thumb,
                analysed_t=src.analysed_t,
                faces=[replace(k, face=_move(k.face, src.tile, dst)) for k in src.faces],
            )
        return states

    def _embed(self, faces: list[Face], embed: Embed) -> None:
        if not faces:
            return
        embeddings = embed(faces)
        for face, emb in zip(faces, embeddings, strict=True):
            face.embedding = emb
        self.stats.faces_embedded += len(faces)

    def _carry(
        self, t: float, grey: np.ndarray, face: Face, previous: list[_Known]
    ) -> _Known | None:
        """The previous face this one continues, with its embedding, if it may be kept."""
        if not previous:
            return None
        iou = iou_matrix(np.stack([k.face.bbox for k in previous]), face.bbox[None, :])[:, 0]
        best = int(np.argmax(iou))
        known = previous[best]
        if not known.settled or iou[best] < 0.5 or t - known.embedded_t >= self.embed_max_age_s:
            return None
        if difference(face_patch(grey, face.bbox), known.patch) > self.face_change_threshold:
            return None
        face.embedding = known.face.embedding
        return replace(known, face=face)


def _move(face: Face, src: Tile, dst: Tile) -> Face:
    """``face`` of tile ``src`` where it is in tile ``dst`` (moved and scaled)."""
    scale = np.array([dst.w / src.w, dst.h / src.h], np.float32)
    a = np.array([src.x, src.y], np.float32)
    b = np.array([dst.x, dst.y], np.float32)
    kps = (face.kps - a) * scale + b
    bbox = (face.bbox.reshape(2, 2) - a) * scale + b
    return replace(face, bbox=bbox.reshape(4).astype(np.float32), kps=kps.astype(np.float32))


def _shift(face: Face, dx: int, dy: int) -> Face:
    if not dx and not dy:
        return face
    offset = np.array([dx, dy], np.float32)
    return replace(face, bbox=face.bbox + np.tile(offset, 2), kps=face.kps + offset)


def _centre_inside(face: Face, tile: Tile) -> bool:
    cx = float(face.bbox[0] + face.bbox[2]) / 2
    cy = float(face.bbox[1] + face.bbox[3]) / 2
    return tile.x <= cx < tile.x + tile.w and tile.y <= cy < tile.y + tile.h


def _window(bbox: np.ndarray, tile: Tile, margin: float = _WINDOW_MARGIN) -> Tile:
    """The part of ``tile`` around the face box ``bbox``, ``margin`` of its size on each side."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    left = max(tile.x, int(np.floor(x1 - mx)))
    top = max(tile.y, int(np.floor(y1 - my)))
    right = min(tile.x + tile.w, int(np.ceil(x2 + mx)))
    bottom = min(tile.y + tile.h, int(np.ceil(y2 + my)))
    return Tile(left, top, max(1, right - left), max(1, bottom - top))
