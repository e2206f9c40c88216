"""Scoring attendance against a synthetic meeting's ground truth.

Shared by the end-to-end tests and ``benchmarks/accuracy.py``: build a test
meeting from a folder of labelled photos (enroll some photos of each student,
show the *other* photos in the video, add strangers who are not enrolled,
optionally masks and look-alike strangers of the absent students), then
compare the stored per-minute matrix with the generator's truth.

``../shared/faces-lfw`` (``ROLLCALL_LFW_DIR``) is split once, by a hash of
each name, into a part for tuning thresholds (``benchmarks/calibrate.py``)
and a held-out part for measuring (``benchmarks/accuracy.py``):
:func:`lfw_part`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pluggy

from rollcall.synthetic.lookalikes import (
    Lookalike,
    lookalike_participants,
    mean_embedding,
    pick_lookalikes,
)
from rollcall.synthetic.meeting import (
    GroundTruth,
    MeetingScript,
    load_faces_dir,
    participants_from_faces,
    random_script,
)
from rollcall.synthetic.occlusion import add_random_occlusions, detector_keypoints
from rollcall.types import AttendanceReport

#: Parts of faces-lfw: names whose hash falls in TUNE_SHARE go to tuning, the rest is held out.
TUNE_SHARE = 0.5


def lfw_dir(repo_root: Path) -> Path:
    """The large labelled face set: ``ROLLCALL_LFW_DIR``, else ``../shared/faces-lfw``
    beside the repository."""
    return Path(os.environ.get("ROLLCALL_LFW_DIR") or repo_root.parent / "shared" / "faces-lfw")


def lfw_part(name: str) -> str:
    """``"tune"`` or ``"test"``: the fixed half of faces-lfw a person belongs to."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32
    return "tune" if h < TUNE_SHARE else "test"


def lfw_names(root: Path, part: str) -> tuple[list[str], list[str]]:
    """(people, strangers) names of one part (``"tune"``/``"test"``) of faces-lfw."""
    people = sorted(p.name for p in (root / "people").iterdir() if p.is_dir())
    strangers = sorted(f.stem for f in (root / "strangers").glob("*.jpg"))
    return (
        [n for n in people if lfw_part(n) == part],
        [n for n in strangers if lfw_part(n) == part],
    )


