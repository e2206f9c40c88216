"""Things in front of the lower face, drawn from the five face keypoints.

Face masks (surgical and cloth, several colours and patterns), a hand and a
microphone are painted over a face photo using the detector's keypoints
(eyes, nose, mouth corners) for position, size and roll, and shaded with the
photo's own light so they sit in the picture like the real thing.

Two users: the meeting generator (``rollcall.synthetic``) draws them on the
people of a test meeting, and enrollment adds masked copies of every
enrollment photo to the student's template. Enrollment uses only
:data:`ENROLLMENT_MASKS`, whose colours and patterns the generator never
draws (:data:`GENERATOR_COLOURS`), so a test never sees the exact mask a
template was built with.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: What can be in front of the lower face.
KINDS = ("surgical", "cloth", "hand", "microphone")
MASK_KINDS = ("surgical", "cloth")
PATTERNS = ("plain", "stripes", "dots")

#: BGR colours the meeting generator draws masks in, per kind.
GENERATOR_COLOURS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "surgical": ((225, 195, 150), (240, 240, 238), (40, 40, 42), (200, 185, 235)),  # blue, white,
    # black, pink
    "cloth": (
        (90, 45, 25),  # navy
        (30, 30, 30),  # black
        (130, 130, 128),  # grey
        (40, 40, 170),  # red
        (60, 120, 50),  # green
        (150, 185, 205),  # beige
    ),
}


@dataclass(frozen=True)
class Occlusion:
    """One thing in front of the lower face: ``kind`` in :data:`KINDS`, a BGR
    ``colour`` (masks; the microphone is always dark), ``pattern`` for cloth masks
    and ``side`` (-1 or 1) for hands and microphones."""

    kind: str
    colour: tuple[int, int, int] = (225, 195, 150)
    pattern: str = "plain"
    side: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"occlusion kind must be one of {KINDS}, not {self.kind!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, not {self.pattern!r}")
        object.__setattr__(self, "colour", tuple(int(c) for c in self.colour))
        object.__setattr__(self, "side", 1 if self.side >= 0 else -1)

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "colour": list(self.colour),
            "pattern": self.pattern,
            "side": self.side,
        }


#: The masks enrollment draws on its masked copies, in colours and patterns the generator
#: never uses. Several of them, so what a template learns is "this face in a mask" rather
#: than "this face in a lavender mask" (measured on the tuning half of faces-lfw: masked
#: faces above the match threshold 0.45 with two masks, 0.52 with these six, at weight 0.3).
ENROLLMENT_MASKS = (
    Occlusion("surgical", (215, 170, 190)),  # lavender
    Occlusion("cloth", (140, 140, 30), "stripes"),  # teal stripes
    Occlusion("surgical", (180, 180, 170)),  # pale grey-green
    Occlusion("cloth", (20, 60, 90)),  # brown
    Occlusion("cloth", (70, 30, 70)),  # purple
    Occlusion("cloth", (40, 160, 200), "dots"),  # mustard with dots
)


def random_occlusion(rng: np.random.Generator, kinds: tuple[str, ...] = MASK_KINDS) -> Occlusion:
    """A random occlusion of one of ``kinds`` in the generator's colours."""
    kind = str(rng.choice(list(kinds)))
    colours = GENERATOR_COLOURS.get(kind, GENERATOR_COLOURS["surgical"])
    colour = colours[int(rng.integers(len(colours)))]
    pattern = "plain"
    if kind == "cloth":
        pattern = str(rng.choice(list(PATTERNS), p=[0.6, 0.2, 0.2]))
    return Occlusion(kind, colour, pattern, int(rng.choice([-1, 1])))


@dataclass(frozen=True)
class _FaceFrame:
    """Face-aligned coordinates: origin between the eyes, x along the eye line,
    y down the face, both in units of the eye distance ``d``."""

    origin: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    d: float
    nose_y: float
    mouth_y: float
    mouth_half: float

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float32).reshape(-1, 2)
        return self.origin + self.d * (pts[:, :1] * self.ex + pts[:, 1:] * self.ey)


