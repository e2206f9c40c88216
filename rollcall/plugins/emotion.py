"""Emotion analyzer plugin (disabled by default): facial expression per student per minute.

Each recognised face of a sampled frame goes through the mini-Xception
FER2013 classifier (``extra/fer2013_mini_xception.onnx``): a 64x64 grayscale
crop of the face box, ``(x / 255 - 0.5) * 2``, giving a softmax over the seven
expressions of :data:`EXPRESSIONS`. Faces smaller than ``[plugins.emotion] min_face_px``
or whose top probability is below ``[plugins.emotion] min_confidence`` are skipped,
not guessed.

Per student and minute the result is the mean distribution of that minute's
kept faces and its dominant expression; per meeting, the mean distribution per
student and for the whole class (every kept face of an identified student).
Results go to the ``emotion_minutes`` and ``emotion_summary`` tables, which the
plugin creates and writes through its hooks, inside the meeting's transaction.

Emotion recognition in education is prohibited in the EU (AI Act, Art. 5(1)(f));
see ``docs/plugins.md`` before enabling it.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np
import sqlite_utils

from rollcall import (
    MeetingContext,
    Roster,
    SampledFrame,
    TrackedFace,
    TrackSummary,
    hookimpl,
)
from rollcall.plugins.emotion_settings import EmotionSettings
from rollcall.plugins.face_crops import (
    PerMeeting,
    extra_model_path,
    face_px,
    load_session,
    square_crop,
)
from rollcall.plugins.result_tables import CLASS_PK, ResultTables, StoredResultsHooks

log = logging.getLogger(__name__)
MODEL_FILE = "fer2013_mini_xception.onnx"
EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CLASS_ROW = CLASS_PK  # student_pk of the class-wide row in emotion_summary


@dataclass(frozen=True, slots=True)
class EmotionMinute:
    student_index: int  # roster index
    minute: int
    samples: int  # faces kept in this minute
    distribution: tuple[float, ...]  # mean probability per expression, EXPRESSIONS order
    dominant: str


@dataclass(frozen=True, slots=True)
class EmotionSummary:
    student_index: int  # roster index, or -1 for the whole class
    samples: int
    distribution: tuple[float, ...]
    dominant: str


@dataclass(frozen=True, slots=True)
class EmotionResult:
    minutes: tuple[EmotionMinute, ...]
    students: tuple[EmotionSummary, ...]
    cls: EmotionSummary
    skipped_small: int
    skipped_unsure: int


@dataclass(slots=True)
class _MeetingState:
    sums: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # (track, minute)
    counts: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    skipped_small: int = 0
    skipped_unsure: int = 0


def preprocess(image: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """The classifier's input for one face: (64, 64, 1) float32 in [-1, 1]."""
    gray = cv2.cvtColor(square_crop(image, bbox, 64), cv2.COLOR_BGR2GRAY).astype(np.float32)
    return ((gray / 255.0 - 0.5) * 2.0)[:, :, None]


def dominant(distribution: np.ndarray) -> str:
    return EXPRESSIONS[int(np.argmax(distribution))]


