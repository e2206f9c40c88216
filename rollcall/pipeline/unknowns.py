"""Unknown faces: kept only as embeddings, clustered per meeting, labelled later.

Tracks that no student claimed are grouped by the similarity of their mean
embeddings (greedy agglomeration against cluster centroids). An instructor
can label a cluster with a student (``rollcall unknown label``): its
minutes then count as that student's presence and, with ``--enroll``, its
centroid joins the student's template. A label can be undone
(``rollcall unknown unlabel``: :func:`unlabel_cluster`) or moved to another
student (the credit moves with it); a student's presence is always what the
analysis saw (``presence.auto_seconds``) plus their labelled clusters
(:func:`credit_labels`). Analysing the recording again carries each label over
to the new cluster that matches it (:func:`carry_labels`).
"""

from __future__ import annotations

import json
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


def _settled_minutes(meeting: dict, seconds: list[float], settings) -> tuple[list[int], str]:
    from rollcall.presence import attendance_status, present_minutes

    minutes = present_minutes(seconds, meeting["duration_s"], settings.min_seconds_per_minute)
    status = attendance_status(
        minutes,
        absent_below_pct=settings.absent_below_pct,
        late_after_pct=settings.late_after_pct,
        left_early_pct=settings.left_early_pct,
    )
    return minutes, status


def credit_labels(db, meeting: dict, student_pk: int, *, attendance_settings) -> dict:
    """Recompute a student's presence in a meeting: what the analysis saw
    (``presence.auto_seconds``) plus the seconds of every cluster labelled with them,
    each minute capped at its length; then their present minutes and status.

    Runs in the caller's write transaction. Returns the student's attendance row.
    """
    from rollcall.presence import minute_lengths

    meeting_id = meeting["id"]
    lengths = minute_lengths(meeting["duration_s"] or 0.0)
    seconds = [0.0] * len(lengths)
    for r in db.query(
        "select minute, coalesce(auto_seconds, seconds_seen) as s from presence "
        "where meeting_id = ? and student_pk = ?",
        [meeting_id, student_pk],
    ):
        if r["minute"] < len(seconds):
            seconds[r["minute"]] = r["s"] or 0.0
    auto = list(seconds)
    for c in db.query(
        "select seconds_by_minute from unknown_clusters where meeting_id = ? "
        "and label_student_pk = ?",
        [meeting_id, student_pk],
    ):
        for i, extra in enumerate(json.loads(c["seconds_by_minute"] or "[]")[: len(seconds)]):
            seconds[i] += extra
    merged = [min(length, s) for s, length in zip(seconds, lengths, strict=True)]
    minutes, status = _settled_minutes(meeting, merged, attendance_settings)
    attendance = {
        "meeting_id": meeting_id,
        "student_pk": student_pk,
        "present_minutes": sum(minutes),
        "attendance_pct": round(100.0 * sum(minutes) / len(minutes), 1) if minutes else 0.0,
        "status": status,
    }
    db.execute(
        "delete from presence where meeting_id = ? and student_pk = ?", [meeting_id, student_pk]
    )
    db["presence"].insert_all(
        {
            "meeting_id": meeting_id,
            "student_pk": student_pk,
            "minute": i,
            "seconds_seen": round(sec, 2),
            "present": p,
            "auto_seconds": a,
        }
        for i, (sec, p, a) in enumerate(zip(merged, minutes, auto, strict=True))
    )
    db["attendance"].upsert(attendance, pk=("meeting_id", "student_pk"))
    return attendance


def _cluster(db, meeting_id: int, cluster_no: int) -> dict:
    from rollcall.store import storage

    rows = [c for c in storage.unknown_clusters(db, meeting_id) if c["cluster_no"] == cluster_no]
    if not rows:
        raise storage.NotFound(f"meeting {meeting_id} has no unknown cluster {cluster_no}")
    return rows[0]


def _drop_enrolled(db, cluster: dict) -> None:
    """Remove the embedding ``--enroll`` added from this cluster (the label goes)."""
    if cluster.get("enrolled_embedding_id"):
        db.execute(
            "delete from embeddings where id = ? and photo_id is null",
            [cluster["enrolled_embedding_id"]],
        )


