"""Synthetic Zoom gallery-view meetings with exact ground truth.

The generator draws a Zoom-like gallery (dark background, up to 25 16:9 tiles,
name labels, camera-off tiles, active-speaker border), degrades every tile like
a cheap webcam (low source resolution, exposure, colour cast, uneven light,
noise, blur, upstream JPEG-like compression), encodes the result with x264 via
PyAV and writes a JSON ground truth next to the video.

Typical use::

    faces = load_faces_dir(Path("../shared/faces"))
    people = participants_from_faces(faces, seed=1, hard_fraction=0.3)
    script = random_script(people, duration_s=240, seed=1)
    truth = render_meeting(script, Path("meeting.mp4"))   # also meeting.mp4.truth.json
    truth.present_minutes(people[0].key, min_seconds_per_minute=30)

Conventions:

- Times are seconds from the start of the video. Frame ``i`` shows the meeting
  at ``t = i / fps`` and the video has ``round(duration_s * fps)`` frames.
- Intervals are half-open ``[start, end)``. A participant is *visible* (face on
  screen) while connected and not in a camera-off interval.
- Input photos are face-centred portraits framed like LFW (the detector's face
  box is about :data:`PHOTO_FACE_FRAC` of the photo height, centred).
  :func:`faces_from_group_photo` produces crops with the same framing.
- Everything random is derived from the script's seed and the participant's
  position in ``script.participants``; rendering the same script twice gives
  the same frames.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from rollcall.enrollment.masks import Occlusion
from rollcall.presence import minute_lengths, present_minutes

Interval = tuple[float, float]

#: Frame background (Zoom's gallery is near-black #1a1a1a).
BACKGROUND_BGR = (26, 26, 26)
#: Fill of a camera-off tile.
CAMERA_OFF_BGR = (44, 44, 44)
#: Active-speaker border colour (Zoom green).
SPEAKER_BGR = (60, 215, 40)
#: Opacity of the dark box behind a name label.
LABEL_BOX_ALPHA = 0.6
#: Height of the detector's face box relative to the photo height in input photos
#: (measured with SCRFD on the LFW photos: median 132 px of 250).
PHOTO_FACE_FRAC = 0.53
#: Never render a webcam source smaller than this many pixels in height (Zoom's
#: lowest simulcast layer is 160x90). Below it, combined with blur and noise, faces
#: become unrecognisable to a MobileFaceNet-class recognizer.
MIN_SOURCE_HEIGHT = 90
#: Largest number of simultaneously connected participants the gallery shows.
MAX_TILES = 25

_GRIDS = {  # connected participants -> (cols, rows)
    1: (1, 1),
    2: (2, 1),
    3: (2, 2),
    4: (2, 2),
    5: (3, 2),
    6: (3, 2),
    7: (3, 3),
    8: (3, 3),
    9: (3, 3),
    10: (4, 3),
    11: (4, 3),
    12: (4, 3),
    **{n: (4, 4) for n in range(13, 17)},
    **{n: (5, 4) for n in range(17, 21)},
    **{n: (5, 5) for n in range(21, 26)},
}
_SCENE_MARGIN = 0.08  # extra border around a cached webcam scene, for head motion
_NOISE_PAD = 16  # noise banks are this much larger than the source, for random offsets
_NOISE_BANKS = 3
_FONT = cv2.FONT_HERSHEY_SIMPLEX


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebcamProfile:
    """How one participant's camera degrades their picture.

    All effects are applied to the participant's tile only; compression of the
    whole frame comes later from x264.
    """

    scale: float = 1.0  # source resolution relative to the tile (0.3..1.0); see MIN_SOURCE_HEIGHT
    brightness: float = 0.0  # added after gamma/contrast, in 0..255 units (-50..50)
    contrast: float = 1.0  # around mid-grey (0.5..1.5)
    gamma: float = 1.0  # out = in ** gamma: > 1 darkens mid-tones, < 1 brightens (0.4..2.5)
    noise_sigma: float = 0.0  # gaussian sensor noise at source resolution, 0..255 units
    blur_sigma: float = 0.0  # gaussian blur (defocus) at source resolution, pixels
    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # B, G, R white-balance error
    vignette: float = 0.0  # darkening towards the corners, 0..0.7
    side_light: float = 0.0  # left-right lighting gradient, -0.6..0.6 (window on one side)
    jpeg_quality: int = 0  # 0: off; else per-frame JPEG of the source (Zoom's own stream coding)
    face_frac: float = 0.47  # face box height / tile height (distance to the camera)
    offset: tuple[float, float] = (0.0, -0.03)  # face centre offset, fractions of tile w, h
    motion: float = 1.0  # head-motion amplitude factor (0 = perfectly still)

    def __post_init__(self) -> None:
        checks = {
            "scale": 0.05 <= self.scale <= 1.0,
            "contrast": 0.2 <= self.contrast <= 3.0,
            "gamma": 0.2 <= self.gamma <= 4.0,
            "noise_sigma": 0.0 <= self.noise_sigma <= 60.0,
            "blur_sigma": 0.0 <= self.blur_sigma <= 10.0,
            "vignette": 0.0 <= self.vignette <= 0.95,
            "side_light": -0.95 <= self.side_light <= 0.95,
            "jpeg_quality": 0 <= self.jpeg_quality <= 100,
            "face_frac": 0.1 <= self.face_frac <= 1.2,
            "motion": 0.0 <= self.motion <= 5.0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"WebcamProfile out of range: {', '.join(bad)} ({self})")
        object.__setattr__(self, "color_gain", tuple(float(g) for g in self.color_gain))
        object.__setattr__(self, "offset", tuple(float(o) for o in self.offset))
        if len(self.color_gain) != 3 or len(self.offset) != 2:
            raise ValueError("color_gain needs 3 values (B, G, R) and offset 2 (x, y)")


def random_webcam(rng: np.random.Generator, hard: bool = False) -> WebcamProfile:
    """Draw a realistic webcam profile.

    ``hard=False`` gives ordinary laptop cameras (mild noise, small exposure and
    white-balance errors). ``hard=True`` gives cheap or badly placed cameras:
    low resolution, under- or over-exposure or back light, strong noise, blur,
    colour casts and blocky upstream compression -- still a face a person (and
    a normal detector) recognises.
    """
    u = rng.uniform
    if not hard:
        return WebcamProfile(
            scale=float(u(0.6, 1.0)),
            brightness=float(u(-15, 15)),
            contrast=float(u(0.85, 1.1)),
            gamma=float(u(0.85, 1.2)),
            noise_sigma=float(u(0.0, 5.0)),
            blur_sigma=float(u(0.0, 0.8)),
            color_gain=tuple(float(g) for g in u(0.93, 1.07, 3)),
            vignette=float(u(0.0, 0.25)),
            side_light=float(u(-0.15, 0.15)),
            jpeg_quality=0,
            face_frac=float(u(0.42, 0.55)),
            offset=(float(u(-0.06, 0.06)), float(u(-0.08, 0.02))),
            motion=float(u(0.5, 1.5)),
        )
    mode = rng.choice(["dark", "bright", "backlit", "flat"])
    brightness, gamma, contrast, side = float(u(-10, 10)), float(u(0.85, 1.2)), 1.0, 0.0
    if mode == "dark":
        brightness, gamma, contrast = float(u(-30, -8)), float(u(1.3, 1.8)), float(u(0.75, 0.95))
    elif mode == "bright":
        brightness, gamma, contrast = float(u(8, 30)), float(u(0.55, 0.8)), float(u(0.75, 1.0))
    elif mode == "backlit":
        side = float(rng.choice([-1.0, 1.0]) * u(0.3, 0.5))
        gamma, brightness = float(u(1.1, 1.5)), float(u(-20, 0))
    else:  # washed-out, low contrast
        contrast, brightness = float(u(0.65, 0.8)), float(u(0, 20))
    return WebcamProfile(
        scale=float(u(0.3, 0.6)),
        brightness=brightness,
        contrast=contrast,
        gamma=gamma,
        noise_sigma=float(u(3.0, 9.0)),
        blur_sigma=float(u(0.2, 0.7)),
        color_gain=tuple(float(g) for g in u(0.82, 1.18, 3)),
        vignette=float(u(0.2, 0.5)),
        side_light=side if side else float(u(-0.2, 0.2)),
        jpeg_quality=int(u(35, 60)) if rng.random() < 0.5 else 0,
        face_frac=float(u(0.38, 0.55)),
        offset=(float(u(-0.1, 0.1)), float(u(-0.1, 0.04))),
        motion=float(u(1.0, 2.0)),
    )


def _check_images(key: str, images: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    images = tuple(images)
    if not images:
        raise ValueError(f"participant {key!r} has no images")
    for img in images:
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3):
            raise ValueError(f"participant {key!r}: images must be HxWx3 uint8 BGR")
    return images


@dataclass(frozen=True, eq=False)
class OcclusionSpan:
    """From ``start`` to ``end`` seconds the participant wears a mask or holds a hand or
    microphone in front of the lower face: ``images`` are the participant's photos
    (same order and number) with it drawn on (see :mod:`rollcall.synthetic.occlusion`);
    ``occlusion`` says what it is, for the ground truth."""

    start: float
    end: float
    occlusion: Occlusion
    images: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end):
            raise ValueError(f"bad occlusion span {self.start}..{self.end}")


@dataclass(frozen=True, eq=False)
class Participant:
    """Someone in the meeting: who they are (``key``), what Zoom shows.

    ``images`` are BGR uint8 face-centred photos; the tile switches among them
    every 20-40 s to mimic pose changes. During an ``occlusions`` span the
    tile shows that span's occluded copies of the same photos instead.
    Equality is identity (photos are arrays).
    """

    key: str  # ground-truth id, e.g. a student id or "stranger-1"
    display_name: str  # the label Zoom draws in the tile
    images: tuple[np.ndarray, ...]
    webcam: WebcamProfile = field(default_factory=WebcamProfile)
    occlusions: tuple[OcclusionSpan, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", _check_images(self.key, self.images))
        spans = tuple(sorted(self.occlusions, key=lambda s: s.start))
        for a, b in zip(spans, spans[1:], strict=False):
            if b.start < a.end:
                raise ValueError(f"participant {self.key!r}: occlusion spans overlap")
        for span in spans:
            if len(_check_images(self.key, span.images)) != len(self.images):
                raise ValueError(f"participant {self.key!r}: an occlusion needs every photo")
        object.__setattr__(self, "occlusions", spans)

    def occlusion_at(self, t: float) -> int:
        """Index of the occlusion span containing ``t``, or -1."""
        for i, span in enumerate(self.occlusions):
            if span.start <= t < span.end:
                return i
        return -1


@dataclass(frozen=True)
class Presence:
    """When a participant is connected and when their camera is off.

    ``connected`` holds ``(join_s, leave_s)`` intervals (several = rejoins),
    ``camera_off`` holds ``(off_start_s, off_end_s)`` intervals. Both are
    normalised (sorted, overlapping intervals merged).
    """

    connected: tuple[Interval, ...]
    camera_off: tuple[Interval, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "connected", _merge(self.connected))
        object.__setattr__(self, "camera_off", _merge(self.camera_off))

    @classmethod
    def always(cls, duration_s: float) -> Presence:
        """Connected the whole meeting with the camera on."""
        return cls(connected=((0.0, float(duration_s)),))

    def connection_start(self, t: float) -> float | None:
        """Start of the connection interval containing ``t``, or None if not connected."""
        for a, b in self.connected:
            if a <= t < b:
                return a
        return None

    def camera_on(self, t: float) -> bool:
        """False inside a camera-off interval (regardless of connection)."""
        return not any(a <= t < b for a, b in self.camera_off)


@dataclass(frozen=True, kw_only=True)
class MeetingScript:
    """Everything needed to render one meeting deterministically.

    Participants missing from ``presence`` are connected the whole meeting with
    the camera on. At most :data:`MAX_TILES` may be connected at once.
    """

    duration_s: float
    participants: tuple[Participant, ...]
    presence: dict[str, Presence] = field(default_factory=dict)
    fps: float = 5.0
    width: int = 1280
    height: int = 720
    seed: int = 0
    crf: int = 28  # x264 quality; 35-40 is heavy compression
    gop: int = 250  # keyframe interval in frames
    title: str = "Synthetic meeting"
    preset: str = "veryfast"  # x264 preset
    speaker_highlight: bool = True  # draw Zoom's active-speaker border
    webcam_fps: float = 15.0  # tiles refresh at most this often (Zoom gallery: 10-15 fps)

    def __post_init__(self) -> None:
        participants = tuple(self.participants)
        object.__setattr__(self, "participants", participants)
        keys = [p.key for p in participants]
        if len(set(keys)) != len(keys):
            raise ValueError("participant keys must be unique")
        unknown = set(self.presence) - set(keys)
        if unknown:
            raise ValueError(f"presence for unknown participants: {sorted(unknown)}")
        if not (self.duration_s > 0 and self.fps > 0 and self.webcam_fps > 0):
            raise ValueError("duration_s, fps and webcam_fps must be positive")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even and at least 64")
        if not 0 <= self.crf <= 51 or self.gop < 1:
            raise ValueError("crf must be in 0..51 and gop >= 1")
        presence = {k: self.presence.get(k) or Presence.always(self.duration_s) for k in keys}
        object.__setattr__(self, "presence", presence)
        peak = _peak_concurrency(p.connected for p in presence.values())
        if peak > MAX_TILES:
            raise ValueError(
                f"{peak} participants connected at once; the gallery shows {MAX_TILES}"
            )

    @property
    def n_frames(self) -> int:
        """Number of frames in the rendered video."""
        return max(1, round(self.duration_s * self.fps))


@dataclass(frozen=True)
class Rect:
    """A tile rectangle in frame pixels."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class TilePlacement:
    """Where a participant's tile is at one instant."""

    key: str
    rect: Rect
    camera_on: bool
    speaking: bool


