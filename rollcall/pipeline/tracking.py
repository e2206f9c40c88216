"""Following faces from one sampled frame to the next, and voting on who they are.

A track is one face seen in consecutive samples: same place (IoU of the boxes)
and same appearance (cosine similarity of the embedding to the track's last
sample and to its mean so far). Identity is decided for the whole track by
voting over its per-frame matches, or, for long tracks, by the track's mean
embedding with a clear margin, so a single bad frame can neither mark a student
present nor hide one.
"""

from __future__ import annotations

import numpy as np

from rollcall.types import Face, FaceMatch, TrackedFace, TrackSummary


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
            from scipy.optimize import linear_sum_assignment  # slow to import: only when needed

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
                track.samples.append(
                    (t, match.student_index, match.nearest_index, float(match.similarity))
                )
                track.embedding_sum = (
                    emb.copy() if track.embedding_sum is None else track.embedding_sum + emb
                )
                filled = face.filled_embedding
                if filled is not None:
                    track.filled_sum = (
                        filled.copy() if track.filled_sum is None else track.filled_sum + filled
                    )
                    track.filled_n += 1
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
