"""Emotion and engagement analyzers on real faces from ../shared/faces; their cost per frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rollcall.plugins.emotion import EmotionModel, EmotionPlugin, save_emotion
from rollcall.plugins.emotion_settings import EmotionSettings
from rollcall.plugins.engagement import (
    EngagementPlugin,
    EngagementSettings,
    HeadPoseModel,
    keypoint_pose,
    save_engagement,
)
from rollcall.types import FaceMatch, MeetingContext, Roster, SampledFrame, TrackedFace

SMILING = "Colin_Powell/4.jpg"  # checked with the model: happy 0.999, yaw 4 degrees
FRONTAL = "Colin_Powell/4.jpg"
TURNED_AWAY = (
    "Arnold_Schwarzenegger/1.jpg",
    "Vladimir_Putin/6.jpg",
    "Donald_Rumsfeld/5.jpg",
)  # yaw -36, -38, 39
SETTINGS = EngagementSettings(
    weight_visible=0.4,
    weight_facing=0.4,
    weight_stable=0.2,
    max_yaw_deg=30.0,
    max_pitch_deg=25.0,
    stable_motion=0.25,
    engaged_min_score=60.0,
    partly_min_score=30.0,
)


def roster(n: int = 1) -> Roster:
    return Roster(
        tuple(range(1, n + 1)),
        tuple(f"S{i}" for i in range(n)),
        tuple(f"Student {i}" for i in range(n)),
        np.zeros((n, 4), np.float32),
        tuple(np.zeros((0, 4), np.float32) for _ in range(n)),
    )


def meeting(meeting_id: int = 1, duration_s: float = 60.0) -> MeetingContext:
    return MeetingContext(meeting_id, "CS101", "t", duration_s, 1.0)


def tracked_faces(detector, image) -> list[TrackedFace]:
    faces = detector.detect(image)
    assert faces, "no face found"
    return [TrackedFace(i, f, FaceMatch(0, 0.9)) for i, f in enumerate(faces)]


def run_plugin(plugin, image, faces, n_frames: int = 5) -> dict:
    m = meeting()
    for i in range(n_frames):
        plugin.rollcall_analyze_frame(
            meeting=m, frame=SampledFrame(i, float(i), image), faces=faces
        )
    return plugin.rollcall_finalize_meeting(
        meeting=m, tracks=[], identities={0: 0}, roster=roster()
    )


def test_smiling_face_is_happy(faces_dir, detector, models_dir):
    image = cv2.imread(str(faces_dir / SMILING))
    plugin = EmotionPlugin(
        EmotionModel(str(models_dir)), EmotionSettings(min_face_px=40, min_confidence=0.4)
    )
    result = run_plugin(plugin, image, tracked_faces(detector, image))["emotion"]
    (minute,) = result.minutes
    assert minute.dominant == "happy"
    assert minute.distribution[3] > 0.9
    assert result.students[0].dominant == "happy" and result.cls.dominant == "happy"
    assert result.cls.samples == 5


def test_small_and_unsure_faces_are_skipped_not_guessed(faces_dir, detector, models_dir):
    image = cv2.imread(str(faces_dir / SMILING))
    faces = tracked_faces(detector, image)
    too_big = EmotionPlugin(
        EmotionModel(str(models_dir)), EmotionSettings(min_face_px=1000, min_confidence=0.4)
    )
    result = run_plugin(too_big, image, faces)["emotion"]
    assert result.minutes == () and result.skipped_small == 5
    unsure = EmotionPlugin(
        EmotionModel(str(models_dir)),
        # above the valid range on purpose: every face is "unsure"
        EmotionSettings.model_construct(min_face_px=16, min_confidence=1.01),
    )
    result = run_plugin(unsure, image, faces)["emotion"]
    assert result.minutes == () and result.skipped_unsure == 5 and result.cls.dominant == ""


def test_missing_emotion_model_is_a_clear_error(tmp_path, faces_dir, detector):
    from rollcall.models import ModelError

    image = cv2.imread(str(faces_dir / SMILING))
    with pytest.raises(ModelError, match="fer2013_mini_xception.onnx not found at"):
        EmotionModel(str(tmp_path)).predict(
            image, [f.face.bbox for f in tracked_faces(detector, image)]
        )


@pytest.mark.parametrize("mode", ["fsanet", "keypoints"])
def test_face_turned_away_scores_lower_engagement(faces_dir, detector, models_dir, mode):
    pose = HeadPoseModel(str(models_dir), mode=mode)

    def score(name: str) -> float:
        image = cv2.imread(str(faces_dir / name))
        plugin = EngagementPlugin(pose, SETTINGS)
        faces = tracked_faces(detector, image)
        h, w = image.shape[:2]  # LFW photos are centred on the labeled person
        labeled = min(
            faces,
            key=lambda f: (
                abs((f.face.bbox[0] + f.face.bbox[2]) / 2 - w / 2)
                + abs((f.face.bbox[1] + f.face.bbox[3]) / 2 - h / 2)
            ),
        )
        result = run_plugin(plugin, image, [labeled], 60)["engagement"]
        (row,) = result.minutes
        assert row.visible == 1.0 and row.stable == 1.0  # same face, same place, every sample
        assert result.pose_source == mode
        return row.score

    frontal = score(FRONTAL)
    assert frontal == 100.0
    for name in TURNED_AWAY:
        assert score(name) < frontal


def test_headpose_falls_back_to_keypoints_without_fsanet(tmp_path, faces_dir, detector):
    image = cv2.imread(str(faces_dir / FRONTAL))
    face = tracked_faces(detector, image)[0].face
    pose = HeadPoseModel(str(tmp_path), mode="auto").pose(image, face.bbox, face.kps)
    assert pose.source == "keypoints" and abs(pose.yaw) < 15
    assert pose == keypoint_pose(face.kps)


def test_engagement_components_visibility_and_motion():
    plugin = EngagementPlugin(HeadPoseModel("", mode="keypoints"), SETTINGS)
    m = meeting(duration_s=120.0)
    kps = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    image = np.zeros((200, 400, 3), np.uint8)
    for i in range(120):
        faces = []
        if i < 60 or i % 2 == 0:  # minute 1: seen in half the samples, jumping around
            dx = 0 if i < 60 else (i % 4) * 50
            face = __import__("rollcall.types", fromlist=["Face"]).Face(
                np.array([10 + dx, 10, 90 + dx, 100], np.float32), 0.9, kps + [dx, 0]
            )
            faces = [TrackedFace(0, face, FaceMatch(0, 0.9))]
        plugin.rollcall_analyze_frame(
            meeting=m, frame=SampledFrame(i, float(i), image), faces=faces
        )
    result = plugin.rollcall_finalize_meeting(
        meeting=m, tracks=[], identities={0: 0}, roster=roster()
    )
    first, second = result["engagement"].minutes
    assert (first.visible, first.facing, first.stable, first.score) == (1.0, 1.0, 1.0, 100.0)
    assert second.visible == 0.5 and second.stable < 1.0 and second.score < 70


def test_results_are_stored_per_minute_and_summary(tmp_path, faces_dir, detector, models_dir):
    from rollcall.store import storage
    from rollcall.store.schema import migrate_plugin_admin

    db = storage.open_db(tmp_path)
    migrate_plugin_admin(db)
    image = cv2.imread(str(faces_dir / SMILING))
    faces = tracked_faces(detector, image)
    emo = run_plugin(
        EmotionPlugin(
            EmotionModel(str(models_dir)), EmotionSettings(min_face_px=40, min_confidence=0.4)
        ),
        image,
        faces,
    )["emotion"]
    eng = run_plugin(EngagementPlugin(HeadPoseModel(str(models_dir)), SETTINGS), image, faces)[
        "engagement"
    ]
    for _ in range(2):  # a re-run replaces, never duplicates
        save_emotion(db, 7, emo, roster())
        save_engagement(db, 7, eng, roster())
    assert db["emotion_minutes"].count == 1 and db["emotion_summary"].count == 2
    row = next(db["emotion_minutes"].rows)
    assert row["dominant"] == "happy" and row["student_pk"] == 1 and row["happy"] > 0.9
    rows = {r["student_pk"]: r for r in db["engagement_summary"].rows}
    assert set(rows) == {0, 1} and rows[1]["level"] == "engaged"
    assert {"visible", "facing", "stable", "score"} <= set(next(db["engagement_minutes"].rows))


def test_fsanet_batch_matches_one_face_at_a_time(faces_dir, detector, models_dir):
    """FSA-Net is exported with batch 1; the batched session must give the same poses."""
    image = cv2.imread(str(faces_dir / "Colin_Powell/4.jpg"))
    others = [cv2.imread(str(faces_dir / name)) for name in TURNED_AWAY]
    model = HeadPoseModel(str(models_dir), mode="fsanet")
    faces = [detector.detect(img)[0] for img in [image, *others]]
    canvas = [image, *others]
    singles = [model.pose(img, f.bbox, f.kps) for img, f in zip(canvas, faces, strict=True)]
    # one frame holding all four faces side by side, same crops
    h = max(img.shape[0] for img in canvas)
    padded = [
        cv2.copyMakeBorder(img, 0, h - img.shape[0], 0, 0, cv2.BORDER_REPLICATE) for img in canvas
    ]
    offsets = np.cumsum([0] + [img.shape[1] for img in canvas[:-1]])
    frame = np.hstack(padded)
    boxes = [
        f.bbox + np.array([dx, 0, dx, 0], np.float32) for f, dx in zip(faces, offsets, strict=True)
    ]
    batch = model.poses(frame, boxes, [f.kps for f in faces])
    assert len(batch) == 4
    for one, many in zip(singles, batch, strict=True):
        assert abs(one.yaw - many.yaw) < 2.0 and abs(one.pitch - many.pitch) < 2.0
    assert abs(batch[0].yaw) < 15 and all(abs(p.yaw) > 25 for p in batch[1:])