@dataclass
class ParticipantTruth:
    """Ground truth for one participant."""

    key: str
    display_name: str
    visible_seconds_per_minute: list[float]  # connected AND camera on (face on screen)
    connected_seconds_per_minute: list[float]
    connected: list[Interval]
    camera_off: list[Interval]
    visible: list[Interval]
    webcam: dict[str, Any] = field(default_factory=dict)
    #: What covered the lower face when: ``{"start", "end", "kind", "colour", "pattern",
    #: "side"}`` per span (masks, hands, microphones); empty for an uncovered face.
    occlusions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GroundTruth:
    """What a perfect attendance system would report for a synthetic meeting."""

    duration_s: float
    fps: float
    participants: list[ParticipantTruth]
    n_frames: int = 0
    width: int = 0
    height: int = 0
    title: str = ""
    seed: int = 0
    crf: int = 0
    video: str = ""  # file name of the video this truth belongs to

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.participants]

    def participant(self, key: str) -> ParticipantTruth:
        for p in self.participants:
            if p.key == key:
                return p
        raise KeyError(key)

    def present_minutes(self, key: str, min_seconds_per_minute: float) -> list[int]:
        """0/1 per minute for one participant, by the product's presence rule."""
        seen = self.participant(key).visible_seconds_per_minute
        return present_minutes(seen, self.duration_s, min_seconds_per_minute)

    def presence_matrix(self, min_seconds_per_minute: float) -> dict[str, list[int]]:
        """``present_minutes`` for every participant, keyed by participant key."""
        return {k: self.present_minutes(k, min_seconds_per_minute) for k in self.keys}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroundTruth:
        data = dict(data)
        parts = []
        for p in data.pop("participants"):
            p = dict(p)
            for name in ("connected", "camera_off", "visible"):
                p[name] = [(float(a), float(b)) for a, b in p[name]]
            parts.append(ParticipantTruth(**p))
        return cls(participants=parts, **data)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def truth_path_for(video_path: Path) -> Path:
    """Where :func:`render_meeting` writes the ground truth: ``<video>.truth.json``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.name + ".truth.json")


# ---------------------------------------------------------------------------
# Intervals and ground truth
# ---------------------------------------------------------------------------


def _merge(intervals: Iterable[Sequence[float]]) -> tuple[Interval, ...]:
    """Sort and merge overlapping/touching intervals; reject empty or reversed ones."""
    items = []
    for iv in intervals:
        a, b = float(iv[0]), float(iv[1])
        if not (math.isfinite(a) and math.isfinite(b)) or b <= a or a < 0:
            raise ValueError(f"bad interval {iv!r}: need 0 <= start < end")
        items.append((a, b))
    items.sort()
    out: list[list[float]] = []
    for a, b in items:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _clip(intervals: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    out = []
    for a, b in intervals:
        a, b = max(a, lo), min(b, hi)
        if b > a:
            out.append((a, b))
    return out


def _subtract(base: Sequence[Interval], cut: Sequence[Interval]) -> list[Interval]:
    """``base`` minus ``cut`` (both merged and sorted)."""
    out = []
    for a, b in base:
        pieces = [(a, b)]
        for c, d in cut:
            nxt = []
            for x, y in pieces:
                if d <= x or c >= y:
                    nxt.append((x, y))
                    continue
                if c > x:
                    nxt.append((x, c))
                if d < y:
                    nxt.append((d, y))
            pieces = nxt
        out.extend(pieces)
    return out


def _seconds_per_minute(intervals: Sequence[Interval], duration_s: float) -> list[float]:
    out = []
    for m, length in enumerate(minute_lengths(duration_s)):
        lo, hi = 60.0 * m, 60.0 * m + length
        out.append(round(sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals), 6))
    return out


def _peak_concurrency(all_intervals: Iterable[Sequence[Interval]]) -> int:
    events = []
    for intervals in all_intervals:
        for a, b in intervals:
            events += [(a, 1), (b, -1)]
    events.sort(key=lambda e: (e[0], e[1]))  # leaves before joins at equal times
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def _r(intervals: Iterable[Interval]) -> list[Interval]:
    return [(round(a, 6), round(b, 6)) for a, b in intervals]


def ground_truth(script: MeetingScript, video: str = "") -> GroundTruth:
    """Compute the ground truth of a script (no rendering needed)."""
    d = script.duration_s
    parts = []
    for p in script.participants:
        pres = script.presence[p.key]
        conn = _clip(pres.connected, 0.0, d)
        off = _clip(pres.camera_off, 0.0, d)
        vis = _subtract(conn, off)
        parts.append(
            ParticipantTruth(
                key=p.key,
                display_name=p.display_name,
                visible_seconds_per_minute=_seconds_per_minute(vis, d),
                connected_seconds_per_minute=_seconds_per_minute(conn, d),
                connected=_r(conn),
                camera_off=_r(off),
                visible=_r(vis),
                webcam=json.loads(json.dumps(asdict(p.webcam))),
                occlusions=[
                    {"start": round(s.start, 6), "end": round(s.end, 6), **s.occlusion.describe()}
                    for s in p.occlusions
                    if s.start < d
                ],
            )
        )
    return GroundTruth(
        duration_s=float(d),
        fps=float(script.fps),
        participants=parts,
        n_frames=script.n_frames,
        width=script.width,
        height=script.height,
        title=script.title,
        seed=script.seed,
        crf=script.crf,
        video=video,
    )


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


def random_script(
    participants: Sequence[Participant],
    *,
    duration_s: float,
    seed: int,
    late_join_prob: float = 0.2,
    leave_early_prob: float = 0.15,
    rejoin_prob: float = 0.15,
    camera_off_prob: float = 0.2,
    fps: float = 5.0,
    width: int = 1280,
    height: int = 720,
    crf: int = 28,
    gop: int = 250,
    title: str = "Synthetic meeting",
    preset: str = "veryfast",
    speaker_highlight: bool = True,
    webcam_fps: float = 15.0,
) -> MeetingScript:
    """Draw a realistic attendance schedule and return the script.

    Most people join in the first seconds and stay; with the given
    probabilities a participant joins late (10-50 % into the meeting), leaves
    early (after 50-90 %), drops and rejoins after 20-180 s, or turns the
    camera off for one or two 30-120 s stretches (sometimes right after
    joining). Deterministic for a seed; each participant's schedule depends
    only on the seed and their position in ``participants``.
    """
    d = float(duration_s)
    presence = {}
    for idx, p in enumerate(participants):
        rng = np.random.default_rng([seed, idx, 1])
        u = rng.uniform
        if rng.random() < late_join_prob:
            join = u(0.1, 0.5) * d
        else:
            join = 0.0 if rng.random() < 0.6 else u(0.0, min(45.0, 0.05 * d))
        leave = d
        if rng.random() < leave_early_prob:
            leave = max(join + 0.2 * d, u(0.5, 0.9) * d)
            leave = min(leave, d)
        connected = [(join, leave)]
        if rng.random() < rejoin_prob:
            for _ in range(2 if rng.random() < 0.25 else 1):
                a, b = max(connected, key=lambda iv: iv[1] - iv[0])
                length = b - a
                drop = a + u(0.15, 0.7) * length
                gap = min(u(20.0, 180.0), 0.25 * d, 0.5 * (b - drop))
                if gap >= 1.0 and b - (drop + gap) >= 1.0 and drop - a >= 1.0:
                    connected.remove((a, b))
                    connected += [(a, drop), (drop + gap, b)]
        camera_off = []
        if rng.random() < camera_off_prob:
            for k in range(2 if rng.random() < 0.3 else 1):
                a, b = connected[int(rng.integers(len(connected)))]
                length = min(u(30.0, 120.0), 0.4 * (b - a))
                if length < 1.0:
                    continue
                start = a if (k == 0 and rng.random() < 0.3) else u(a, b - length)
                camera_off.append((start, start + length))
        presence[p.key] = Presence(connected=tuple(connected), camera_off=tuple(camera_off))
    return MeetingScript(
        duration_s=d,
        participants=tuple(participants),
        presence=presence,
        fps=fps,
        width=width,
        height=height,
        seed=seed,
        crf=crf,
        gop=gop,
        title=title,
        preset=preset,
        speaker_highlight=speaker_highlight,
        webcam_fps=webcam_fps,
    )


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


def gallery_grid(n: int) -> tuple[int, int]:
    """``(cols, rows)`` of Zoom's gallery for ``n`` connected participants (1..25)."""
    if n not in _GRIDS:
        raise ValueError(f"gallery holds 1..{MAX_TILES} tiles, not {n}")
    return _GRIDS[n]


