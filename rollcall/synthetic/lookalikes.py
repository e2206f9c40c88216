"""Look-alike strangers: for each absent student, the most similar face of a pool.

An absent student is falsely marked present when someone who resembles them
sits in the class. To test that on purpose, :func:`pick_lookalikes` ranks a
pool of unenrolled faces (e.g. ``faces-lfw/strangers`` and ``people``) by
cosine similarity to each absent student's enrollment photos with the
recognizer's own embeddings and picks the nearest one for each, and
:func:`lookalike_participants` seats them in the meeting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pluggy

from rollcall.synthetic.meeting import Participant, participants_from_faces
from rollcall.types import SampledFrame


def mean_embedding(pm: pluggy.PluginManager, photos: Sequence[np.ndarray]) -> np.ndarray | None:
    """Normalised mean embedding of the most confident face of each photo (None: no face)."""
    vectors = []
    for image in photos:
        frame = SampledFrame(0, 0.0, image)
        faces = pm.hook.rollcall_detect_faces(frame=frame) or []
        if faces:
            best = max(faces, key=lambda f: f.score)
            vectors.append(pm.hook.rollcall_embed_faces(frame=frame, faces=[best])[0])
    if not vectors:
        return None
    mean = np.mean(vectors, axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class Lookalike:
    """``stranger`` (a pool name) is the pool face most similar to ``student``."""

    student: str
    stranger: str
    similarity: float


def pick_lookalikes(
    students: Mapping[str, np.ndarray], pool: Mapping[str, np.ndarray]
) -> list[Lookalike]:
    """For each student (id -> normalised embedding) the most similar pool face
    (name -> normalised embedding), each pool face used at most once; the most
    similar pairs are seated first."""
    names = list(pool)
    if not names or not students:
        return []
    matrix = np.stack([pool[n] for n in names])
    pairs = sorted(
        ((float(s), sid, j) for sid, emb in students.items() for j, s in enumerate(matrix @ emb)),
        reverse=True,
    )
    taken_students: set[str] = set()
    taken_pool: set[int] = set()
    out = []
    for sim, sid, j in pairs:
        if sid in taken_students or j in taken_pool:
            continue
        taken_students.add(sid)
        taken_pool.add(j)
        out.append(Lookalike(sid, names[j], round(sim, 4)))
    return sorted(out, key=lambda x: x.student)


def lookalike_participants(
    lookalikes: Sequence[Lookalike],
    pool_photos: Mapping[str, Sequence[np.ndarray]],
    *,
    seed: int,
    hard_fraction: float = 0.3,
) -> list[Participant]:
    """One participant per look-alike: keyed ``lookalike:<pool name>`` (never a student
    id) and labelled with the stranger's own name."""
    faces = {la.stranger: list(pool_photos[la.stranger]) for la in lookalikes}
    return participants_from_faces(
        faces,
        seed=seed + 7919,
        hard_fraction=hard_fraction,
        keys={name: f"lookalike:{name}" for name in faces},
    )
