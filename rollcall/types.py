"""Typed values that cross module boundaries.

Everything a plugin receives or returns, and everything the report writers
consume, is one of these dataclasses. They hold data only; behaviour lives in
plain functions next to the code that uses it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rollcall.config import Config

STATUSES = ("present", "late", "left_early", "absent")


@dataclass(frozen=True)
class RecordingInfo:
    """What :func:`probe` knows about a recording without decoding it all.

    ``width`` and ``height`` are the size of the picture as a player shows it, i.e.
    after ``rotation`` (the shape :func:`sample_frames` yields without ``max_width``).
    ``rotation`` is the counter-clockwise turn in degrees (0, 90, 180 or 270) that the
    container's display matrix applies to the stored picture (FFmpeg's convention,
    ``ffprobe``'s ``rotation`` side data modulo 360).
    """

    path: Path
    duration_s: float
    width: int
    height: int
    rotation: int
    fps: float | None  # average frame rate
    codec: str
    start_time: datetime | None  # container/stream ``creation_time`` (UTC), if present
    n_frames: int | None  # frame count from the container, if it records one


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
    #: (d,) L2-normalised embedding of the crop with the lower face filled, for a face
    #: that looks masked (``rollcall_embed_filled_faces``); None otherwise.
    filled_embedding: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Roster:
    """The enrolled students of a course as the recognizer sees them."""

    student_keys: tuple[int, ...]  # database primary keys of the students
    student_ids: tuple[str, ...]  # school ids ("S017"), same order
    names: tuple[str, ...]
    templates: np.ndarray  # (n, d) float32, L2-normalised mean embedding per student
    photo_embeddings: tuple[np.ndarray, ...]  # per student (k, d) L2-normalised photo embeddings
    #: (m, d) L2-normalised faces of people who are not enrolled (unknown-face clusters of
    #: the course's earlier meetings), for "closer to X than to non-students?" decisions.
    cohort: np.ndarray | None = None
    #: (n, d) L2-normalised mean of each student's masked enrollment copies, same order;
    #: None unless every student has them. Faces judged masked are matched with these too.
    masked_templates: np.ndarray | None = None
    #: (n, d) L2-normalised mean of each student's enrollment crops with the lower face
    #: filled, same order; None unless every student has one. Masked tracks that carry
    #: filled-crop embeddings are scored with these too.
    filled_templates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.student_keys)


@dataclass(frozen=True)
class Participant:
    """One join of Zoom's participants report (the API's or an exported CSV's row)."""

    user_id: str
    name: str
    email: str
    join_time: datetime | None
    leave_time: datetime | None
    duration: int  # seconds


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
    #: 0-based minutes that need review (absent in ``minutes``: they would be present only
    #: with borderline evidence), ascending; a corrected minute never needs review.
    review_minutes: tuple[int, ...] = ()
    evidence: tuple[MinuteEvidence, ...] = ()  # why each present / needs-review minute is

    @property
    def is_corrected(self) -> bool:
        return bool(self.corrected_minutes)

    @property
    def needs_review(self) -> int:
        """How many minutes need an instructor's review."""
        return len(self.review_minutes)

    def minute_state(self, minute: int) -> str:
        """``present``, ``review`` or ``absent`` for one 0-based minute."""
        if self.minutes[minute]:
            return "present"
        return "review" if minute in self.review_minutes else "absent"


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
    extra_sheets: tuple[tuple[str, tuple[str, ...], tuple[tuple[Any, ...], ...]], ...] = ()
    # The meeting's status in the database: anything but "done" (an analysis still
    # running, interrupted or failed) means these results are not the meeting's.
    meeting_status: str = "done"

    @property
    def complete(self) -> bool:
        """True when the meeting's analysis finished (status ``done``)."""
        return self.meeting_status == "done"

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
    settings: dict[str, Any] = field(default_factory=dict)  # the validated config, as plain dicts


# ---------------------------------------------------------------- tracks (hook values)

#: A track is settled (see ``TrackSummary.settled``) after this many measured samples of
#: which this share matched the same student.
SETTLE_SAMPLES = 5
SETTLE_SHARE = 0.8
SETTLE_CAP = 12


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """Open-set match of one face against the roster."""

    student_index: int  # roster index, or -1 when the face is unknown
    similarity: float  # similarity to that student (to the nearest one when unknown)
    nearest_index: int = -1  # nearest roster entry regardless of the threshold


@dataclass(frozen=True, slots=True)
class TrackDecision:
    """Who a track was decided to be and why (``rollcall_identify_tracks``' evidence).

    ``state`` is ``accepted`` (counts towards presence) or ``review`` (borderline: it
    can only make a minute "needs review"). ``path`` says which rule decided it:
    ``vote`` (enough single samples matched), ``centroid`` (the mean of a long
    track) or ``masked`` (a face judged masked, by the student's template and masked
    template). Margins are similarities of the track's mean embedding: to the student
    minus to the next enrolled student, and minus to the nearest face of a
    non-student (the cohort; None when there was no cohort).
    """

    track_id: int
    student_index: int
    state: str  # "accepted" or "review"
    path: str  # "vote", "centroid" or "masked"
    similarity: float  # the track's mean embedding vs the student's template
    margin_student: float
    margin_cohort: float | None
    reason: str = ""  # why a review track was not accepted


