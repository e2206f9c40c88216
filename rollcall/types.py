"""Typed values that cross module boundaries.

Everything a plugin receives or returns, and everything the report writers
consume, is one of these dataclasses. They hold data only; behaviour lives in
plain functions next to the code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rollcall.config import Config

STATUSES = ("present", "late", "left_early", "absent")


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """One decoded frame chosen by the sampler."""

    index: int  # 0-based number of the sample
    t: float  # seconds since the start of the recording (from the frame's pts)
    image: np.ndarray  # H x W x 3, BGR, uint8


@dataclass(slots=True)
class Face:
    """A detected face in one sampled frame (pixel coordinates of that frame)."""

    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2
    score: float  # detector confidence 0..1
    kps: np.ndarray  # (5, 2) float32: eyes, nose, mouth corners
    embedding: np.ndarray | None = None  # (d,) float32, L2-normalised, set by the recognizer


@dataclass(frozen=True, slots=True)
class Roster:
    """The enrolled students of a course as the recognizer sees them."""

    student_keys: tuple[int, ...]  # database primary keys of the students
    student_ids: tuple[str, ...]  # school ids ("S017"), same order
    names: tuple[str, ...]
    templates: np.ndarray  # (n, d) float32, L2-normalised mean embedding per student
    photo_embeddings: tuple[np.ndarray, ...]  # per student (k, d) L2-normalised photo embeddings

    def __len__(self) -> int:
        return len(self.student_keys)


@dataclass(frozen=True, slots=True)
class CorrectionNote:
    """An instructor's manual correction as the report writers show it (who, when, why)."""

    id: int
    minute_from: int  # first corrected minute, 0-based
    minute_to: int  # last corrected minute, inclusive
    present: bool
    reason: str
    made_by: str
    made_at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class StudentAttendance:
    """One row of the attendance report.

    With instructor corrections, ``minutes`` and the totals are the corrected
    values; ``corrected_minutes`` says which minutes a correction decided and
    ``corrections`` lists the ones that apply (oldest first; later ones win).
    """

    student_id: str
    name: str
    minutes: tuple[int, ...]  # 0/1 per minute of the recording
    present_minutes: int
    attendance_pct: float  # 0..100, one decimal
    status: str  # one of STATUSES
    email: str = ""
    corrected_minutes: tuple[int, ...] = ()  # 0-based minutes set by a correction, ascending
    corrections: tuple[CorrectionNote, ...] = ()

    @property
    def is_corrected(self) -> bool:
        return bool(self.corrected_minutes)


@dataclass(frozen=True, slots=True)
class AttendanceReport:
    """Everything the report writers need about one analysed meeting."""

    course_id: str
    meeting_title: str
    start_time: datetime | None  # clock time of the first minute, if known
    duration_s: float
    students: tuple[StudentAttendance, ...]
    unknown_clusters: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # Optional analyzers' sheets (title, header, rows); empty unless an analyzer ran.
    extra_sheets: tuple[tuple[str, tuple[str, ...], tuple[tuple, ...]], ...] = ()

    @property
    def n_minutes(self) -> int:
        return len(self.students[0].minutes) if self.students else minutes_in(self.duration_s)


def minutes_in(duration_s: float) -> int:
    """Number of (possibly partial) minutes a recording of this length spans."""
    import math

    return max(1, math.ceil(duration_s / 60.0 - 1e-9))


@dataclass(frozen=True, slots=True)
class MeetingContext:
    """What every hook learns about the meeting being analysed."""

    meeting_id: int
    course_id: str
    title: str
    duration_s: float
    interval_s: float
    start_time: datetime | None = None
    settings: dict = field(default_factory=dict)  # the validated config, as plain dicts


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """What a notifier plugin receives in ``rollcall_send_notification``.

    ``target`` is where to send: the comma-separated addresses for email, the
    webhook URL for chat (a secret: never log it). ``attachments`` are report
    files written for this attempt (deleted afterwards); ``chart`` is the PNG
    to show inline, or None.
    """

    id: int
    channel: str
    recipient: str
    target: str
    summary: Any  # rollcall.notify.summary.MeetingSummary
    config: Config
    attachments: tuple[Path, ...] = ()
    chart: Path | None = None

    @property
    def message_id_seed(self) -> str:
        return f"rollcall-{self.id}-{self.summary.meeting_id}"
