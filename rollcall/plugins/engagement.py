"""Engagement analyzer plugin (disabled by default): an explainable score per student per minute.

Three components, each 0..1, measured per student and minute:

- ``visible``: share of the minute's sampled frames in which the student's
  face was found;
- ``facing``: share of those faces whose head pose faces the screen,
  ``|yaw| <= max_yaw_deg`` and ``|pitch| <= max_pitch_deg``. Head pose comes
  from FSA-Net (``extra/fsanet-1x1-*.onnx`` and ``extra/fsanet-var-*.onnx``,
  the two variants averaged as published) or, when those files are absent or
  ``head_pose = "keypoints"``, from the detector's five keypoints (a linear
  fit to FSA-Net on the shared face photos: mean error 2.5 degrees of yaw,
  3.8 of pitch);
- ``stable``: ``1 - min(1, motion / stable_motion)`` where motion is the mean
  move of the face centre between consecutive samples, in face widths.

``score = 100 * (w_v * visible + w_f * facing + w_s * stable) / (w_v + w_f + w_s)``
(``facing`` and ``stable`` are 0 in a minute without the face), and the
level is ``engaged`` from ``engaged_min_score``, ``partly`` from
``partly_min_score``, else ``not engaged``. All weights and thresholds are in
``[plugins.engagement]`` of ``config.toml``. Results go to ``engagement_minutes`` and
``engagement_summary`` (created and written through the plugin's hooks, inside
the meeting's transaction); the report shows the components, not only the score.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import sqlite_utils

from rollcall import (
    MeetingContext,
    Roster,
    SampledFrame,
    TrackedFace,
    TrackSummary,
    hookimpl,
    minutes_in,
)
from rollcall.models import ModelError
from rollcall.plugins.engagement_settings import EngagementSettings
from rollcall.plugins.face_crops import PerMeeting, extra_model_path, load_session, square_crop
from rollcall.plugins.result_tables import ResultTables, StoredResultsHooks

log = logging.getLogger(__name__)
FSANET_FILES = ("fsanet-1x1-iter-688590.onnx", "fsanet-var-iter-688590.onnx")
# Keypoint head pose: linear fit to FSA-Net (yaw r=0.94, pitch r=0.81) on ../shared/faces.
KPS_YAW_PER_OFFSET = -94.8  # degrees per (nose - face midline) / eye distance
KPS_PITCH_PER_RATIO = -65.7  # degrees per (nose - eyes) / (mouth - eyes)
KPS_PITCH_NEUTRAL_RATIO = 0.456


@dataclass(frozen=True, slots=True)
class HeadPose:
    yaw: float  # degrees, 0 = facing the camera
    pitch: float
    roll: float
    source: str  # "fsanet" or "keypoints"


@dataclass(frozen=True, slots=True)
class EngagementMinute:
    student_index: int
    minute: int
    samples: int  # sampled frames in this minute
    seen: int  # of which the student's face was found
    visible: float
    facing: float
    stable: float
    mean_abs_yaw: float
    score: float
    level: str


@dataclass(frozen=True, slots=True)
class EngagementSummary:
    student_index: int  # roster index, -1 = class
    minutes: int  # minutes with the face seen at least once
    visible: float
    facing: float
    stable: float
    score: float  # mean over all minutes of the meeting
    level: str


@dataclass(frozen=True, slots=True)
class EngagementResult:
    minutes: tuple[EngagementMinute, ...]
    students: tuple[EngagementSummary, ...]
    cls: EngagementSummary
    pose_source: str


@dataclass(slots=True)
class _TrackMinute:
    seen: int = 0
    facing: int = 0
    motion_sum: float = 0.0
    motion_n: int = 0
    abs_yaw_sum: float = 0.0


@dataclass(slots=True)
class _MeetingState:
    frames_per_minute: Counter = field(default_factory=Counter)
    cells: dict[tuple[int, int], _TrackMinute] = field(default_factory=dict)  # (track, minute)
    last_centre: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    pose_sources: Counter = field(default_factory=Counter)


def keypoint_pose(kps: np.ndarray) -> HeadPose:
    """Head yaw and pitch from the detector's 5 keypoints (eyes, nose, mouth corners)."""
    left_eye, right_eye, nose, mouth_l, mouth_r = (np.asarray(p, np.float64) for p in kps[:5])
    eyes = (left_eye + right_eye) / 2.0
    mouth = (mouth_l + mouth_r) / 2.0
    eye_dist = max(float(np.linalg.norm(right_eye - left_eye)), 1e-6)
    midline_x = (eyes[0] + mouth[0]) / 2.0
    yaw = KPS_YAW_PER_OFFSET * (nose[0] - midline_x) / eye_dist
    ratio = (nose[1] - eyes[1]) / max(mouth[1] - eyes[1], 1e-6)
    pitch = KPS_PITCH_PER_RATIO * (ratio - KPS_PITCH_NEUTRAL_RATIO)
    dy, dx = right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]
    roll = float(np.degrees(np.arctan2(dy, dx)))
    return HeadPose(float(yaw), float(pitch), roll, "keypoints")