def gallery_layout(n: int, width: int, height: int) -> list[Rect]:
    """Tile rectangles, row by row, for ``n`` tiles in a ``width`` x ``height`` frame.

    Tiles are 16:9 with small gaps, the grid is centred and an incomplete
    last row is centred horizontally.
    """
    cols, rows = gallery_grid(n)
    gap = max(2, round(height * 0.006))
    avail_w = width - 2 * gap - (cols - 1) * gap
    avail_h = height - 2 * gap - (rows - 1) * gap
    tw = min(avail_w / cols, avail_h / rows * 16 / 9)
    tw, th = int(tw), int(tw * 9 / 16)
    y0 = (height - (rows * th + (rows - 1) * gap)) // 2
    rects = []
    for r in range(rows):
        in_row = min(cols, n - r * cols)
        x0 = (width - (in_row * tw + (in_row - 1) * gap)) // 2
        for c in range(in_row):
            rects.append(Rect(x0 + c * (tw + gap), y0 + r * (th + gap), tw, th))
    return rects


# ---------------------------------------------------------------------------
# Photos
# ---------------------------------------------------------------------------


def _natural_key(path: Path) -> list[Any]:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def load_faces_dir(root: Path) -> dict[str, list[np.ndarray]]:
    """Read ``<root>/<Person>/*.jpg`` into ``{person: [BGR images]}``, both sorted.

    Files within a person are sorted naturally (``2.jpg`` before ``10.jpg``).
    People without any readable photo are left out.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"faces directory not found: {root}")
    out: dict[str, list[np.ndarray]] = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = []
        for f in sorted(person.glob("*.jpg"), key=_natural_key):
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"cannot read image {f}")
            imgs.append(img)
        if imgs:
            out[person.name] = imgs
    return out


def faces_from_group_photo(
    image: np.ndarray,
    boxes: Iterable[Sequence[float]],
    *,
    margin: float = 1.9,
    size: int | None = 250,
    suppress_others: bool = True,
) -> list[np.ndarray]:
    """Crop every face of a group photo like a webcam portrait.

    ``boxes`` are ``(x1, y1, x2, y2[, ...])`` face boxes (e.g. a detector's
    output; extra columns such as scores are ignored). Each crop is square,
    centred on the box and ``margin`` times its larger side, so hair and
    background are included and the framing matches :data:`PHOTO_FACE_FRAC`.
    Crops reaching past the image edge are padded by edge replication.
    With ``suppress_others`` other faces reaching into a crop are blurred
    beyond recognition, so each crop shows one face. ``size`` resizes the
    crops to ``size`` x ``size`` (None keeps the natural resolution).
    """
    bxs = [tuple(float(v) for v in list(b)[:4]) for b in boxes]
    h, w = image.shape[:2]
    blurred = None
    if suppress_others and len(bxs) > 1:
        small = cv2.resize(image, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), 3), (w, h))
    crops = []
    for i, (x1, y1, x2, y2) in enumerate(bxs):
        src = image
        if blurred is not None:
            mask = np.zeros((h, w), np.uint8)
            for j, (a1, b1, a2, b2) in enumerate(bxs):
                if j != i:
                    _fill_scaled_box(mask, (a1, b1, a2, b2), 1.3, 255)
            _fill_scaled_box(mask, (x1, y1, x2, y2), 1.1, 0)
            src = np.where(mask[..., None] > 0, blurred, image)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = max(8, round(margin * max(x2 - x1, y2 - y1)))
        left, top = round(cx - side / 2), round(cy - side / 2)
        pad = max(0, -left, -top, left + side - w, top + side - h)
        if pad:
            src = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        crop = src[top + pad : top + pad + side, left + pad : left + pad + side].copy()
        if size:
            interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
            crop = cv2.resize(crop, (size, size), interpolation=interp)
        crops.append(crop)
    return crops


def _fill_scaled_box(mask: np.ndarray, box: Sequence[float], k: float, value: int) -> None:
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, k * (x2 - x1) / 2, k * (y2 - y1) / 2
    p1 = (max(0, int(cx - hw)), max(0, int(cy - hh)))
    p2 = (int(cx + hw), int(cy + hh))
    cv2.rectangle(mask, p1, p2, value, -1)


def augment_photo(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A differently-looking copy of a face photo (same size, face stays centred).

    Random horizontal flip, rotation (up to 8 deg x strength), scale and shift,
    brightness, contrast, saturation and white balance.
    """
    s = float(strength)
    h, w = img.shape[:2]
    out = img[:, ::-1] if rng.random() < 0.5 else img
    angle = rng.uniform(-8, 8) * s
    scale = 1.0 + rng.uniform(-0.08, 0.08) * s
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += rng.uniform(-0.04, 0.04, 2) * s * np.array([w, h])
    out = cv2.warpAffine(
        np.ascontiguousarray(out),
        m,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    f = out.astype(np.float32)
    gray = f.mean(axis=2, keepdims=True)
    f = gray + (f - gray) * (1.0 + rng.uniform(-0.25, 0.25) * s)
    f *= 1.0 + rng.uniform(-0.08, 0.08, 3).astype(np.float32) * s
    f = (f - 128.0) * (1.0 + rng.uniform(-0.15, 0.15) * s) + 128.0 + rng.uniform(-25, 25) * s
    return np.clip(f, 0, 255).astype(np.uint8)


def participants_from_faces(
    faces: Mapping[str, Sequence[np.ndarray]],
    *,
    seed: int,
    hard_fraction: float = 0.3,
    keys: Mapping[str, str] | None = None,
    display_names: Mapping[str, str] | None = None,
) -> list[Participant]:
    """One participant per person with a random webcam (a ``hard_fraction`` of them hard).

    Keys default to the person name, display names to the name with
    underscores replaced by spaces. Deterministic for a seed.
    """
    rng = np.random.default_rng([seed, 2])
    names = list(faces)
    n_hard = round(hard_fraction * len(names))
    hard = set(rng.permutation(len(names))[:n_hard].tolist())
    out = []
    for i, name in enumerate(names):
        out.append(
            Participant(
                key=(keys or {}).get(name, name),
                display_name=(display_names or {}).get(name, name.replace("_", " ")),
                images=tuple(faces[name]),
                webcam=random_webcam(rng, hard=i in hard),
            )
        )
    return out


#: Bitrate of an independent 10-minute 25-tile 720p 25 fps CRF 28 Zoom gallery
#: recording (issue 18): what :func:`zoom_like` aims at.
ZOOM_GALLERY_KBIT_S = 170.0


def zoom_like(
    participants: Sequence[Participant], *, motion: float = 0.15, noise: float = 1.5
) -> list[Participant]:
    """The participants as Zoom's gallery recordings show them: mostly still tiles.

    People in a class sit still: head motion is scaled by ``motion``, sensor
    noise by ``noise`` (everything else about each webcam is kept). Real
    webcams are noisy, and the noise, not head motion, is what brings a still
    gallery to Zoom's bitrate. Measured on the first minute of a 25-tile 720p
    CRF 28 meeting (joins included): the default webcams 200 kbit/s; motion
    0.15 with noise 1.0, 1.3, 1.5 and 2.0 (at least sigma 2) 125, 170, 215 and
    379 kbit/s. Whole 10-minute meetings: noise 1.0 99 kbit/s, noise 1.5
    188 kbit/s, 1.1 times :data:`ZOOM_GALLERY_KBIT_S`
    (``benchmarks/throughput.py`` prints every recording's bitrate beside it).
    """
    return [
        replace(
            p,
            webcam=replace(
                p.webcam,
                motion=p.webcam.motion * motion,
                noise_sigma=p.webcam.noise_sigma * noise,
            ),
        )
        for p in participants
    ]


def bitrate_kbit_s(video: Path, duration_s: float) -> float:
    """Mean bitrate of a recording file (all streams), in kbit/s."""
    return Path(video).stat().st_size * 8 / 1000.0 / max(duration_s, 1e-9)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _ascii(text: str) -> str:
    """cv2.putText draws ASCII only: strip accents, replace anything else."""
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return s if s.strip() else "?"


def _fit_text(text: str, scale: float, thick: int, max_w: int) -> str:
    text = _ascii(text)
    if cv2.getTextSize(text, _FONT, scale, thick)[0][0] <= max_w:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "...", _FONT, scale, thick)[0][0] > max_w:
        text = text[:-1]
    return text.rstrip() + "..."


