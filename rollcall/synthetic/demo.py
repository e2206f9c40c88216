"""``rollcall demo``: a complete run on a meeting built from images that ship with insightface.

The six faces of insightface's bundled ``data/images/t1.jpg`` become five
enrolled students and one stranger. Each student is enrolled from four
augmented copies of their face; the video shows *other* augmentations through
cheap-webcam filters. The three-minute meeting has a late join, an early
leave, a camera-off stretch and a drop-and-rejoin. Everything (database,
photos, video, ground truth, reports) goes into the output folder, so the demo
never touches the real data directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from rollcall.config import Config
from rollcall.store import storage
from rollcall.synthetic.evaluation import score_report
from rollcall.synthetic.meeting import (
    GroundTruth,
    MeetingScript,
    Participant,
    Presence,
    augment_photo,
    faces_from_group_photo,
    random_webcam,
    render_meeting,
    truth_path_for,
)

COURSE = "DEMO101"
DURATION_S = 180.0
# (student id, display name, presence) for the six faces of t1.jpg, left to right.
CAST = [
    ("S001", "Ana Lima", Presence.always(DURATION_S)),
    ("S002", "Ben Okafor", Presence(connected=((75.0, DURATION_S),))),  # joins late
    ("S003", "Chen Wei", Presence(connected=((0.0, 110.0),))),  # leaves early
    ("S004", "Dana Cohen", Presence(connected=((0.0, DURATION_S),), camera_off=((40.0, 100.0),))),
    ("S005", "Eli Novak", Presence(connected=((0.0, 50.0), (80.0, DURATION_S)))),  # rejoins
    ("X-stranger", "Guest 7", Presence.always(DURATION_S)),  # not enrolled
]
ENROLL_COPIES = 4


def bundled_group_photo() -> Path:
    import insightface

    return Path(os.path.dirname(insightface.__file__)) / "data" / "images" / "t1.jpg"


def build_demo(
    out: Path, detect: Callable[[np.ndarray], list]
) -> tuple[dict[str, list[Path]], Path, GroundTruth]:
    """Write enrollment photos and render the meeting; returns (photos, video, truth)."""
    image = cv2.imread(str(bundled_group_photo()))
    if image is None:
        raise FileNotFoundError(f"insightface's sample image {bundled_group_photo()} is missing")
    faces = sorted(detect(image), key=lambda f: float(f.bbox[0]))
    if len(faces) < len(CAST):
        raise RuntimeError(f"expected {len(CAST)} faces in t1.jpg, the detector found {len(faces)}")
    crops = faces_from_group_photo(image, [f.bbox for f in faces[: len(CAST)]])
    rng = np.random.default_rng(7)
    photos: dict[str, list[Path]] = {}
    participants = []
    for (student_id, name, _), crop in zip(CAST, crops, strict=True):
        if not student_id.startswith("X"):
            folder = out / "photos" / student_id
            folder.mkdir(parents=True, exist_ok=True)
            photos[student_id] = []
            for k in range(ENROLL_COPIES):
                path = folder / f"{k + 1}.jpg"
                cv2.imwrite(str(path), augment_photo(crop, rng, strength=1.0))
                photos[student_id].append(path)
        shown = tuple(augment_photo(crop, rng, strength=0.8) for _ in range(2))
        participants.append(
            Participant(key=student_id, display_name=name, images=shown, webcam=random_webcam(rng))
        )
    script = MeetingScript(
        duration_s=DURATION_S,
        participants=tuple(participants),
        presence={sid: p for sid, _, p in CAST},
        fps=5,
        seed=7,
        title="Demo: Intro to CS, week 1",
    )
    video = out / "demo-meeting.mp4"
    truth = render_meeting(script, video)
    return photos, video, truth


def run_demo(config: Config, console: Console, out: Path, run_analysis) -> int:
    """Build the demo, enroll, analyse, print the matrix against the truth."""
    from rollcall.enrollment.enroll import enroll_photos
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = config.model_copy(
        update={"storage": config.storage.model_copy(update={"home": str(out / "data")})}
    )
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models)
    detector = pm.get_plugin("detector")
    console.print(
        f"building a demo meeting in {out} from {bundled_group_photo().name} ...", soft_wrap=True
    )
    photos, video, truth = build_demo(out, detector.detect)
    db = storage.open_db(config.home)
    storage.add_course(db, COURSE, "Demo course")
    names = {sid: name for sid, name, _ in CAST}
    for student_id, paths in photos.items():
        result = enroll_photos(
            db,
            pm,
            models.model_key,
            COURSE,
            student_id,
            paths,
            config.enrollment,
            name=names[student_id],
        )
        console.print(
            f"enrolled {student_id} {names[student_id]}: {result.accepted} of "
            f"{len(paths)} photos accepted",
            highlight=False,
        )
    report = run_analysis(
        config, console, video, COURSE, out / "report", "Demo: Intro to CS, week 1"
    ).report
    expected = truth.presence_matrix(config.attendance.min_seconds_per_minute)
    table = Table(
        "student", "detected per minute", "ground truth", title="detected vs. ground truth"
    )
    for row in report.students:
        want = expected.get(row.student_id, [0] * len(row.minutes))
        table.add_row(
            f"{row.student_id} {row.name}",
            " ".join(map(str, row.minutes)),
            " ".join(map(str, want)),
        )
    console.print(table)
    score = score_report(report, truth, config.attendance.min_seconds_per_minute)
    console.print(
        f"per-minute precision {score.precision:.2f}, recall {score.recall:.2f}; the stranger "
        f"(Guest 7) is in {report.unknown_clusters} unknown-face cluster(s), not the roster.",
        highlight=False,
    )
    # Paths whole on one line each (copied into other commands), however narrow the terminal.
    console.print(
        f"video: {video}\nground truth: {truth_path_for(video)}\nreports: {out / 'report'}",
        highlight=False,
        soft_wrap=True,
    )
    return 0
