"""Masks, hands and microphones, look-alike strangers, and scoring impostor minutes.

Covers rollcall/enrollment/masks.py (drawing), rollcall/synthetic/occlusion.py
(occlusion spans in generated meetings), rollcall/synthetic/lookalikes.py and
the impostor count of rollcall/synthetic/evaluation.py. The masked-meeting
end-to-end test analyses a short rendered meeting with the real models.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from rollcall.enrollment.masks import (
    ENROLLMENT_MASKS,
    GENERATOR_COLOURS,
    KINDS,
    Occlusion,
    draw_occlusion,
    random_occlusion,
)
from rollcall.synthetic.evaluation import (
    LookalikePool,
    build_test_meeting,
    lfw_part,
    save_photos,
    score_report,
)
from rollcall.synthetic.lookalikes import mean_embedding, pick_lookalikes
from rollcall.synthetic.meeting import (
    GroundTruth,
    MeetingRenderer,
    MeetingScript,
    OcclusionSpan,
    Participant,
    WebcamProfile,
    ground_truth,
    load_faces_dir,
    render_meeting,
)
from rollcall.synthetic.occlusion import (
    add_random_occlusions,
    detector_keypoints,
    with_occlusions,
)
from rollcall.types import AttendanceReport, StudentAttendance


@pytest.fixture(scope="session")
def faces(faces_dir) -> dict[str, list[np.ndarray]]:
    return load_faces_dir(faces_dir)


@pytest.fixture(scope="session")
def keypoints(plugin_manager):
    return detector_keypoints(plugin_manager)


def _regions(kps: np.ndarray) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(eyes, mouth) pixel boxes around the keypoints."""
    (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = kps.astype(int)
    eyes = (slice(min(ly, ry) - 3, max(ly, ry) + 3), slice(lx - 3, rx + 4))
    mouth = (slice(min(mly, mry) - 3, max(mly, mry) + 4), slice(mlx, mrx + 1))
    return eyes, mouth


@pytest.mark.parametrize("kind", KINDS)
def test_occlusion_covers_the_mouth_and_leaves_the_eyes(faces, keypoints, kind):
    photo = faces[sorted(faces)[0]][0]
    kps = keypoints(photo)
    out = draw_occlusion(photo, kps, Occlusion(kind, GENERATOR_COLOURS["surgical"][0]), seed=1)
    assert out.shape == photo.shape and out.dtype == np.uint8
    eyes, mouth = _regions(kps)
    diff = np.abs(out.astype(int) - photo.astype(int)).mean(axis=2)
    assert diff[eyes].mean() < 3.0, kind  # the eyes stay visible
    assert diff[mouth].mean() > 12.0, kind  # the mouth is hidden
    # Shaded like the photo, not a flat sticker: the covered area is not one colour.
    if kind in ("surgical", "cloth"):
        assert out[mouth].reshape(-1, 3).std(axis=0).max() > 1.0


def test_occlusion_follows_the_keypoints(faces, keypoints):
    photo = faces[sorted(faces)[1]][0]
    kps = keypoints(photo)
    shifted = kps + np.array([30.0, 10.0], np.float32)
    a = draw_occlusion(photo, kps, ENROLLMENT_MASKS[0])
    b = draw_occlusion(photo, shifted, ENROLLMENT_MASKS[0])
    _, mouth = _regions(shifted)
    assert np.abs(b.astype(int) - photo.astype(int))[mouth].mean() > 12.0
    assert not np.array_equal(a, b)


def test_bad_occlusions_are_refused():
    with pytest.raises(ValueError, match="kind"):
        Occlusion("scarf")
    with pytest.raises(ValueError, match="pattern"):
        Occlusion("cloth", pattern="tartan")
    with pytest.raises(ValueError, match="keypoints"):
        draw_occlusion(np.zeros((50, 50, 3), np.uint8), np.zeros((5, 2)), Occlusion("surgical"))


def test_enrollment_masks_are_never_drawn_by_the_generator():
    generated = {(o.kind, o.colour, o.pattern) for o in map(random_occlusion, _rngs(300))}
    assert {k for k, _, _ in generated} == {"surgical", "cloth"}
    assert len({c for _, c, _ in generated}) >= 8  # several colours
    enrollment_colours = {m.colour for m in ENROLLMENT_MASKS}
    assert not enrollment_colours & {c for _, c, _ in generated}


def _rngs(n: int):
    return (np.random.default_rng(i) for i in range(n))


def test_occlusion_spans_are_rendered_and_recorded(faces, keypoints):
    name = sorted(faces)[2]
    person = Participant("p1", "Pat", tuple(faces[name][:1]), WebcamProfile(motion=0.0))
    masked = with_occlusions(person, [(10.0, 20.0, Occlusion("cloth", (90, 45, 25)))], keypoints)
    script = MeetingScript(
        duration_s=30.0, participants=(masked,), fps=2, seed=3, speaker_highlight=False
    )
    renderer = MeetingRenderer(script)
    before, during, after = (renderer.frame(round(t * 2)) for t in (5.0, 15.0, 25.0))
    rect = renderer.placements(15.0)[0].rect
    lower = (slice(rect.y + rect.h // 2, rect.y + rect.h * 3 // 4), slice(rect.x, rect.x + rect.w))
    assert np.abs(during.astype(int) - before.astype(int))[lower].mean() > 5.0
    assert np.abs(after.astype(int) - before.astype(int))[lower].mean() < 3.0
    truth = ground_truth(script)
    (span,) = truth.participant("p1").occlusions
    assert span == {
        "start": 10.0,
        "end": 20.0,
        "kind": "cloth",
        "colour": [90, 45, 25],
        "pattern": "plain",
        "side": 1,
    }
    again = GroundTruth.from_dict(truth.to_dict())
    assert again.participant("p1").occlusions == [span]
    old = truth.to_dict()
    del old["participants"][0]["occlusions"]  # truth files written before occlusions existed
    assert GroundTruth.from_dict(old).participant("p1").occlusions == []


def test_overlapping_or_incomplete_spans_are_refused(faces, keypoints):
    person = Participant("p1", "Pat", tuple(faces[sorted(faces)[0]][:2]))
    occ = Occlusion("surgical")
    with pytest.raises(ValueError, match="overlap"):
        with_occlusions(person, [(0.0, 10.0, occ), (5.0, 15.0, occ)], keypoints)
    assert with_occlusions(person, [(0.0, 10.0, occ)], keypoints).occlusions
    with pytest.raises(ValueError, match="every photo"):
        Participant(
            "p2", "P", person.images, occlusions=(OcclusionSpan(0, 1, occ, person.images[:1]),)
        )


def test_random_occlusions_are_deterministic_and_sized(faces, keypoints):
    people = [Participant(n, n, tuple(faces[n][:1])) for n in sorted(faces)[:6]]
    a = add_random_occlusions(people, keypoints, duration_s=120, seed=5, mask_share=0.5)
    b = add_random_occlusions(people, keypoints, duration_s=120, seed=5, mask_share=0.5)
    masked = [p for p in a if p.occlusions]
    assert len(masked) == 3
    for p in masked:
        (span,) = p.occlusions
        assert (span.start, span.end) == (0.0, 120.0) and span.occlusion.kind in (
            "surgical",
            "cloth",
        )
    for x, y in zip(a, b, strict=True):
        assert [s.occlusion for s in x.occlusions] == [s.occlusion for s in y.occlusions]
    hands = add_random_occlusions(people, keypoints, duration_s=300, seed=5, hand_share=1.0)
    for p in hands:
        assert p.occlusions
        for span in p.occlusions:
            assert span.occlusion.kind in ("hand", "microphone")
            assert 10.0 <= span.end - span.start <= 40.0


def test_pick_lookalikes_takes_the_nearest_unused_pool_face():
    e = np.eye(4, dtype=np.float32)
    students = {"s1": e[0], "s2": e[1]}
    pool = {
        "near-s1": (e[0] * 0.9 + e[2] * 0.1),
        "nearest-s1": (e[0] * 0.95 + e[3] * 0.05),
        "near-s2": (e[1] * 0.8 + e[2] * 0.2),
        "far": e[3],
    }
    pool = {k: v / np.linalg.norm(v) for k, v in pool.items()}
    picked = {la.student: la.stranger for la in pick_lookalikes(students, pool)}
    assert picked == {"s1": "nearest-s1", "s2": "near-s2"}
    # A pool face goes to one student only: the one it resembles most.
    one = {"x": pool["nearest-s1"]}
    assert [la.student for la in pick_lookalikes(students, one)] == ["s1"]


def test_lfw_parts_are_fixed_halves():
    names = [f"Person_{i}" for i in range(400)]
    tune = [n for n in names if lfw_part(n) == "tune"]
    assert 150 < len(tune) < 250
    assert [lfw_part(n) for n in names] == [lfw_part(n) for n in names]


def test_lookalikes_are_seated_for_absent_students(faces, plugin_manager):
    names = sorted(faces)
    meeting_people = {n: faces[n] for n in names[:12]}
    pool = LookalikePool.build(plugin_manager, {n: faces[n][:2] for n in names[12:]})
    meeting = build_test_meeting(
        meeting_people,
        seed=4,
        n_students=6,
        n_absent=2,
        n_strangers=2,
        duration_s=60.0,
        pm=plugin_manager,
        lookalikes=pool,
    )
    absent = [s for s in meeting.students if s not in {p.key for p in meeting.script.participants}]
    assert len(absent) == 2 and len(meeting.lookalikes) == 2
    keys = {p.key for p in meeting.script.participants}
    for la in meeting.lookalikes:
        assert la.student in absent
        assert (
            f"lookalike:{la.stranger}" in keys and f"lookalike:{la.stranger}" in meeting.strangers
        )
        # It is the pool's nearest face to the student.
        student = mean_embedding(plugin_manager, meeting.enroll[la.student])
        sims = {n: float(e @ student) for n, e in pool.embeddings.items()}
        assert la.similarity == pytest.approx(max(sims.values()), abs=1e-3)
        assert sims[la.stranger] == pytest.approx(max(sims.values()), abs=1e-3)


def _report(rows: dict[str, list[int]]) -> AttendanceReport:
    students = tuple(
        StudentAttendance(
            student_id=sid,
            name=sid,
            minutes=tuple(minutes),
            present_minutes=sum(minutes),
            attendance_pct=0.0,
            status="present",
        )
        for sid, minutes in rows.items()
    )
    return AttendanceReport(
        course_id="C", meeting_title="t", start_time=None, duration_s=180.0, students=students
    )


def test_impostor_minutes_count_minutes_with_the_student_off_screen(faces):
    name = sorted(faces)[0]
    person = Participant("s1", "S", tuple(faces[name][:1]))
    script = MeetingScript(duration_s=180.0, participants=(person,), fps=1)
    truth = ground_truth(script)
    truth.participants[0].visible_seconds_per_minute = [60.0, 10.0, 0.0]
    score = score_report(_report({"s1": [1, 1, 1], "s2": [0, 1, 0]}), truth, 30)
    # s1: minute 1 (10 s seen) is a false present but not an impostor; minute 2 is both.
    # s2 never came: its one present minute is an impostor minute.
    assert (score.true_present, score.false_present, score.impostor_minutes) == (1, 3, 2)
    assert score.absent_marked == 1


@pytest.fixture(scope="session")
def masked_meeting(faces, plugin_manager, tmp_path_factory):
    """A short meeting where every student wears a mask the whole time."""
    meeting = build_test_meeting(
        faces,
        seed=21,
        n_students=7,
        n_absent=1,
        n_strangers=1,
        duration_s=120.0,
        pm=plugin_manager,
        mask_share=1.0,
        hard_fraction=0.0,
        late_join_prob=0.0,
        leave_early_prob=0.0,
        rejoin_prob=0.0,
        camera_off_prob=0.0,
    )
    video = tmp_path_factory.mktemp("masked") / "masked.mp4"
    truth = render_meeting(meeting.script, video)
    return meeting, video, truth


def _analyse(meeting, video, truth, config, face_models, plugin_manager, masked: bool):
    from rollcall.enrollment.enroll import enroll_photos
    from rollcall.pipeline.orchestrator import analyze_recording
    from rollcall.reports.results import meeting_report
    from rollcall.store import storage

    settings = config.enrollment.model_copy(update={"masked_copies": masked})
    with tempfile.TemporaryDirectory() as tmp:
        db = storage.open_db(Path(tmp))
        storage.add_course(db, "M", "masked")
        for student_id, images in meeting.enroll.items():
            paths = save_photos(images, Path(tmp) / "photos" / student_id)
            enroll_photos(
                db, plugin_manager, face_models.model_key, "M", student_id, paths, settings
            )
        outcome = analyze_recording(db, plugin_manager, face_models, config, video, "M")
        report = meeting_report(db, outcome.meeting_id, rules=config.attendance)
    score = score_report(report, truth, config.attendance.min_seconds_per_minute)
    expected = truth.presence_matrix(config.attendance.min_seconds_per_minute)
    # needs-review minutes in which the student was really there (an instructor confirms them)
    review_true = sum(
        1
        for s in report.students
        for m in s.review_minutes
        if expected.get(s.student_id, [0] * (m + 1))[m]
    )
    return score, review_true


def test_masked_meeting_is_recognised(masked_meeting, config, face_models, plugin_manager):
    meeting, video, truth = masked_meeting
    assert all(p.occlusions for p in meeting.script.participants)
    score, review_true = _analyse(
        meeting, video, truth, config, face_models, plugin_manager, masked=True
    )
    print(f"masked meeting: {score}, {review_true} true minutes in review")
    # Measured under the margin rule of rollcall_identify_tracks: 8 of 12 student-minutes
    # present and 2 more sent to review (masked faces are close to several students, so
    # the rule asks an instructor rather than guess); before that rule, 10 of 12 present
    # with the masked enrollment copies and 8 without them.
    assert score.recall >= 0.6
    assert (score.true_present + review_true) / (score.true_present + score.missed) >= 0.8
    assert score.impostor_minutes == 0 and score.absent_marked == 0


def test_lfw_halves_are_disjoint():
    import os

    from rollcall.synthetic.evaluation import lfw_dir

    root = lfw_dir(Path(__file__).resolve().parents[1])
    if not (root / "people").is_dir():
        pytest.skip(f"{root} not found (set ROLLCALL_LFW_DIR)")
    assert os.environ.get("ROLLCALL_LFW_DIR") or root.name == "faces-lfw"
    from rollcall.synthetic.evaluation import lfw_names

    tune_people, tune_strangers = lfw_names(root, "tune")
    test_people, test_strangers = lfw_names(root, "test")
    assert not set(tune_people) & set(test_people)
    assert not set(tune_strangers) & set(test_strangers)
    assert len(tune_people) + len(test_people) >= 400  # hundreds of identities each side
    assert min(len(tune_people), len(test_people)) >= 150
    assert min(len(tune_strangers), len(test_strangers)) >= 300