class HeadPoseModel:
    """FSA-Net head pose (both variants averaged), or keypoints when the files are absent."""

    def __init__(self, models_dir: str, *, mode: str = "auto", threads: int = 0):
        self.models_dir = models_dir
        self.mode = mode  # "auto", "fsanet" or "keypoints"
        self.threads = threads
        self._sessions: list | None = None
        self._lock = threading.Lock()

    def _get(self) -> list:
        with self._lock:
            if self._sessions is None:
                if self.mode == "keypoints":
                    self._sessions = []
                else:
                    try:
                        paths = [extra_model_path(self.models_dir, f) for f in FSANET_FILES]
                        self._sessions = [
                            load_session(p, self.threads, dynamic_batch=True) for p in paths
                        ]
                    except ModelError as exc:
                        if self.mode == "fsanet":
                            raise
                        log.warning("head pose falls back to keypoints: %s", exc)
                        self._sessions = []
        return self._sessions

    def pose(self, image: np.ndarray, bbox: np.ndarray, kps: np.ndarray) -> HeadPose:
        return self.poses(image, [bbox], [kps])[0]

    def poses(
        self, image: np.ndarray, boxes: list[np.ndarray], kpss: list[np.ndarray]
    ) -> list[HeadPose]:
        """Head pose of every face of one frame; FSA-Net sees them all in one batch."""
        sessions = self._get()
        if not sessions:
            return [keypoint_pose(kps) for kps in kpss]
        if not boxes:
            return []
        crops = np.stack([square_crop(image, box, 64, margin=0.5) for box in boxes])
        x = ((crops.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
        out = np.mean([s.run(None, {"input": x})[0] for s in sessions], axis=0)
        return [HeadPose(float(y), float(p), float(r), "fsanet") for y, p, r in out]


def _minute_columns(_: EngagementResult, r: EngagementMinute) -> dict[str, object]:
    """A minutes row's columns after meeting_id and student_pk."""
    return {
        "minute": r.minute,
        "samples": r.samples,
        "seen": r.seen,
        "visible": r.visible,
        "facing": r.facing,
        "stable": r.stable,
        "mean_abs_yaw": r.mean_abs_yaw,
        "score": r.score,
        "level": r.level,
    }


def _summary_columns(result: EngagementResult, x: EngagementSummary) -> dict[str, object]:
    """A summary row's columns after meeting_id and student_pk."""
    return {
        "minutes": x.minutes,
        "visible": x.visible,
        "facing": x.facing,
        "stable": x.stable,
        "score": x.score,
        "level": x.level,
        "pose_source": result.pose_source,
    }


TABLES = ResultTables(
    key="engagement",
    minutes="engagement_minutes",
    minutes_columns={
        "samples": int,
        "seen": int,
        "visible": float,
        "facing": float,
        "stable": float,
        "mean_abs_yaw": float,
        "score": float,
        "level": str,
    },
    summary="engagement_summary",
    summary_columns={
        "minutes": int,
        "visible": float,
        "facing": float,
        "stable": float,
        "score": float,
        "level": str,
        "pose_source": str,
    },
    minute_row=_minute_columns,
    summary_row=_summary_columns,
    sheets={
        "Engagement per minute": (
            "SELECT s.student_id, s.name, e.minute + 1 AS minute, e.visible, e.facing, e.stable, "
            "e.mean_abs_yaw, e.score, e.level FROM engagement_minutes e "
            "JOIN students s ON s.id = e.student_pk WHERE e.meeting_id = ? "
            "ORDER BY s.student_id, e.minute"
        ),
        "Engagement summary": (
            "SELECT COALESCE(s.student_id, 'class') AS student_id, s.name, e.minutes, e.visible, "
            "e.facing, e.stable, e.score, e.level, e.pose_source FROM engagement_summary e "
            "LEFT JOIN students s ON s.id = e.student_pk WHERE e.meeting_id = ? "
            "ORDER BY e.student_pk = 0, s.student_id"
        ),
    },
)


class EngagementPlugin(StoredResultsHooks):
    """Gathers visibility, head pose and motion per track and minute; scores per student.

    Its tables and storage hooks are :data:`TABLES`'s (:class:`StoredResultsHooks`).
    """

    name = "engagement"
    settings_model = EngagementSettings
    tables = TABLES

    def __init__(
        self,
        pose_model: HeadPoseModel,
        settings: EngagementSettings | None = None,
    ):
        self.pose_model = pose_model
        self.settings = EngagementSettings() if settings is None else settings
        self._meetings: PerMeeting[_MeetingState] = PerMeeting(_MeetingState)

    @hookimpl
    def rollcall_analyze_frame(
        self, meeting: MeetingContext, frame: SampledFrame, faces: list[TrackedFace]
    ) -> None:
        state = self._meetings.get(meeting.meeting_id)
        minute = int(frame.t // 60)
        state.frames_per_minute[minute] += 1
        s = self.settings
        poses = self.pose_model.poses(
            frame.image, [t.face.bbox for t in faces], [t.face.kps for t in faces]
        )
        for tracked, pose in zip(faces, poses, strict=True):
            box = tracked.face.bbox
            state.pose_sources[pose.source] += 1
            cell = state.cells.setdefault((tracked.track_id, minute), _TrackMinute())
            cell.seen += 1
            cell.abs_yaw_sum += abs(pose.yaw)
            if abs(pose.yaw) <= s.max_yaw_deg and abs(pose.pitch) <= s.max_pitch_deg:
                cell.facing += 1
            width = max(float(box[2] - box[0]), 1.0)
            centre = (float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0, width)
            last = state.last_centre.get(tracked.track_id)
            if last is not None:
                cell.motion_sum += float(np.hypot(centre[0] - last[0], centre[1] - last[1])) / (
                    (width + last[2]) / 2.0
                )
                cell.motion_n += 1
            state.last_centre[tracked.track_id] = centre

    @hookimpl
    def rollcall_finalize_meeting(
        self,
        meeting: MeetingContext,
        tracks: list[TrackSummary],
        identities: dict[int, int],
        roster: Roster,
    ) -> dict[str, EngagementResult]:
        state = self._meetings.pop(meeting.meeting_id)
        result = score_meeting(state, identities, self.settings, minutes_in(meeting.duration_s))
        log.info(
            "engagement analysed",
            extra={
                "meeting_id": meeting.meeting_id,
                "pose": result.pose_source,
                "student_minutes": len(result.minutes),
            },
        )
        return {"engagement": result}


def score_meeting(
    state: _MeetingState, identities: dict[int, int], s: EngagementSettings, n_minutes: int
) -> EngagementResult:
    """Per student and minute, then per student and class over the whole meeting."""
    merged: dict[tuple[int, int], _TrackMinute] = {}
    for (track_id, minute), cell in state.cells.items():
        student = identities.get(track_id)
        if student is None:
            continue
        acc = merged.setdefault((student, minute), _TrackMinute())
        acc.seen += cell.seen
        acc.facing += cell.facing
        acc.motion_sum += cell.motion_sum
        acc.motion_n += cell.motion_n
        acc.abs_yaw_sum += cell.abs_yaw_sum
    rows: list[EngagementMinute] = []
    for student in sorted({k[0] for k in merged}):
        for minute in range(max(n_minutes, 1 + max(m for st, m in merged if st == student))):
            cell = merged.get((student, minute), _TrackMinute())
            frames = max(state.frames_per_minute.get(minute, 0), cell.seen, 1)
            visible = min(1.0, cell.seen / frames)
            facing = cell.facing / cell.seen if cell.seen else 0.0
            motion = cell.motion_sum / cell.motion_n if cell.motion_n else 0.0
            stable = 1.0 - min(1.0, motion / s.stable_motion) if cell.seen else 0.0
            score = s.score(visible, facing, stable)
            rows.append(
                EngagementMinute(
                    student,
                    minute,
                    frames,
                    cell.seen,
                    round(visible, 3),
                    round(facing, 3),
                    round(stable, 3),
                    round(cell.abs_yaw_sum / cell.seen, 1) if cell.seen else 0.0,
                    score,
                    s.level(score),
                )
            )
    students = tuple(
        _summary(student, [r for r in rows if r.student_index == student], s)
        for student in sorted({r.student_index for r in rows})
    )
    cls = _summary(-1, rows, s)
    source = state.pose_sources.most_common(1)[0][0] if state.pose_sources else ""
    return EngagementResult(tuple(rows), students, cls, source)


def _summary(
    student: int, rows: list[EngagementMinute], s: EngagementSettings
) -> EngagementSummary:
    if not rows:
        return EngagementSummary(student, 0, 0.0, 0.0, 0.0, 0.0, s.level(0.0))

    def mean(values: list[float]) -> float:
        return round(float(np.mean(values)), 3)

    score = round(float(np.mean([r.score for r in rows])), 1)
    return EngagementSummary(
        student,
        sum(1 for r in rows if r.seen),
        mean([r.visible for r in rows]),
        mean([r.facing for r in rows]),
        mean([r.stable for r in rows]),
        score,
        s.level(score),
    )


COMPONENTS = ("visible", "facing", "stable")


def create_tables(db: sqlite_utils.Database) -> None:
    """The engagement tables (idempotent; the ``rollcall_create_tables`` hook)."""
    TABLES.create(db)


def save_engagement(
    db: sqlite_utils.Database, meeting_id: int, result: EngagementResult, roster: Roster
) -> None:
    """Replace the meeting's engagement rows (class row: student_pk 0), in a write transaction
    of ``db`` (a savepoint of the meeting's when called from the hook)."""
    TABLES.save(db, meeting_id, result, roster)


def report_sheets(db: sqlite_utils.Database, meeting_id: int) -> dict[str, tuple[list[str], list]]:
    """XLSX sheets (title -> header, rows) of a meeting's engagement, with its components."""
    return TABLES.report_sheets(db, meeting_id)


def csv_columns(db: sqlite_utils.Database, meeting_id: int) -> dict[str, dict[str, object]]:
    """Per student id: extra attendance.csv columns (engagement score and components)."""
    _, rows = report_sheets(db, meeting_id).get("Engagement summary", ([], []))
    return {
        r[0]: {
            "engagement_score": r[6],
            "engagement_visible": r[3],
            "engagement_facing": r[4],
            "engagement_stable": r[5],
        }
        for r in rows
        if r[0] != "class"
    }
