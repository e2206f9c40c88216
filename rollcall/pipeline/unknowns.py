"""Unknown faces: kept only as embeddings, clustered per meeting, labelled later.

Tracks that no student claimed are grouped by the similarity of their mean
embeddings (greedy agglomeration against cluster centroids). An instructor
can label a cluster with a student (``rollcall unknown label``): its
minutes then count as that student's presence and, with ``--enroll``, its
centroid joins the student's template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rollcall.presence import seconds_per_minute
from rollcall.types import TrackSummary


@dataclass(slots=True)
class UnknownCluster:
    cluster_no: int
    centroid_sum: np.ndarray
    tracks: list[TrackSummary] = field(default_factory=list)

    @property
    def centroid(self) -> np.ndarray:
        return self.centroid_sum / max(float(np.linalg.norm(self.centroid_sum)), 1e-9)


def cluster_unknown_tracks(
    tracks: list[TrackSummary],
    identities: dict[int, int],
    *,
    threshold: float,
    min_samples: int,
) -> list[UnknownCluster]:
    """Group the unattributed tracks (with at least ``min_samples`` samples) by appearance."""
    clusters: list[UnknownCluster] = []
    for tr in sorted(tracks, key=lambda t: -t.n):
        if tr.track_id in identities or tr.n < min_samples:
            continue
        c = tr.centroid
        best = max(clusters, key=lambda cl: float(cl.centroid @ c), default=None)
        if best is not None and float(best.centroid @ c) >= threshold:
            best.tracks.append(tr)
            best.centroid_sum = best.centroid_sum + c * tr.n
        else:
            clusters.append(UnknownCluster(len(clusters) + 1, c * tr.n, [tr]))
    return clusters


def cluster_rows(
    clusters: list[UnknownCluster],
    *,
    meeting_id: int,
    model: str,
    duration_s: float,
    interval_s: float,
    max_gap_s: float,
) -> list[dict]:
    """Database rows for the clusters (embeddings only: no image is kept)."""
    rows = []
    for cl in clusters:
        rows.append(
            {
                "meeting_id": meeting_id,
                "cluster_no": cl.cluster_no,
                "model": model,
                "centroid": cl.centroid.astype(np.float32).tobytes(),
                "n_tracks": len(cl.tracks),
                "n_samples": sum(t.n for t in cl.tracks),
                "first_s": min(t.first_t for t in cl.tracks),
                "last_s": max(t.last_t for t in cl.tracks),
                "seconds_by_minute": [
                    round(s, 2)
                    for s in seconds_per_minute(
                        [t.times for t in cl.tracks], duration_s, interval_s, max_gap_s
                    )
                ],
                "label_student_pk": None,
                "labeled_at": None,
            }
        )
    return rows


def label_cluster(
    db,
    meeting_id: int,
    cluster_no: int,
    student_id: str,
    *,
    attendance_settings,
    enroll: bool,
) -> dict:
    """Attribute an unknown cluster to a student of the meeting's course.

    The cluster's seconds are added to the student's per-minute presence (capped
    at the minute's length), presence and status are recomputed, and with
    ``enroll`` the cluster centroid becomes one more embedding of the student.
    Returns the student's new attendance row.
    """
    from rollcall.presence import attendance_status, minute_lengths, present_minutes
    from rollcall.store import storage
    from rollcall.store.db import write_transaction

    meeting = storage.get_meeting(db, meeting_id)
    rows = [c for c in storage.unknown_clusters(db, meeting_id) if c["cluster_no"] == cluster_no]
    if not rows:
        raise storage.NotFound(f"meeting {meeting_id} has no unknown cluster {cluster_no}")
    cluster = rows[0]
    student = storage.get_student(db, meeting["course_id"], student_id)
    seen = storage.meeting_presence(db, meeting_id).get(student["id"])
    lengths = minute_lengths(meeting["duration_s"])
    seen = seen or [0.0] * len(lengths)
    merged = [
        min(length, a + b)
        for a, b, length in zip(seen, cluster["seconds_by_minute"], lengths, strict=False)
    ]
    s = attendance_settings
    minutes = present_minutes(merged, meeting["duration_s"], s.min_seconds_per_minute)
    status = attendance_status(
        minutes,
        absent_below_pct=s.absent_below_pct,
        late_after_pct=s.late_after_pct,
        left_early_pct=s.left_early_pct,
    )
    attendance = {
        "meeting_id": meeting_id,
        "student_pk": student["id"],
        "present_minutes": sum(minutes),
        "attendance_pct": round(100.0 * sum(minutes) / len(minutes), 1),
        "status": status,
    }
    with write_transaction(db):
        db.execute(
            "delete from presence where meeting_id = ? and student_pk = ?",
            [meeting_id, student["id"]],
        )
        db["presence"].insert_all(
            {
                "meeting_id": meeting_id,
                "student_pk": student["id"],
                "minute": i,
                "seconds_seen": round(sec, 2),
                "present": p,
            }
            for i, (sec, p) in enumerate(zip(merged, minutes, strict=True))
        )
        db["attendance"].upsert(attendance, pk=("meeting_id", "student_pk"))
        db["unknown_clusters"].update(
            cluster["id"], {"label_student_pk": student["id"], "labeled_at": storage.now_iso()}
        )
        if enroll:
            db["embeddings"].insert(
                {
                    "photo_id": None,
                    "student_pk": student["id"],
                    "model": cluster["model"],
                    "dim": len(cluster["centroid"]) // 4,
                    "vector": cluster["centroid"],
                    "created_at": storage.now_iso(),
                }
            )
    return attendance
