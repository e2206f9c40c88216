"""Tracking, voting and the presence rule on hand-made data (no models needed)."""

from __future__ import annotations

import numpy as np

from rollcall.pipeline.tracking import FaceTracker
from rollcall.plugins.recognizer import match_open_set, vote_identities
from rollcall.presence import attendance_status, present_minutes, seconds_per_minute
from rollcall.types import Face, FaceMatch


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


TEMPLATES = np.stack([unit([1, 0, 0, 0]), unit([0, 1, 0, 0]), unit([0, 0, 1, 0])])


def face(x: float) -> Face:
    return Face(
        bbox=np.array([x, 0, x + 50, 60], np.float32), score=0.9, kps=np.zeros((5, 2), np.float32)
    )


def test_open_set_matching_is_one_to_one_and_never_guesses():
    embeddings = np.stack([unit([1, 0.1, 0, 0]), unit([1, 0.2, 0, 0]), unit([0, 0, 0, 1])])
    matches = match_open_set(embeddings, TEMPLATES, threshold=0.5)
    assert [m.student_index for m in matches] == [
        0,
        -1,
        -1,
    ]  # one face per student; unknown stays unknown
    assert matches[2].nearest_index >= 0 and matches[2].similarity < 0.5


def run_tracker(per_sample):
    """per_sample: list of lists of (x, embedding, student_index)."""
    tracker = FaceTracker(iou_threshold=0.3, link_similarity=0.3, max_gap_s=3.0)
    for t, faces in enumerate(per_sample):
        fs = [face(x) for x, _, _ in faces]
        emb = np.stack([e for _, e, _ in faces]) if faces else None
        matches = [FaceMatch(s, 0.6 if s >= 0 else 0.1) for _, _, s in faces]
        tracker.update(float(t), fs, emb, matches)
    return tracker.finish()


def test_one_bad_frame_cannot_mark_someone_present():
    stranger = unit([0.5, 0, 0, 1])
    # a stranger's track: one frame wrongly matched to student 0, nine unknown
    samples = [[(10, stranger, 0 if t == 4 else -1)] for t in range(10)]
    tracks = run_tracker(samples)
    assert len(tracks) == 1
    assert vote_identities(tracks, TEMPLATES, threshold=0.4, min_samples=3, vote_share=0.5) == {}


def test_one_bad_frame_cannot_hide_a_present_student():
    me = unit([1, 0.05, 0, 0])
    samples = [[(10, me, -1 if t == 4 else 0)] for t in range(10)]
    tracks = run_tracker(samples)
    assert vote_identities(tracks, TEMPLATES, threshold=0.4, min_samples=3, vote_share=0.5) == {
        0: 0
    }


def test_short_tracks_and_overlapping_duplicates_are_not_attributed():
    me = unit([1, 0.05, 0, 0])
    # two faces at once both voting for student 0: only the stronger keeps the identity
    samples = [[(10, me, 0), (300, me, 0 if t < 6 else -1)] for t in range(8)]
    tracks = run_tracker(samples)
    ids = vote_identities(tracks, TEMPLATES, threshold=0.4, min_samples=3, vote_share=0.5)
    assert list(ids.values()) == [0] and len(ids) == 1
    short = run_tracker([[(10, me, 0)], [(10, me, 0)]])
    assert vote_identities(short, TEMPLATES, threshold=0.4, min_samples=3, vote_share=0.5) == {}


def test_tracks_follow_position_and_appearance():
    a, b = unit([1, 0, 0, 0]), unit([0, 1, 0, 0])
    tracks = run_tracker([[(10, a, 0), (300, b, 1)], [(12, a, 0), (302, b, 1)], [(300, a, 0)]])
    # the third sample puts a's face where b was: a new track, not b's
    assert [t.n for t in tracks] == [2, 2, 1]


def test_seconds_per_minute_bridges_short_gaps_only():
    times = [float(t) for t in range(0, 40)] + [float(t) for t in range(42, 50)] + [80.0, 81.0]
    seen = seconds_per_minute([times], duration_s=120.0, interval_s=1.0, max_gap_s=3.0)
    assert seen == [50.0, 2.0]
    # overlapping coverage from two tracks counts once
    assert seconds_per_minute([[0.0, 1.0], [1.0, 2.0]], 60.0, 1.0, 0.0) == [3.0]


def test_presence_rule_and_status():
    assert present_minutes([30, 29.5, 60, 10], duration_s=200.0, min_seconds_per_minute=30) == [
        1,
        0,
        1,
        1,
    ]
    kw = dict(absent_below_pct=25, late_after_pct=15, left_early_pct=15)
    assert attendance_status([1] * 10, **kw) == "present"
    assert attendance_status([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], **kw) == "late"
    assert attendance_status([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], **kw) == "left_early"
    assert attendance_status([0, 0, 0, 0, 1, 1, 0, 0, 0, 0], **kw) == "absent"
    assert attendance_status([0] * 10, **kw) == "absent"