def label_cluster(
    db,
    meeting_id: int,
    cluster_no: int,
    student_id: str,
    *,
    attendance_settings,
    enroll: bool,
    by: str = "",
) -> dict:
    """Attribute an unknown cluster to a student of the meeting's course.

    The cluster's seconds are added to the student's per-minute presence (capped
    at the minute's length), presence and status are recomputed, and with
    ``enroll`` the cluster centroid becomes one more embedding of the student.
    Relabelling a cluster moves the credit (and an enrolled embedding) away from
    the student it was labelled with before. ``by`` is who labelled it.
    Returns the student's new attendance row.
    """
    from rollcall.store import storage
    from rollcall.store.db import write_transaction

    meeting = storage.get_meeting(db, meeting_id)
    cluster = _cluster(db, meeting_id, cluster_no)
    student = storage.get_student(db, meeting["course_id"], student_id)
    previous = cluster["label_student_pk"]
    with write_transaction(db):
        changes = {
            "label_student_pk": student["id"],
            "labeled_at": storage.now_iso(),
            "labeled_by": by,
        }
        if previous != student["id"]:
            _drop_enrolled(db, cluster)
            changes["enrolled_embedding_id"] = None
        db["unknown_clusters"].update(cluster["id"], changes)
        if previous is not None and previous != student["id"]:
            credit_labels(db, meeting, previous, attendance_settings=attendance_settings)
        attendance = credit_labels(
            db, meeting, student["id"], attendance_settings=attendance_settings
        )
        if enroll and (previous != student["id"] or not cluster.get("enrolled_embedding_id")):
            embedding_id = (
                db["embeddings"]
                .insert(
                    {
                        "photo_id": None,
                        "student_pk": student["id"],
                        "model": cluster["model"],
                        "dim": len(cluster["centroid"]) // 4,
                        "vector": cluster["centroid"],
                        "created_at": storage.now_iso(),
                    }
                )
                .last_pk
            )
            db["unknown_clusters"].update(cluster["id"], {"enrolled_embedding_id": embedding_id})
    return attendance


def unlabel_cluster(db, meeting_id: int, cluster_no: int, *, attendance_settings) -> dict | None:
    """Undo a cluster's label: its minutes no longer count for the student, and the
    embedding ``--enroll`` added from it is removed. Returns the student's new
    attendance row, or None when the cluster was not labelled."""
    from rollcall.store import storage
    from rollcall.store.db import write_transaction

    meeting = storage.get_meeting(db, meeting_id)
    cluster = _cluster(db, meeting_id, cluster_no)
    previous = cluster["label_student_pk"]
    if previous is None:
        return None
    with write_transaction(db):
        _drop_enrolled(db, cluster)
        db["unknown_clusters"].update(
            cluster["id"],
            {
                "label_student_pk": None,
                "labeled_at": None,
                "labeled_by": None,
                "enrolled_embedding_id": None,
            },
        )
        return credit_labels(db, meeting, previous, attendance_settings=attendance_settings)


@dataclass(frozen=True, slots=True)
class CarriedLabels:
    """What happened to a meeting's labels when it was analysed again."""

    carried: tuple[tuple[int, int], ...] = ()  # (old cluster_no, new cluster_no)
    dropped: tuple[int, ...] = ()  # old cluster_no without a matching new cluster


def carry_labels(previous: list[dict], new_rows: list[dict], *, threshold: float) -> CarriedLabels:
    """Put the labels of a meeting's previous clusters on its new cluster rows (in place).

    An old labelled cluster passes its label (who, when, by whom, the enrolled
    embedding) to the new cluster of the same model whose centroid is most similar,
    if that similarity reaches ``threshold`` (the model pack's cluster threshold) and
    no earlier label took that cluster. Older labels choose first.
    """
    carried, dropped, taken = [], [], set()
    labelled = sorted(
        (c for c in previous if c.get("label_student_pk") is not None),
        key=lambda c: (c.get("labeled_at") or "", c["cluster_no"]),
    )
    for old in labelled:
        old_vec = np.frombuffer(old["centroid"], dtype=np.float32)
        best, best_sim = None, threshold
        for i, row in enumerate(new_rows):
            if i in taken or row["model"] != old["model"]:
                continue
            vec = np.frombuffer(row["centroid"], dtype=np.float32)
            if vec.shape != old_vec.shape:
                continue
            sim = float(vec @ old_vec) / max(
                float(np.linalg.norm(vec) * np.linalg.norm(old_vec)), 1e-9
            )
            if sim >= best_sim:
                best, best_sim = i, sim
        if best is None:
            dropped.append(old["cluster_no"])
            continue
        taken.add(best)
        new_rows[best].update(
            label_student_pk=old["label_student_pk"],
            labeled_at=old.get("labeled_at"),
            labeled_by=old.get("labeled_by"),
            enrolled_embedding_id=old.get("enrolled_embedding_id"),
        )
        carried.append((old["cluster_no"], new_rows[best]["cluster_no"]))
    return CarriedLabels(tuple(carried), tuple(dropped))