def _face_frame(kps: np.ndarray) -> _FaceFrame:
    kps = np.asarray(kps, np.float32).reshape(5, 2)
    le, re_, nose, ml, mr = kps
    origin = (le + re_) / 2
    ex = re_ - le
    d = float(np.linalg.norm(ex))
    if d < 2:
        raise ValueError("keypoints too close together to place an occlusion")
    ex = ex / d
    ey = np.array([-ex[1], ex[0]], np.float32)
    mouth = (ml + mr) / 2

    def y(p: np.ndarray) -> float:
        return float((p - origin) @ ey) / d

    return _FaceFrame(
        origin,
        ex,
        ey,
        d,
        max(0.45, y(nose)),
        max(0.8, y(mouth)),
        max(0.25, float(np.linalg.norm(mr - ml)) / (2 * d)),
    )


#: Upper edge of a mask as a fraction of the eyes-to-nose-tip distance (over the nose bridge).
_TOP = 0.3


def _mask_outline(f: _FaceFrame, kind: str) -> np.ndarray:
    """Polygon of a mask in face coordinates: over the nose bridge, ear to ear, under the chin."""
    top = _TOP * f.nose_y
    chin = f.mouth_y + 0.75 * (f.mouth_y - f.nose_y) + 0.45
    half = 1.1 if kind == "surgical" else 1.04
    pts = [(-half, top + 0.12), (-0.35, top), (0.0, top - 0.04), (0.35, top), (half, top + 0.12)]
    pts += [(half * 0.98, f.mouth_y), (half * 0.85, chin - 0.35)]
    for a in np.linspace(0.25, np.pi - 0.25, 9):  # rounded bottom under the chin
        pts.append((half * 0.8 * np.cos(a), chin - 0.35 + 0.4 * np.sin(a)))
    pts += [(-half * 0.85, chin - 0.35), (-half * 0.98, f.mouth_y)]
    return np.array(pts, np.float32)


def _lighting(image: np.ndarray, alpha: np.ndarray, d: float) -> np.ndarray:
    """Relative brightness of the photo under the occlusion (its light and shadows), ~1."""
    lum = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    lum = cv2.GaussianBlur(lum, (0, 0), max(1.0, 0.35 * d))
    inside = alpha > 0.5
    mean = float(lum[inside].mean()) if inside.any() else float(lum.mean())
    return np.clip(0.55 + 0.45 * lum / max(mean, 1.0), 0.5, 1.3)