def load_lfw(
    root: Path, part: str
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    """(people, strangers) photos of one part (``"tune"``/``"test"``) of faces-lfw;
    strangers map each name to its one photo."""
    import cv2

    people_names, stranger_names = lfw_names(root, part)
    wanted = set(people_names)
    people = {n: v for n, v in load_faces_dir(root / "people").items() if n in wanted}
    strangers = {}
    for name in stranger_names:
        image = cv2.imread(str(root / "strangers" / f"{name}.jpg"), cv2.IMREAD_COLOR)
        if image is not None:
            strangers[name] = [image]
    return people, strangers


@dataclass(frozen=True)
class LookalikePool:
    """Faces that may be seated as look-alikes of absent students, with their embeddings."""

    photos: Mapping[str, Sequence[np.ndarray]]
    embeddings: Mapping[str, np.ndarray]

    @classmethod
    def build(
        cls, pm: pluggy.PluginManager, photos: Mapping[str, Sequence[np.ndarray]]
    ) -> LookalikePool:
        embeddings = {}
        for name, images in photos.items():
            emb = mean_embedding(pm, images)
            if emb is not None:
                embeddings[name] = emb
        return cls({n: photos[n] for n in embeddings}, embeddings)


@dataclass(frozen=True)
class TestMeeting:
    script: MeetingScript
    enroll: dict[str, list[np.ndarray]]  # student id -> enrollment photos (BGR)
    students: list[str]  # enrolled ids (some may be absent from the video)
    strangers: list[str]  # people in the video who are not enrolled
    lookalikes: list[Lookalike] = field(default_factory=list)  # seated for absent students


def build_test_meeting(
    faces_dir: Path | Mapping[str, list[np.ndarray]],
    *,
    seed: int,
    n_students: int,
    n_absent: int,
    n_strangers: int,
    duration_s: float,
    enroll_photos: int = 3,
    hard_fraction: float = 0.3,
    pm: pluggy.PluginManager | None = None,
    lookalikes: LookalikePool | None = None,
    mask_share: float = 0.0,
    hand_share: float = 0.0,
    **script_options,
) -> TestMeeting:
    """A meeting with ``n_students`` enrolled (``n_absent`` of them never join) and
    ``n_strangers`` unenrolled people; enrollment and video photos are disjoint.

    ``faces_dir`` is a folder of labelled photos or the photos already loaded.
    With ``lookalikes`` (needs ``pm``) each absent student's most similar pool
    face joins the meeting as a stranger. ``mask_share`` / ``hand_share`` (need
    ``pm``) put masks, hands and microphones on the people in the video
    (:func:`rollcall.synthetic.occlusion.add_random_occlusions`);
    ``hard_fraction`` of the webcams are cheap ones."""
    faces = faces_dir if isinstance(faces_dir, Mapping) else load_faces_dir(Path(faces_dir))
    rng = np.random.default_rng(seed)
    people = [p for p in rng.permutation(sorted(faces)) if len(faces[p]) > enroll_photos]
    if n_students + n_strangers > len(people):
        raise ValueError(f"{faces_dir} has only {len(people)} usable people")
    students = people[:n_students]
    strangers = people[n_students : n_students + n_strangers]
    absent = set(students[:n_absent])
    enroll, shown = {}, {}
    for person in students:
        order = rng.permutation(len(faces[person]))
        enroll[person] = [faces[person][i] for i in order[:enroll_photos]]
        shown[person] = [faces[person][i] for i in order[enroll_photos:]]
    for person in strangers:
        shown[person] = list(faces[person])
    in_video = {p: shown[p] for p in [*students, *strangers] if p not in absent}
    participants = participants_from_faces(in_video, seed=seed, hard_fraction=hard_fraction)
    seated: list[Lookalike] = []
    if lookalikes is not None and absent:
        if pm is None:
            raise ValueError("look-alike strangers need the plugin manager (pm)")
        wanted = {}
        for person in sorted(absent):
            emb = mean_embedding(pm, enroll[person])
            if emb is not None:
                wanted[person] = emb
        used = {*students, *strangers}  # never the student themself or someone already there
        pool = {n: e for n, e in lookalikes.embeddings.items() if n not in used}
        seated = pick_lookalikes(wanted, pool)
        participants += lookalike_participants(
            seated, lookalikes.photos, seed=seed, hard_fraction=hard_fraction
        )
    if mask_share or hand_share:
        if pm is None:
            raise ValueError("masks and hands need the plugin manager (pm) for keypoints")
        participants = add_random_occlusions(
            participants,
            detector_keypoints(pm),
            duration_s=duration_s,
            seed=seed,
            mask_share=mask_share,
            hand_share=hand_share,
        )
    script = random_script(participants, duration_s=duration_s, seed=seed, **script_options)
    return TestMeeting(
        script=script,
        enroll=enroll,
        students=list(students),
        strangers=[*strangers, *(f"lookalike:{la.stranger}" for la in seated)],
        lookalikes=seated,
    )


@dataclass(frozen=True)
class Score:
    true_present: int
    false_present: int  # minutes marked present that were not
    missed: int  # minutes present in truth but not marked
    true_absent: int
    strangers_marked: int  # always 0: strangers cannot be in the report; kept for clarity
    absent_marked: int  # never-present students marked present in any minute
    #: Minutes in which a student was marked present while not on screen at all (0 s
    #: visible that minute): someone else was taken for them.
    impostor_minutes: int = 0

    @property
    def precision(self) -> float:
        marked = self.true_present + self.false_present
        return self.true_present / marked if marked else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_present + self.missed
        return self.true_present / actual if actual else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score_report(
    report: AttendanceReport, truth: GroundTruth, min_seconds_per_minute: float
) -> Score:
    """Per-minute confusion counts of ``report`` against ``truth``."""
    expected = truth.presence_matrix(min_seconds_per_minute)
    tp = fp = fn = tn = absent_marked = impostor = 0
    for row in report.students:
        want = expected.get(row.student_id, [0] * len(row.minutes))
        seen = (
            truth.participant(row.student_id).visible_seconds_per_minute
            if row.student_id in expected
            else [0.0] * len(row.minutes)
        )
        for m, (got, exp) in enumerate(zip(row.minutes, want, strict=False)):
            tp += got and exp
            fp += got and not exp
            fn += exp and not got
            tn += not got and not exp
            impostor += bool(got) and (m >= len(seen) or seen[m] <= 0.0)
        if not any(want) and any(row.minutes):
            absent_marked += 1
    return Score(tp, fp, fn, tn, 0, absent_marked, impostor)


def save_photos(images: list[np.ndarray], folder: Path) -> list[Path]:
    """Write generated enrollment photos as ``folder/0.jpg, 1.jpg...`` for the enrollment
    commands, which take files; returns their paths."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i}.jpg"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