class EmotionModel:
    """The FER2013 classifier; loaded on first use, thread-safe."""

    def __init__(self, models_dir: str, threads: int = 0):
        self.models_dir = models_dir
        self.threads = threads
        self._session = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._session is None:
                self._session = load_session(
                    extra_model_path(self.models_dir, MODEL_FILE), self.threads
                )
        return self._session

    def predict(self, image: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        """(n, 7) expression probabilities for the faces at ``boxes`` in ``image``."""
        if not boxes:
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        batch = np.stack([preprocess(image, b) for b in boxes])
        return self._get().run(None, {"input_1": batch})[0]


_COLUMNS: dict[str, type] = {"samples": int, **{n: float for n in EXPRESSIONS}, "dominant": str}
_SELECTED = ", ".join(f"e.{n}" for n in EXPRESSIONS)


def _columns(samples: int, dist: tuple[float, ...], dom: str) -> dict[str, object]:
    """A row's columns after meeting_id and student_pk (see ``_COLUMNS``)."""
    return {"samples": samples, **dict(zip(EXPRESSIONS, dist, strict=True)), "dominant": dom}


TABLES = ResultTables(
    key="emotion",
    minutes="emotion_minutes",
    minutes_columns=_COLUMNS,
    summary="emotion_summary",
    summary_columns=_COLUMNS,
    minute_row=lambda _, m: {**_columns(m.samples, m.distribution, m.dominant), "minute": m.minute},
    summary_row=lambda _, s: _columns(s.samples, s.distribution, s.dominant),
    sheets={
        "Emotion per minute": (
            f"SELECT s.student_id, s.name, e.minute + 1 AS minute, e.samples, {_SELECTED}, "
            "e.dominant FROM emotion_minutes e JOIN students s ON s.id = e.student_pk "
            "WHERE e.meeting_id = ? ORDER BY s.student_id, e.minute"
        ),
        "Emotion summary": (
            f"SELECT COALESCE(s.student_id, 'class') AS student_id, s.name, e.samples, {_SELECTED}, "
            "e.dominant FROM emotion_summary e LEFT JOIN students s ON s.id = e.student_pk "
            "WHERE e.meeting_id = ? ORDER BY e.student_pk = 0, s.student_id"
        ),
    },
)


class EmotionPlugin(StoredResultsHooks):
    """Gathers expression probabilities per track and minute; summarises per student.

    Its tables and storage hooks are :data:`TABLES`'s (:class:`StoredResultsHooks`).
    """

    name = "emotion"
    settings_model = EmotionSettings
    tables = TABLES

    def __init__(
        self,
        model: EmotionModel,
        settings: EmotionSettings | None = None,
    ):
        self.model = model
        self.settings = EmotionSettings() if settings is None else settings
        self.min_face_px = self.settings.min_face_px
        self.min_confidence = self.settings.min_confidence
        self._meetings: PerMeeting[_MeetingState] = PerMeeting(_MeetingState)

    @hookimpl
    def rollcall_analyze_frame(
        self, meeting: MeetingContext, frame: SampledFrame, faces: list[TrackedFace]
    ) -> None:
        state = self._meetings.get(meeting.meeting_id)
        big = [f for f in faces if face_px(f.face.bbox) >= self.min_face_px]
        state.skipped_small += len(faces) - len(big)
        if not big:
            return
        probs = self.model.predict(frame.image, [f.face.bbox for f in big])
        minute = int(frame.t // 60)
        for tracked, p in zip(big, probs, strict=True):
            if float(p.max()) < self.min_confidence:
                state.skipped_unsure += 1
                continue
            key = (tracked.track_id, minute)
            state.sums[key] = state.sums.get(key, 0.0) + p
            state.counts[key] += 1

    @hookimpl
    def rollcall_finalize_meeting(
        self,
        meeting: MeetingContext,
        tracks: list[TrackSummary],
        identities: dict[int, int],
        roster: Roster,
    ) -> dict[str, EmotionResult]:
        state = self._meetings.pop(meeting.meeting_id)
        result = summarise(state, identities)
        log.info(
            "emotion analysed",
            extra={
                "meeting_id": meeting.meeting_id,
                "student_minutes": len(result.minutes),
                "skipped_small": result.skipped_small,
                "skipped_unsure": result.skipped_unsure,
            },
        )
        return {"emotion": result}


def summarise(state: _MeetingState, identities: dict[int, int]) -> EmotionResult:
    """Per student per minute and per meeting, from the per-track sums."""
    per_minute: dict[tuple[int, int], list] = {}
    for (track_id, minute), total in state.sums.items():
        student = identities.get(track_id)
        if student is None:
            continue
        acc = per_minute.setdefault((student, minute), [np.zeros(len(EXPRESSIONS)), 0])
        acc[0] = acc[0] + total
        acc[1] += state.counts[(track_id, minute)]
    minutes, per_student = [], {}
    for (student, minute), (total, n) in sorted(per_minute.items()):
        dist = total / n
        minutes.append(EmotionMinute(student, minute, n, _rounded(dist), dominant(dist)))
        acc = per_student.setdefault(student, [np.zeros(len(EXPRESSIONS)), 0])
        acc[0] = acc[0] + total
        acc[1] += n
    students = tuple(
        EmotionSummary(s, n, _rounded(total / n), dominant(total / n))
        for s, (total, n) in sorted(per_student.items())
    )
    class_total = sum((t for t, _ in per_student.values()), np.zeros(len(EXPRESSIONS)))
    class_n = sum(n for _, n in per_student.values())
    class_dist = class_total / class_n if class_n else class_total
    cls = EmotionSummary(-1, class_n, _rounded(class_dist), dominant(class_dist) if class_n else "")
    return EmotionResult(tuple(minutes), students, cls, state.skipped_small, state.skipped_unsure)


def _rounded(dist: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in dist)


def create_tables(db: sqlite_utils.Database) -> None:
    """The emotion tables (idempotent; the ``rollcall_create_tables`` hook)."""
    TABLES.create(db)


def save_emotion(
    db: sqlite_utils.Database, meeting_id: int, result: EmotionResult, roster: Roster
) -> None:
    """Replace the meeting's emotion rows (class row: student_pk 0), in a write transaction
    of ``db`` (a savepoint of the meeting's when called from the hook)."""
    TABLES.save(db, meeting_id, result, roster)


def report_sheets(db: sqlite_utils.Database, meeting_id: int) -> dict[str, tuple[list[str], list]]:
    """XLSX sheets (title -> header, rows) of a meeting's emotion results; {} when none."""
    return TABLES.report_sheets(db, meeting_id)
