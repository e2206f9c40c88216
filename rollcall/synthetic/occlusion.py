"""Masks, hands and microphones for generated meetings.

The drawing itself is :mod:`rollcall.enrollment.masks` (enrollment draws its
own masked copies the same way). Here the participants of a meeting get
occlusion spans: which photos, with what drawn on them, from when to when.
Keypoints come from the detector run on each source photo.

Typical use::

    kps = detector_keypoints(pm)
    people = add_random_occlusions(people, kps, duration_s=180, seed=1, mask_share=1.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pluggy

from rollcall.enrollment.masks import MASK_KINDS, Occlusion, draw_occlusion, random_occlusion
from rollcall.synthetic.meeting import OcclusionSpan, Participant
from rollcall.types import SampledFrame

KeypointsOf = Callable[[np.ndarray], "np.ndarray | None"]


def detector_keypoints(pm: pluggy.PluginManager) -> KeypointsOf:
    """A function giving the five keypoints of the most confident face in a photo
    (None when the detector finds none), using the pipeline's detector."""

    def keypoints(image: np.ndarray) -> np.ndarray | None:
        faces = pm.hook.rollcall_detect_faces(frame=SampledFrame(0, 0.0, image)) or []
        if not faces:
            return None
        return np.asarray(max(faces, key=lambda f: f.score).kps, np.float32)

    return keypoints


def occluded_photos(
    images: Sequence[np.ndarray], keypoints_of: KeypointsOf, occlusion: Occlusion, seed: int
) -> tuple[np.ndarray, ...]:
    """``images`` with ``occlusion`` drawn on each; a photo without a detectable face
    is left as it is."""
    out = []
    for i, image in enumerate(images):
        kps = keypoints_of(image)
        out.append(image if kps is None else draw_occlusion(image, kps, occlusion, seed + i))
    return tuple(out)


def with_occlusions(
    participant: Participant,
    spans: Sequence[tuple[float, float, Occlusion]],
    keypoints_of: KeypointsOf,
    seed: int = 0,
) -> Participant:
    """``participant`` wearing/holding each occlusion from its start to its end (seconds)."""
    made = [
        OcclusionSpan(a, b, occ, occluded_photos(participant.images, keypoints_of, occ, seed + k))
        for k, (a, b, occ) in enumerate(spans)
    ]
    return dataclasses.replace(participant, occlusions=(*participant.occlusions, *made))


def add_random_occlusions(
    participants: Sequence[Participant],
    keypoints_of: KeypointsOf,
    *,
    duration_s: float,
    seed: int,
    mask_share: float = 0.0,
    hand_share: float = 0.0,
) -> list[Participant]:
    """Masks and brief hands or microphones for a share of the participants.

    ``mask_share`` of them wear a mask (surgical or cloth, random colour and
    pattern) the whole meeting; ``hand_share`` of the others hold a hand or a
    microphone in front of the mouth for one to three 10-40 s stretches.
    Deterministic for a seed.
    """
    rng = np.random.default_rng([seed, 8])
    n = len(participants)
    order = rng.permutation(n)
    n_mask = round(mask_share * n)
    n_hand = round(hand_share * (n - n_mask))
    masked = set(order[:n_mask].tolist())
    handed = set(order[n_mask : n_mask + n_hand].tolist())
    out = []
    for i, p in enumerate(participants):
        prng = np.random.default_rng([seed, i, 9])
        spans: list[tuple[float, float, Occlusion]] = []
        if i in masked:
            spans.append((0.0, float(duration_s), random_occlusion(prng, MASK_KINDS)))
        elif i in handed:
            t = float(prng.uniform(0, 0.3 * duration_s))
            for _ in range(int(prng.integers(1, 4))):
                length = float(prng.uniform(10.0, 40.0))
                if t + length > duration_s:
                    break
                spans.append((t, t + length, random_occlusion(prng, ("hand", "microphone"))))
                t += length + float(prng.uniform(10.0, 60.0))
        out.append(
            with_occlusions(p, spans, keypoints_of, seed=seed * 1000 + i * 10) if spans else p
        )
    return out
