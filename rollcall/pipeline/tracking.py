"""Following faces from one sampled frame to the next, and voting on who they are.

A track is one face seen in consecutive samples: same place (IoU of the boxes)
and same appearance (cosine similarity of the embedding to the track's last
sample and to its mean so far). Identity is decided for the whole track by
voting over its per-frame matches, or, for long tracks, by the track's mean
embedding with a clear margin, so a single bad frame can neither mark a student
present nor hide one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from rollcall.types import Face

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
class TrackedFace:
    track_id: int
    face: Face
    match: FaceMatch


@dataclass(slots=True)
class TrackSummary:
    """What a finished track knows; small and independent of the recording length."""

    track_id: int
    times: list[float] = field(default_factory=list)
    votes: Counter = field(default_factory=Counter)  # roster index -> matched samples
    similarity_sum: Counter = field(default_factory=Counter)  # roster index -> summed similarity
    embedding_sum: np.ndarray | None = None
    last_bbox: np.ndarray | None = None
    last_embedding: np.ndarray | None = None
    #: Samples whose embedding was computed from that sample's pixels. Only they vote
    #: and make the centroid; samples that reused an earlier embedding (the fast path,
    #: ``rollcall.pipeline.gallery``) only say when the face was there. None = all of them.
    measured: int | None = None
    last_key: int | None = None  # the caller's key of the last face (see FaceTracker.update)

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
        return c / max(float(np.linalg.norm(c)), 1e-9)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (n, 4) and b (m, 4) as x1, y1, x2, y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class FaceTracker:
    """Links faces across samples. One instance per recording; not thread-safe."""

    def __init__(self, *, iou_threshold: float, link_similarity: float, max_gap_s: float):
        self.iou_threshold = iou_threshold
        self.link_similarity = link_similarity
        self.max_gap_s = max_gap_s
        self._active: dict[int, TrackSummary] = {}
        self._finished: list[TrackSummary] = []
        self._next_id = 0

    def update(
        self,
        t: float,
        faces: list[Face],
        embeddings: np.ndarray,
        matches: list[FaceMatch],
        measured: list[bool] | None = None,
        keys: list[int | None] | None = None,
    ) -> list[TrackedFace]:
        """Attach each face of the sample at time ``t`` to a track (new or existing).

        ``measured[j]`` False says that face j's embedding was reused from an
        earlier sample: the face counts as seen at ``t`` but neither votes nor
        moves the track's centroid (a repeated measurement is no new evidence).
        ``keys[j]``, when not None, says that face j is the face the caller gave
        that key before (the fast path follows a tile that moved when the gallery
        re-arranged): it continues that face's track wherever it is now, provided
        it still looks like it.
        """
        self._close_stale(t)
        ids = list(self._active)
        assigned: dict[int, int] = {}
        if ids and faces:
            boxes = np.stack([f.bbox for f in faces])
            track_boxes = np.stack([self._active[i].last_bbox for i in ids])
            track_embs = np.stack([self._active[i].last_embedding for i in ids])
            centroids = np.stack([self._active[i].centroid for i in ids])
            iou = iou_matrix(track_boxes, boxes)
            sim = track_embs @ embeddings.T
            # The face must resemble the track's last sample *and* its mean so far:
            # a different person taking over the tile drifts away from the mean.
            centroid_sim = centroids @ embeddings.T
            same = np.zeros_like(iou, dtype=bool)
            if keys is not None:
                last_keys = [self._active[i].last_key for i in ids]
                same = np.array(
                    [[k is not None and k == lk for k in keys] for lk in last_keys], dtype=bool
                ).reshape(iou.shape)
            ok = (
                ((iou >= self.iou_threshold) | same)
                & (sim >= self.link_similarity)
                & (centroid_sim >= self.link_similarity)
            )
            score = np.where(ok, iou + sim + 2.0 * same, -1e6)
            rows, cols = linear_sum_assignment(-score)
            for r, c in zip(rows, cols, strict=True):
                if ok[r, c]:
                    assigned[int(c)] = ids[r]
        out = []
        for j, (face, match) in enumerate(zip(faces, matches, strict=True)):
            track_id = assigned.get(j)
            if track_id is None:
                track_id = self._next_id
                self._next_id += 1
                self._active[track_id] = TrackSummary(track_id=track_id)
            track = self._active[track_id]
            emb = embeddings[j]
            track.times.append(t)
            fresh = measured is None or measured[j] or track.embedding_sum is None
            if measured is not None:
                track.measured = (track.measured or 0) + int(fresh)
            if fresh:
                if match.student_index >= 0:
                    track.votes[match.student_index] += 1
                    track.similarity_sum[match.student_index] += match.similarity
                track.embedding_sum = (
                    emb.copy() if track.embedding_sum is None else track.embedding_sum + emb
                )
            track.last_bbox = face.bbox
            track.last_embedding = emb
            track.last_key = keys[j] if keys is not None else None
            out.append(TrackedFace(track_id=track_id, face=face, match=match))
        return out

    def settled(self, track_id: int) -> bool:
        """Whether the active track ``track_id`` is settled (``TrackSummary.settled``)."""
        track = self._active.get(track_id)
        return track is not None and track.settled()

    def measurements(self, track_id: int) -> int:
        """Measured samples of the active track ``track_id`` so far (0 if unknown)."""
        track = self._active.get(track_id)
        return track.n_measured if track is not None else 0

    def _close_stale(self, t: float) -> None:
        for track_id in [
            i for i, tr in self._active.items() if t - tr.last_t > self.max_gap_s + 1e-6
        ]:
            self._finished.append(self._active.pop(track_id))

    def finish(self) -> list[TrackSummary]:
        """All tracks, in order of creation; the tracker is empty afterwards."""
        tracks = self._finished + list(self._active.values())
        self._finished, self._active = [], {}
        for tr in tracks:
            tr.last_bbox = None  # not needed once tracking is over
            tr.last_embedding = None
        return sorted(tracks, key=lambda tr: tr.track_id)


def vote_identities(
    tracks: list[TrackSummary],
    templates: np.ndarray,
    *,
    threshold: float,
    min_samples: int,
    vote_share: float,
    centroid_threshold: float | None = None,
    centroid_margin: float = 0.0,
    centroid_min_samples: int = 0,
) -> dict[int, int]:
    """Decide who each track is: track id -> roster index, for known tracks only.

    A track is attributed to student s when it has at least ``min_samples``
    samples, s won at least ``vote_share`` of them (each sample votes only when
    its match cleared the threshold), and the track's mean embedding is itself
    above the threshold for s.

    A track that fails the vote can still be attributed by its mean embedding
    alone when ``centroid_threshold`` is given: the track has at least
    ``centroid_min_samples`` samples, its centroid is at least
    ``centroid_threshold`` similar to its nearest student s, and at least
    ``centroid_margin`` more similar to s than to any other student. Averaging
    many samples cancels per-frame noise, so a long track of a poorly lit,
    low-resolution face (whose single frames rarely clear the threshold) is
    recognised, while the margin keeps a stranger who is vaguely similar to
    several students unknown.

    Tracks that overlap in time cannot both be the same student: the stronger
    one (more supporting samples, then higher similarity) keeps the identity
    and the other stays unknown.
    """
    candidates = []
    for tr in tracks:
        if tr.n < min_samples:
            continue
        sims = templates @ tr.centroid
        if tr.votes:
            student, count = tr.votes.most_common(1)[0]
            if count >= vote_share * tr.n_measured and float(sims[student]) >= threshold:
                mean_sim = tr.similarity_sum[student] / count
                # Supporting samples, extrapolated to the samples that were not measured.
                support = count * tr.n / max(tr.n_measured, 1)
                candidates.append((support, mean_sim, tr, student))
                continue
        if centroid_threshold is None or tr.n_measured < centroid_min_samples or len(sims) == 0:
            continue
        order = np.argsort(-sims)
        best = float(sims[order[0]])
        second = float(sims[order[1]]) if len(order) > 1 else -1.0
        if best >= centroid_threshold and best - second >= centroid_margin:
            candidates.append((tr.n, best, tr, int(order[0])))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    taken: dict[int, list[tuple[float, float]]] = {}
    identities: dict[int, int] = {}
    for _count, _sim, tr, student in candidates:
        spans = taken.setdefault(student, [])
        if any(tr.first_t <= end and start <= tr.last_t for start, end in spans):
            continue
        spans.append((tr.first_t, tr.last_t))
        identities[tr.track_id] = student
    return identities


def seconds_per_minute(
    times_list: list[list[float]], duration_s: float, interval_s: float, max_gap_s: float
) -> list[float]:
    """Seconds of each minute covered by observations at the given times.

    Each observation at time t covers [t, t + interval_s); a gap of at most
    ``max_gap_s`` between two observations of the same track is bridged (the
    face was there, the detector blinked). Overlapping coverage from several
    tracks counts once.
    """
    from rollcall.types import minutes_in

    spans: list[tuple[float, float]] = []
    for times in times_list:
        if not times:
            continue
        start = prev = times[0]
        for t in times[1:]:
            if t - prev > max_gap_s + interval_s + 1e-6:
                spans.append((start, prev + interval_s))
                start = t
            prev = t
        spans.append((start, prev + interval_s))
    spans.sort()
    merged: list[list[float]] = []
    for s, e in spans:
        e = min(e, duration_s)
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        elif e > s:
            merged.append([s, e])
    n = minutes_in(duration_s)
    out = [0.0] * n
    for s, e in merged:
        m = int(s // 60)
        while m < n and s < e:
            end = min(e, 60.0 * (m + 1))
            out[m] += end - s
            s = end
            m += 1
    return out