@dataclass(frozen=True)
class _Label:
    """A pre-rendered name label: ``tile[box] = tile[box] * keep + add``."""

    x: int
    y: int
    keep: np.ndarray  # (h, w, 1) float32: what remains of the video under box and text
    add: np.ndarray  # (h, w, 1) float32: white text, anti-aliased


def _make_label(name: str, tw: int, th: int) -> _Label:
    scale = float(np.clip(th / 330.0, 0.33, 0.6))
    thick = 1
    pad = max(2, round(th * 0.02))
    text = _fit_text(name, scale, thick, int(tw * 0.8) - 2 * pad)
    (w, h), base = cv2.getTextSize(text, _FONT, scale, thick)
    bw, bh = w + 2 * pad, h + base + 2 * pad
    mask = np.zeros((bh, bw), np.uint8)
    cv2.putText(mask, text, (pad, pad + h), _FONT, scale, 255, thick, cv2.LINE_AA)
    margin = max(2, round(th * 0.025))
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    keep = (1.0 - LABEL_BOX_ALPHA) * (1.0 - alpha)
    return _Label(margin, th - margin - bh, keep, 255.0 * alpha + 0.5)


def _draw_label(tile: np.ndarray, label: _Label) -> None:
    bh, bw = label.keep.shape[:2]
    roi = tile[label.y : label.y + bh, label.x : label.x + bw]
    roi[...] = (roi * label.keep + label.add).astype(np.uint8)