def _shape_shading(f: _FaceFrame, shape: tuple[int, int], cx: float) -> np.ndarray:
    """Curvature shading of something wrapped around the face: darker towards its sides."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel = np.stack([xx - f.origin[0], yy - f.origin[1]], axis=-1)
    fx = (rel @ f.ex) / f.d - cx
    fy = (rel @ f.ey) / f.d
    return (0.78 + 0.22 * np.cos(np.clip(fx / 1.1, -1.5, 1.5))) * (
        1.0 - 0.05 * np.clip(fy - f.nose_y, -1, 2)
    )


def _blend(image: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    out = image.astype(np.float32) * (1 - a) + layer * a
    return np.clip(out, 0, 255).astype(np.uint8)


def _soft(alpha: np.ndarray, d: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), max(0.6, 0.03 * d))


def _draw_mask(
    image: np.ndarray, f: _FaceFrame, occ: Occlusion, rng: np.random.Generator
) -> np.ndarray:
    h, w = image.shape[:2]
    outline = f.to_image(_mask_outline(f, occ.kind))
    alpha = np.zeros((h, w), np.float32)
    cv2.fillPoly(alpha, [np.round(outline * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
    layer = np.empty((h, w, 3), np.float32)
    layer[...] = occ.colour
    # Fabric texture: pleats for surgical masks, a seam and the pattern for cloth ones.
    top = _TOP * f.nose_y
    chin = f.mouth_y + 0.75 * (f.mouth_y - f.nose_y) + 0.45
    detail = np.zeros((h, w), np.uint8)
    thick = max(1, round(0.04 * f.d))
    if occ.kind == "surgical":
        for k in (0.3, 0.5, 0.7):
            yk = top + k * (chin - top)
            line = f.to_image([(-1.0, yk + 0.08), (0.0, yk), (1.0, yk + 0.08)])
            cv2.polylines(detail, [np.round(line).astype(np.int32)], False, 255, thick, cv2.LINE_AA)
        for side in (-1, 1):  # ear loops
            loop = f.to_image([(side * 1.0, top + 0.15), (side * 1.25, f.nose_y)])
            cv2.line(detail, *[tuple(map(int, p)) for p in np.round(loop)], 255, thick, cv2.LINE_AA)
        layer *= 1.0 - 0.18 * (detail[..., None] / 255.0)
    else:
        seam = f.to_image([(0.0, top - 0.04), (0.0, chin + 0.05)])
        cv2.line(detail, *[tuple(map(int, p)) for p in np.round(seam)], 255, thick, cv2.LINE_AA)
        layer *= 1.0 - 0.25 * (detail[..., None] / 255.0)
        if occ.pattern != "plain":
            pat = np.zeros((h, w), np.uint8)
            step = 0.22
            if occ.pattern == "stripes":
                for yk in np.arange(top, chin + 0.3, step):
                    line = f.to_image([(-1.2, yk), (1.2, yk)])
                    cv2.line(
                        pat,
                        *[tuple(map(int, p)) for p in np.round(line)],
                        255,
                        max(1, round(0.06 * f.d)),
                        cv2.LINE_AA,
                    )
            else:
                for yk in np.arange(top + 0.1, chin + 0.3, step):
                    for xk in np.arange(-1.1, 1.2, step):
                        c = f.to_image([(xk + (step / 2 if round(yk / step) % 2 else 0), yk)])[0]
                        cv2.circle(pat, tuple(map(int, c)), max(1, round(0.035 * f.d)), 255, -1)
            light = np.array([235, 235, 235], np.float32)
            p = (pat[..., None] / 255.0) * 0.8
            layer = layer * (1 - p) + light * p
        # Woven cloth: fine noise.
        layer += rng.normal(0, 5, (h, w, 1)).astype(np.float32)
    shade = _lighting(image, alpha, f.d) * _shape_shading(f, (h, w), 0.0)
    layer *= shade[..., None]
    return _blend(image, layer, _soft(alpha, f.d))


def _skin_colour(image: np.ndarray, f: _FaceFrame) -> np.ndarray:
    """Median colour of the cheeks (between the eyes and the mouth corners)."""
    pts = f.to_image([(-0.55, 0.55), (0.55, 0.55), (-0.5, 0.8), (0.5, 0.8)])
    h, w = image.shape[:2]
    r = max(1, round(0.12 * f.d))
    samples = []
    for x, y in np.round(pts).astype(int):
        patch = image[max(0, y - r) : min(h, y + r + 1), max(0, x - r) : min(w, x + r + 1)]
        if patch.size:
            samples.append(patch.reshape(-1, 3))
    if not samples:
        return np.array([120, 140, 180], np.float32)
    return np.median(np.concatenate(samples), axis=0).astype(np.float32)


def _draw_hand(
    image: np.ndarray, f: _FaceFrame, occ: Occlusion, rng: np.random.Generator
) -> np.ndarray:
    """A hand over mouth and chin: a palm and four fingers reaching across the face."""
    h, w = image.shape[:2]
    s = occ.side
    alpha = np.zeros((h, w), np.float32)
    palm_c = f.to_image([(s * 0.55, f.mouth_y + 0.35)])[0]
    angle = float(np.degrees(np.arctan2(f.ex[1], f.ex[0])))
    axes = (max(2, round(0.6 * f.d)), max(2, round(0.5 * f.d)))
    cv2.ellipse(alpha, tuple(map(int, palm_c)), axes, angle - s * 15, 0, 360, 1.0, -1, cv2.LINE_AA)
    finger_w = max(1, round(0.17 * f.d))
    for k in range(4):
        y0 = f.mouth_y - 0.15 + k * 0.21
        start = f.to_image([(s * 0.35, y0)])[0]
        end = f.to_image([(-s * (0.45 - 0.06 * abs(k - 1.5)), y0 - 0.1)])[0]
        cv2.line(alpha, tuple(map(int, start)), tuple(map(int, end)), 1.0, finger_w, cv2.LINE_AA)
        cv2.circle(alpha, tuple(map(int, end)), finger_w // 2, 1.0, -1, cv2.LINE_AA)
    skin = _skin_colour(image, f) * float(rng.uniform(0.92, 1.05))
    layer = np.empty((h, w, 3), np.float32)
    layer[...] = skin
    # Creases between the fingers.
    creases = np.zeros((h, w), np.uint8)
    for k in range(1, 4):
        y0 = f.mouth_y - 0.15 + (k - 0.5) * 0.21
        a, b = f.to_image([(s * 0.3, y0), (-s * 0.4, y0 - 0.1)])
        cv2.line(creases, tuple(map(int, a)), tuple(map(int, b)), 255, 1, cv2.LINE_AA)
    layer *= 1.0 - 0.2 * (creases[..., None] / 255.0)
    shade = _lighting(image, alpha, f.d) * _shape_shading(f, (h, w), s * 0.3)
    layer *= shade[..., None]
    return _blend(image, layer, _soft(alpha, f.d))


def _draw_microphone(
    image: np.ndarray, f: _FaceFrame, occ: Occlusion, rng: np.random.Generator
) -> np.ndarray:
    """A handheld or stand microphone: a mesh ball in front of the mouth, a handle below."""
    h, w = image.shape[:2]
    s = occ.side
    head = f.to_image([(s * 0.15, f.mouth_y + 0.1)])[0]
    foot = f.to_image([(s * 0.45, f.mouth_y + 3.0)])[0]
    radius = max(2, round(0.42 * f.d))
    alpha = np.zeros((h, w), np.float32)
    cv2.line(
        alpha,
        tuple(map(int, head)),
        tuple(map(int, foot)),
        1.0,
        max(2, round(0.3 * f.d)),
        cv2.LINE_AA,
    )
    cv2.circle(alpha, tuple(map(int, head)), radius, 1.0, -1, cv2.LINE_AA)
    layer = np.empty((h, w, 3), np.float32)
    layer[...] = (38, 38, 40)
    ball = np.zeros((h, w), np.uint8)
    cv2.circle(ball, tuple(map(int, head)), radius, 255, -1, cv2.LINE_AA)
    layer[ball > 0] = (110, 110, 112)  # the metal grille
    yy, xx = np.mgrid[0:h, 0:w]
    grid = (((xx + yy) % max(2, round(0.12 * f.d))) == 0) | (
        ((xx - yy) % max(2, round(0.12 * f.d))) == 0
    )
    layer[(ball > 0) & grid] *= 0.6
    # Specular highlight on the ball.
    hl = head + np.array([-0.35, -0.35]) * radius
    glow = np.zeros((h, w), np.float32)
    cv2.circle(glow, tuple(map(int, hl)), max(1, radius // 3), 1.0, -1, cv2.LINE_AA)
    glow = cv2.GaussianBlur(glow, (0, 0), max(1.0, radius / 4))
    layer += 90 * glow[..., None]
    layer *= _lighting(image, alpha, f.d)[..., None]
    return _blend(image, layer, _soft(alpha, f.d))


_DRAW = {
    "surgical": _draw_mask,
    "cloth": _draw_mask,
    "hand": _draw_hand,
    "microphone": _draw_microphone,
}


def draw_occlusion(
    image: np.ndarray, kps: np.ndarray, occlusion: Occlusion, seed: int = 0
) -> np.ndarray:
    """A copy of BGR ``image`` with ``occlusion`` drawn over the lower face whose five
    keypoints (left eye, right eye, nose, left and right mouth corner) are ``kps``."""
    kps = np.asarray(kps, np.float32).reshape(5, 2)
    f = _face_frame(kps)
    # Draw in a window around the face only: enrollment photos can be many megapixels.
    h, w = image.shape[:2]
    reach = 4.0 * f.d
    x0, y0 = (max(0, int(v - reach)) for v in kps.min(axis=0))
    x1, y1 = int(min(w, kps[:, 0].max() + reach)), int(min(h, kps[:, 1].max() + reach))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ValueError("keypoints outside the image")
    window = np.ascontiguousarray(image[y0:y1, x0:x1])
    drawn = _DRAW[occlusion.kind](
        window, _face_frame(kps - [x0, y0]), occlusion, np.random.default_rng(seed)
    )
    out = image.copy()
    out[y0:y1, x0:x1] = drawn
    return out
