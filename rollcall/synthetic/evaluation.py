"""Scoring attendance against a synthetic meeting's ground truth.

Shared by the end-to-end tests and ``benchmarks/accuracy.py``: build a test
meeting from a folder of labelled photos (enroll some photos of each student,
show the *other* photos in the video, add strangers who are not enrolled),
then compare the stored per-minute matrix with the generator's truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rollcall.synthetic.meeting import (
    GroundTruth,
    MeetingScript,
    load_faces_dir,
    participants_from_faces,
    random_script,
)
from rollcall.types import AttendanceReport


@dataclass(frozen=True)
class TestMeeting:
    script: MeetingScript
    enroll: dict[str, list[np.ndarray]]  # student id -> enrollment photos (BGR)
    students: list[str]  # enrolled ids (some may be absent from the video)
    strangers: list[str]  # people in the video who are not enrolled


def build_test_meeting(
    faces_dir: Path,
    *,
    seed: int,
    n_students: int,
    n_absent: int,
    n_strangers: int,
    duration_s: float,
    enroll_photos: int = 3,
    **script_options,
) -> TestMeeting:
    """A meeting with ``n_students`` enrolled (``n_absent`` of them never join) and
    ``n_strangers`` unenrolled people; enrollment and video photos are disjoint."""
    faces = load_faces_dir(faces_dir)
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
    participants = participants_from_faces(in_video, seed=seed)
    script = random_script(participants, duration_s=duration_s, seed=seed, **script_options)
    return TestMeeting(script=script, enroll=enroll, students=list(students), strangers=strangers)


@dataclass(frozen=True)
class Score:
    true_present: int
    false_present: int  # minutes marked present that were not
    missed: int  # minutes present in truth but not marked
    true_absent: int
    strangers_marked: int  # always 0: strangers cannot be in the report; kept for clarity
    absent_marked: int  # never-present students marked present in any minute

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
    tp = fp = fn = tn = absent_marked = 0
    for row in report.students:
        want = expected.get(row.student_id, [0] * len(row.minutes))
        for got, exp in zip(row.minutes, want, strict=False):
            tp += got and exp
            fp += got and not exp
            fn += exp and not got
            tn += not got and not exp
        if not any(want) and any(row.minutes):
            absent_marked += 1
    return Score(tp, fp, fn, tn, 0, absent_marked)


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