def _camera_off_tile(name: str, tw: int, th: int) -> np.ndarray:
    tile = np.empty((th, tw, 3), np.uint8)
    tile[...] = CAMERA_OFF_BGR
    scale = float(np.clip(th / 160.0, 0.45, 1.6))
    thick = 1 if scale < 0.9 else 2
    text = _fit_text(name, scale, thick, int(tw * 0.9))
    (w, h), _ = cv2.getTextSize(text, _FONT, scale, thick)
    org = ((tw - w) // 2, (th + h) // 2)
    cv2.putText(tile, text, org, _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)
    _draw_label(tile, _make_label(name, tw, th))
    return tile


def _source_size(profile: WebcamProfile, tw: int, th: int) -> tuple[int, int]:
    sh = max(min(th, MIN_SOURCE_HEIGHT), round(th * profile.scale))
    return max(8, round(sh * tw / th)), max(8, sh)


def _tone_lut(profile: WebcamProfile) -> np.ndarray:
    x = np.arange(256, dtype=np.float32) / 255.0
    y = (np.power(x, profile.gamma) - 0.5) * profile.contrast + 0.5
    chans = [np.clip(y * 255.0 * g + profile.brightness, 0, 255) for g in profile.color_gain]
    return np.stack(chans, axis=-1).astype(np.uint8).reshape(256, 1, 3)


def _webcam_scene(
    photo: np.ndarray, profile: WebcamProfile, sw: int, sh: int, roll_deg: float = 0.0
) -> np.ndarray:
    """What the webcam sees, at source resolution plus a motion margin.

    The photo is scaled so the face box is ``face_frac`` of the source height,
    tilted by ``roll_deg``, placed at the profile's offset and feather-blended
    over a heavily blurred, enlarged copy of itself (an out-of-focus room).
    Lighting, tone curve and defocus blur are baked in; noise, head motion and
    upstream compression are added per frame.
    """
    big_w, big_h = round(sw * (1 + 2 * _SCENE_MARGIN)), round(sh * (1 + 2 * _SCENE_MARGIN))
    ph, pw = photo.shape[:2]
    # Background: the photo enlarged to cover the scene, blurred at low resolution.
    kb = max(big_w / pw, big_h / ph) * 1.15
    small = cv2.resize(photo, (max(4, pw // 6), max(4, ph // 6)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.5)
    bg_full = cv2.resize(small, (round(pw * kb), round(ph * kb)), interpolation=cv2.INTER_LINEAR)
    oy, ox = (bg_full.shape[0] - big_h) // 2, (bg_full.shape[1] - big_w) // 2
    scene = bg_full[oy : oy + big_h, ox : ox + big_w].astype(np.float32) * 0.92
    # Foreground: the photo at face scale, its bottom extended (the torso goes on
    # below a portrait crop), blended in with wide feathered edges.
    k = profile.face_frac * sh / (PHOTO_FACE_FRAC * ph)
    ext = ph // 3
    tall = cv2.copyMakeBorder(photo, 0, ext, 0, 0, cv2.BORDER_REPLICATE)
    fw, fh = max(2, round(pw * k)), max(2, round((ph + ext) * k))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
    fg = cv2.resize(tall, (fw, fh), interpolation=interp).astype(np.float32)
    ramp_x = np.clip(np.minimum(np.arange(fw), np.arange(fw)[::-1]) / max(1.0, 0.22 * fw), 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(fh), np.arange(fh)[::-1]) / max(1.0, 0.1 * fh), 0, 1)
    ramp_x = ramp_x * ramp_x * (3 - 2 * ramp_x)  # smoothstep
    alpha = np.outer(ramp_y, ramp_x).astype(np.float32)
    if abs(roll_deg) > 0.05:
        rot = cv2.getRotationMatrix2D((fw / 2, ph * k / 2), roll_deg, 1.0)
        fg = cv2.warpAffine(fg, rot, (fw, fh), borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(alpha, rot, (fw, fh), borderMode=cv2.BORDER_CONSTANT)
    alpha = alpha[..., None]
    cx = big_w / 2 + profile.offset[0] * sw
    cy = big_h / 2 + profile.offset[1] * sh + ext * k / 2  # keep the face where it was
    x0, y0 = round(cx - fw / 2), round(cy - fh / 2)
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(big_w, x0 + fw), min(big_h, y0 + fh)
    if dx1 > dx0 and dy1 > dy0:
        src = fg[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
        a = alpha[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
        dst = scene[dy0:dy1, dx0:dx1]
        scene[dy0:dy1, dx0:dx1] = dst * (1 - a) + src * a
    # Lighting: side light and vignette.
    if profile.side_light or profile.vignette:
        xs = np.linspace(-1, 1, big_w, dtype=np.float32)
        ys = np.linspace(-1, 1, big_h, dtype=np.float32)
        r2 = (xs[None, :] ** 2 + ys[:, None] ** 2) / 2.0
        gain = (1.0 + profile.side_light * xs[None, :]) * (1.0 - profile.vignette * r2)
        scene *= gain[..., None]
    out = cv2.LUT(np.clip(scene, 0, 255).astype(np.uint8), _tone_lut(profile))
    if profile.blur_sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), profile.blur_sigma)
    return out


@dataclass(frozen=True)
class _Motion:
    """Slow head motion: sums of two sines for x, y and scale.

    (Head roll is baked into each cached scene instead: rotating every frame
    costs several times more than the crop-and-resize used for motion.)
    """

    amp: np.ndarray  # (3,) x, y (fractions of source height), scale (fraction)
    freq: np.ndarray  # (3, 2) Hz
    phase: np.ndarray  # (3, 2) rad

    def at(self, t: float) -> np.ndarray:
        s = np.sin(2 * np.pi * self.freq * t + self.phase)
        return self.amp * (0.65 * s[:, 0] + 0.35 * s[:, 1])


class MeetingRenderer:
    """Renders frames of a script; holds per-run caches (no global state).

    Caches are keyed by tile size, which takes at most nine values per
    resolution, so memory stays bounded however long the meeting is.
    """

    def __init__(self, script: MeetingScript) -> None:
        self.script = script
        self._base = np.empty((script.height, script.width, 3), np.uint8)
        self._base[...] = BACKGROUND_BGR
        self._scenes: dict[tuple[int, int, int, int, int], np.ndarray] = {}
        self._noise: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._last: dict[int, tuple[int, int, int, np.ndarray]] = {}  # idx -> tick, w, h, tile
        self._labels: dict[tuple[int, int, int], _Label] = {}
        self._off_tiles: dict[tuple[int, int, int], np.ndarray] = {}
        self._layouts: dict[int, list[Rect]] = {}
        self._image_switch: list[tuple[list[float], list[int]]] = []
        self._motion: list[_Motion] = []
        for idx, p in enumerate(script.participants):
            rng = np.random.default_rng([script.seed, idx, 3])
            times, which = [0.0], [int(rng.integers(len(p.images)))]
            t = 0.0
            while t < script.duration_s and len(p.images) > 1:
                t += float(rng.uniform(20.0, 40.0))
                nxt = int(rng.integers(len(p.images) - 1))
                times.append(t)
                which.append(nxt if nxt < which[-1] else nxt + 1)
            self._image_switch.append((times, which))
            m = p.webcam.motion
            self._motion.append(
                _Motion(
                    amp=np.array([0.035 * m, 0.025 * m, 0.03 * m]),
                    freq=rng.uniform(1 / 14.0, 1 / 3.0, (3, 2)),
                    phase=rng.uniform(0, 2 * np.pi, (3, 2)),
                )
            )
        rng = np.random.default_rng([script.seed, 4])
        self._speaker_times, self._speakers = [0.0], [int(rng.integers(len(script.participants)))]
        t = 0.0
        while t < script.duration_s and script.participants:
            t += float(rng.uniform(4.0, 20.0))
            self._speaker_times.append(t)
            self._speakers.append(int(rng.integers(len(script.participants))))

    # -- layout -------------------------------------------------------------

    def _placements(self, t: float) -> list[tuple[int, Rect, bool, bool]]:
        script = self.script
        order = []
        for idx, p in enumerate(script.participants):
            start = script.presence[p.key].connection_start(t)
            if start is not None:
                order.append((start, idx))
        if not order:
            return []
        order.sort()
        n = len(order)
        if n not in self._layouts:
            self._layouts[n] = gallery_layout(n, script.width, script.height)
        speaker = self._speakers[bisect_right(self._speaker_times, t) - 1]
        out = []
        for (_, idx), rect in zip(order, self._layouts[n], strict=True):
            cam = script.presence[script.participants[idx].key].camera_on(t)
            out.append((idx, rect, cam, script.speaker_highlight and idx == speaker))
        return out

    def placements(self, t: float) -> list[TilePlacement]:
        """Which tiles are where at time ``t`` (join order, row by row)."""
        keys = [p.key for p in self.script.participants]
        return [TilePlacement(keys[i], r, c, s) for i, r, c, s in self._placements(t)]

    # -- tiles --------------------------------------------------------------

    def _label(self, idx: int, tw: int, th: int) -> _Label:
        k = (idx, tw, th)
        if k not in self._labels:
            self._labels[k] = _make_label(self.script.participants[idx].display_name, tw, th)
        return self._labels[k]

    def _camera_tile(self, idx: int, frame_no: int, t: float, tw: int, th: int) -> np.ndarray:
        """The webcam tile; refreshed at ``script.webcam_fps``, reused in between."""
        if self.script.webcam_fps < self.script.fps:
            tick = math.floor(t * self.script.webcam_fps + 1e-9)
            t = tick / self.script.webcam_fps
        else:
            tick = frame_no
        last = self._last.get(idx)
        if last is not None and last[:3] == (tick, tw, th):
            return last[3]
        tile = self._webcam_frame(idx, tick, t, tw, th)
        self._last[idx] = (tick, tw, th, tile)
        return tile

    def _webcam_frame(self, idx: int, tick: int, t: float, tw: int, th: int) -> np.ndarray:
        p = self.script.participants[idx]
        prof = p.webcam
        sw, sh = _source_size(prof, tw, th)
        times, which = self._image_switch[idx]
        img = which[bisect_right(times, t) - 1]
        covered = p.occlusion_at(t)
        key = (idx, img, covered, tw, th)
        scene = self._scenes.get(key)
        if scene is None:
            roll = np.random.default_rng([self.script.seed, idx, img, 6]).uniform(-3, 3)
            roll *= min(prof.motion, 1.5)
            photo = p.images[img] if covered < 0 else p.occlusions[covered].images[img]
            scene = _webcam_scene(photo, prof, sw, sh, float(roll))
            self._scenes[key] = scene
        # Head motion: crop a moving, slightly zooming window and resize it.
        dx, dy, ds = self._motion[idx].at(t)
        big_h, big_w = scene.shape[:2]
        cw = min(big_w, max(2, round(sw / (1.0 + ds))))
        ch = min(big_h, max(2, round(sh / (1.0 + ds))))
        x0 = min(max(0, round((big_w - cw) / 2 + dx * sh)), big_w - cw)
        y0 = min(max(0, round((big_h - ch) / 2 + dy * sh)), big_h - ch)
        src = cv2.resize(
            scene[y0 : y0 + ch, x0 : x0 + cw], (sw, sh), interpolation=cv2.INTER_LINEAR
        )
        if prof.noise_sigma > 0.05:
            pos, neg = self._noise_bank(idx, sw, sh)
            j = (tick * 7 + idx * 3) % pos.shape[0]
            nx = (tick * 13 + idx * 5) % _NOISE_PAD
            ny = (tick * 11 + idx * 7) % _NOISE_PAD
            src = cv2.add(src, pos[j, ny : ny + sh, nx : nx + sw])
            src = cv2.subtract(src, neg[j, ny : ny + sh, nx : nx + sw])
        if prof.jpeg_quality:
            ok, buf = cv2.imencode(".jpg", src, [cv2.IMWRITE_JPEG_QUALITY, prof.jpeg_quality])
            if ok:
                src = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if (sw, sh) != (tw, th):
            src = cv2.resize(src, (tw, th), interpolation=cv2.INTER_LINEAR)
        _draw_label(src, self._label(idx, tw, th))
        return src

    def _noise_bank(self, idx: int, sw: int, sh: int) -> tuple[np.ndarray, np.ndarray]:
        """Pre-drawn noise as (positive, negative) uint8 parts: saturating adds are fast."""
        k = (idx, sw, sh)
        bank = self._noise.get(k)
        if bank is None:
            rng = np.random.default_rng([self.script.seed, idx, sw, sh, 5])
            shape = (_NOISE_BANKS, sh + _NOISE_PAD, sw + _NOISE_PAD, 3)
            sigma = self.script.participants[idx].webcam.noise_sigma
            noise = rng.standard_normal(shape, dtype=np.float32) * sigma
            # Sensor noise is partly shared by the colour channels (luma noise).
            noise = 0.6 * noise + 0.4 * noise.mean(axis=-1, keepdims=True) * math.sqrt(3)
            noise = np.round(noise)
            bank = (
                np.clip(noise, 0, 255).astype(np.uint8),
                np.clip(-noise, 0, 255).astype(np.uint8),
            )
            self._noise[k] = bank
        return bank

    def _off_tile(self, idx: int, tw: int, th: int) -> np.ndarray:
        k = (idx, tw, th)
        if k not in self._off_tiles:
            name = self.script.participants[idx].display_name
            self._off_tiles[k] = _camera_off_tile(name, tw, th)
        return self._off_tiles[k]

    # -- frames -------------------------------------------------------------

    def frame(self, frame_no: int) -> np.ndarray:
        """The BGR frame number ``frame_no`` (time ``frame_no / fps``)."""
        t = frame_no / self.script.fps
        out = self._base.copy()
        for idx, r, cam, speaking in self._placements(t):
            if cam:
                tile = self._camera_tile(idx, frame_no, t, r.w, r.h)
            else:
                tile = self._off_tile(idx, r.w, r.h)
            out[r.y : r.y + r.h, r.x : r.x + r.w] = tile
            if speaking:
                bw = max(2, round(r.h * 0.015))
                p1, p2 = (
                    (r.x + bw // 2, r.y + bw // 2),
                    (r.x + r.w - 1 - bw // 2, r.y + r.h - 1 - bw // 2),
                )
                cv2.rectangle(out, p1, p2, SPEAKER_BGR, bw)
        return out


def render_frame(script: MeetingScript, t: float) -> np.ndarray:
    """One uncompressed BGR frame of the meeting at time ``t`` (for previews and tests)."""
    return MeetingRenderer(script).frame(round(t * script.fps))


def render_meeting(
    script: MeetingScript,
    out_path: Path,
    progress: Callable[[float], None] | None = None,
) -> GroundTruth:
    """Render the meeting to an H.264 MP4 and write its ground truth.

    The video is encoded with libx264 (yuv420p, ``script.preset``,
    ``script.crf``, keyframe every ``script.gop`` frames) frame by frame, so
    memory does not grow with the duration. It is written to
    ``<out_path>.part`` and renamed when complete; the ground truth goes to
    :func:`truth_path_for` (``<out_path>.truth.json``). ``progress`` is called
    with the completed fraction 0..1 now and then and with 1.0 at the end.

    Frames are composed in one worker thread while the encoder runs; OpenCV's
    own thread pool is set to 1 thread for the duration of the call (its
    previous setting is restored afterwards).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    renderer = MeetingRenderer(script)
    rate = Fraction(script.fps).limit_denominator(1001)
    n = script.n_frames
    every = max(1, n // 200)

    def compose(i: int) -> np.ndarray:
        return cv2.cvtColor(renderer.frame(i), cv2.COLOR_BGR2YUV_I420)

    # Tiles are small: OpenCV's internal threading costs more than it saves, and
    # x264 needs the cores. Restored afterwards.
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            container.metadata["title"] = script.title
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = script.width, script.height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.codec_context.gop_size = script.gop
            stream.options = {"crf": str(script.crf), "preset": script.preset}
            # Compose frame i+1 in a worker thread while x264 encodes frame i (OpenCV
            # and the encoder release the GIL). One worker: the caches see one thread.
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(compose, 0)
                for i in range(n):
                    yuv = pending.result()
                    if i + 1 < n:
                        pending = pool.submit(compose, i + 1)
                    vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                    vf.pts = i
                    vf.time_base = 1 / rate
                    for packet in stream.encode(vf):
                        container.mux(packet)
                    if progress is not None and (i + 1) % every == 0 and i + 1 < n:
                        progress((i + 1) / n)
            for packet in stream.encode(None):
                container.mux(packet)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cv2.setNumThreads(cv_threads)
    tmp.replace(out_path)
    truth = ground_truth(script, video=out_path.name)
    truth.save(truth_path_for(out_path))
    if progress is not None:
        progress(1.0)
    return truth