class TrackIdentities(dict[int, int]):
    """What the recognizer answers to ``rollcall_identify_tracks``: a plain ``dict`` of
    track id -> roster index for the *accepted* tracks (what every consumer reads),
    which also carries ``decisions`` (track id -> :class:`TrackDecision`, accepted and
    review tracks alike). A plugin returning a plain dict has no review tracks."""

    def __init__(self, decisions: dict[int, TrackDecision] | None = None):
        decisions = dict(decisions or {})
        super().__init__(
            {t: d.student_index for t, d in decisions.items() if d.state == "accepted"}
        )
        self.decisions = decisions


def track_decisions(identities: dict[int, int]) -> dict[int, TrackDecision]:
    """The decisions behind ``identities``: its own when it is a :class:`TrackIdentities`,
    else accepted decisions without evidence (a third-party recognizer)."""
    if isinstance(identities, TrackIdentities):
        return identities.decisions
    return {
        t: TrackDecision(t, s, "accepted", "vote", float("nan"), float("nan"), None)
        for t, s in identities.items()
    }


@dataclass(frozen=True, slots=True)
class MinuteEvidence:
    """Why a student is present (or needs review) in one minute, without images."""

    minute: int
    state: str  # "present" or "review"
    samples: int  # measured face samples of the deciding tracks in this minute
    matched: int  # of them, those that matched the student on their own
    best_similarity: float | None
    median_similarity: float | None
    margin_student: float  # smallest margin of the deciding tracks
    margin_cohort: float | None
    path: str  # "vote", "centroid" or "vote+centroid"
    tracks: tuple[int, ...]  # the deciding track ids
    reason: str = ""  # why a needs-review minute's tracks were not accepted


@dataclass(frozen=True, slots=True)
class StudentPresence:
    """One student's minutes as the attendance plugin counts them (its
    ``rollcall_finalize_meeting`` result under ``"attendance"``)."""

    student_index: int  # roster index
    seconds_seen: tuple[float, ...]  # per minute
    minutes: tuple[int, ...]  # 0/1 per minute
    present_minutes: int
    attendance_pct: float
    status: str
    review: tuple[int, ...] = ()  # 0/1 per minute: needs review (absent in ``minutes``)
    evidence: tuple[MinuteEvidence, ...] = ()

    @property
    def review_minutes(self) -> int:
        return sum(self.review)


@dataclass(frozen=True, slots=True)
class TrackedFace:
    track_id: int
    face: Face
    match: FaceMatch


@dataclass(slots=True)
class TrackSummary:
    """What a finished track knows; small and independent of the recording length."""

    track_id: int
    times: list[float] = field(default_factory=list)
    votes: Counter[int] = field(default_factory=Counter)  # roster index -> matched samples
    similarity_sum: Counter[int] = field(default_factory=Counter)  # index -> summed similarity
    embedding_sum: np.ndarray | None = None
    last_bbox: np.ndarray | None = None
    last_embedding: np.ndarray | None = None
    #: Samples whose embedding was computed from that sample's pixels. Only they vote
    #: and make the centroid; samples that reused an earlier embedding (the fast path,
    #: ``rollcall.pipeline.gallery``) only say when the face was there. None = all of them.
    measured: int | None = None
    last_key: int | None = None  # the caller's key of the last face (see FaceTracker.update)
    #: Per measured sample: (time, matched roster index or -1, nearest roster index,
    #: similarity to the matched or nearest student). A few numbers per sample, kept for
    #: the per-minute evidence (``MinuteEvidence``).
    samples: list[tuple[float, int, int, float]] = field(default_factory=list)
    #: Sum and count of the filled-crop embeddings of measured samples that looked masked
    #: (``Face.filled_embedding``); None and 0 when none did.
    filled_sum: np.ndarray | None = None
    filled_n: int = 0

    @property
    def n(self) -> int:
        return len(self.times)

    @property
    def n_measured(self) -> int:
        return self.n if self.measured is None else self.measured

    def settled(self, min_samples: int = SETTLE_SAMPLES) -> bool:
        """True once more measurements would not change who this track is likely to be:
        at least ``min_samples`` measured samples that (almost) all matched one student,
        twice as many of which none matched anyone, or, whatever they say,
        ``SETTLE_CAP`` times as many (a hard-to-recognise face's identity comes
        from the mean of many samples; beyond that more change little)."""
        m = self.n_measured
        if m < min_samples:
            return False
        if not self.votes or m >= SETTLE_CAP * min_samples:
            return m >= 2 * min_samples
        return self.votes.most_common(1)[0][1] >= SETTLE_SHARE * m

    @property
    def first_t(self) -> float:
        return self.times[0]

    @property
    def last_t(self) -> float:
        return self.times[-1]

    @property
    def centroid(self) -> np.ndarray:
        c = self.embedding_sum
        if c is None:
            raise ValueError(f"track {self.track_id} has no measured embedding")
        result: np.ndarray = c / max(float(np.linalg.norm(c)), 1e-9)
        return result


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


# ---------------------------------------------------------------- plugins


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``rollcall plugins list`` shows about one plugin."""

    name: str
    version: str
    source: str  # "built-in" or the distribution that provides it
    core: bool  # core plugins always run and cannot be disabled
    hooks: tuple[str, ...]
    problem: str = ""  # why the plugin cannot be used; "" = usable

    @property
    def usable(self) -> bool:
        return not self.problem


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """An optional plugin that raised during a job."""

    plugin: str
    hook: str
    error: str  # "ExceptionType: message"
    traceback: str
