"""Unknown-face labels: undone, moved to another student, listed with who and when,
and kept when a database made before labels could be undone is upgraded.

The meeting's results are written straight into the database (no video); the
re-analysis of a real recording is in tests/test_end_to_end.py.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import sqlite_utils

from rollcall.cli.main import main
from rollcall.config import Config
from rollcall.pipeline.unknowns import carry_labels, label_cluster, unlabel_cluster
from rollcall.store import schema, storage

COURSE = "CS101"
# seconds seen per minute by the analysis (5 one-minute minutes)
AUTO = {"S1": [0, 0, 0, 0, 0], "S2": [60, 60, 0, 0, 0]}
CLUSTER = [45.0, 45.0, 45.0, 45.0, 0.0]  # cluster 1: someone seen in minutes 0-3


def _vec(seed: int) -> bytes:
    v = np.random.default_rng(seed).normal(size=8).astype(np.float32)
    return (v / np.linalg.norm(v)).tobytes()


def seed(db) -> int:
    storage.add_course(db, COURSE, "c")
    pks = {sid: storage.upsert_student(db, COURSE, sid, f"Student {sid}") for sid in AUTO}
    meeting_id = storage.upsert_meeting(
        db, {"course_id": COURSE, "source_key": "t", "duration_s": 300.0, "status": "done"}
    )
    presence = [
        {
            "meeting_id": meeting_id,
            "student_pk": pks[sid],
            "minute": m,
            "seconds_seen": float(s),
            "present": int(s >= 30),
        }
        for sid, seconds in AUTO.items()
        for m, s in enumerate(seconds)
    ]
    attendance = [
        {
            "meeting_id": meeting_id,
            "student_pk": pks[sid],
            "present_minutes": sum(s >= 30 for s in seconds),
            "attendance_pct": 20.0 * sum(s >= 30 for s in seconds),
            "status": "absent",
        }
        for sid, seconds in AUTO.items()
    ]
    clusters = [
        {
            "meeting_id": meeting_id,
            "cluster_no": n,
            "model": "m",
            "centroid": _vec(n),
            "n_tracks": 1,
            "n_samples": 9,
            "first_s": 0.0,
            "last_s": 240.0,
            "seconds_by_minute": CLUSTER if n == 1 else [5.0, 0, 0, 0, 0],
        }
        for n in (1, 2)
    ]
    storage.replace_results(db, meeting_id, presence, attendance, clusters, {})
    return meeting_id


def minutes_of(db, meeting_id: int, sid: str) -> tuple[int, list[float]]:
    pk = storage.get_student(db, COURSE, sid)["id"]
    row = db["attendance"].get((meeting_id, pk))
    seconds = storage.meeting_presence(db, meeting_id)[pk]
    return row["present_minutes"], seconds


@pytest.fixture
def db(home):
    database = storage.open_db(home)
    yield database
    database.conn.close()


def test_relabel_moves_the_minutes_and_unlabel_gives_them_back(db, home, capsys, monkeypatch):
    meeting_id = seed(db)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["unknown", "label", str(meeting_id), "1", "S1", "--enroll", "--by", "ta"]) == 0
    assert minutes_of(db, meeting_id, "S1") == (4, [45.0, 45.0, 45.0, 45.0, 0.0])
    pk1 = storage.get_student(db, COURSE, "S1")["id"]
    assert db["embeddings"].count_where("student_pk = ? and photo_id is null", [pk1]) == 1
    capsys.readouterr()
    # a mistake: it was S2. The credit (and the enrolled embedding) move with the label
    assert main(["unknown", "label", str(meeting_id), "1", "S2", "--by", "prof"]) == 0
    assert "taken back from S1" in capsys.readouterr().out
    assert minutes_of(db, meeting_id, "S1") == (0, [0.0] * 5)
    assert minutes_of(db, meeting_id, "S2") == (4, [60.0, 60.0, 45.0, 45.0, 0.0])
    assert db["embeddings"].count_where("photo_id is null") == 0
    assert main(["unknown", "list", str(meeting_id)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "S2" in x)
    assert "prof" in line and storage.now_iso()[:10] in line
    # undo: S2 is back to what the analysis saw
    assert main(["unknown", "unlabel", str(meeting_id), "1"]) == 0
    assert "is no longer S2" in capsys.readouterr().out
    assert minutes_of(db, meeting_id, "S2") == (2, [60.0, 60.0, 0.0, 0.0, 0.0])
    assert storage.unknown_clusters(db, meeting_id)[0]["label_student_pk"] is None
    assert main(["unknown", "unlabel", str(meeting_id), "1"]) == 0
    assert "was not labelled" in capsys.readouterr().out
    assert main(["unknown", "unlabel", str(meeting_id), "7"]) == 1


def test_two_clusters_on_one_student_and_the_status_follows(db, home):
    meeting_id = seed(db)
    rules = Config().attendance
    for n in (1, 2):
        label_cluster(db, meeting_id, n, "S1", attendance_settings=rules, enroll=False, by="x")
    assert minutes_of(db, meeting_id, "S1")[1] == [50.0, 45.0, 45.0, 45.0, 0.0]
    assert unlabel_cluster(db, meeting_id, 1, attendance_settings=rules)["status"] == "absent"
    assert minutes_of(db, meeting_id, "S1") == (0, [5.0, 0.0, 0.0, 0.0, 0.0])


def test_labels_carry_over_to_the_matching_cluster_only():
    previous = [
        {"cluster_no": 1, "model": "m", "centroid": _vec(1), "label_student_pk": 7,
         "labeled_at": "2026-09-01T10:00:00+00:00", "labeled_by": "ta",
         "enrolled_embedding_id": 3},
        {"cluster_no": 2, "model": "m", "centroid": _vec(2), "label_student_pk": 8,
         "labeled_at": "2026-09-01T11:00:00+00:00", "labeled_by": "ta",
         "enrolled_embedding_id": None},
        {"cluster_no": 3, "model": "m", "centroid": _vec(3), "label_student_pk": None},
    ]  # fmt: skip
    new = [
        {"cluster_no": 1, "model": "m", "centroid": _vec(9)},  # nobody seen before
        {"cluster_no": 2, "model": "m", "centroid": _vec(1)},  # the old cluster 1
        {"cluster_no": 3, "model": "other", "centroid": _vec(2)},  # another model: no match
    ]
    result = carry_labels(previous, new, threshold=0.5)
    assert result.carried == ((1, 2),) and result.dropped == (2,)
    assert new[1]["label_student_pk"] == 7 and new[1]["labeled_by"] == "ta"
    assert new[1]["enrolled_embedding_id"] == 3
    assert "label_student_pk" not in new[0] and "label_student_pk" not in new[2]


def test_an_upgraded_database_can_undo_its_old_labels(tmp_path):
    """Labels made before migration 7 added their seconds into seconds_seen; the
    migration recovers what the analysis saw, so unlabel gives exactly that back."""
    conn = sqlite3.connect(tmp_path / storage.DB_NAME)
    old = sqlite_utils.Database(conn)
    for migration in schema.MIGRATIONS[:6]:
        migration(old)
    conn.execute("pragma user_version = 6")
    conn.commit()
    old["courses"].insert({"course_id": COURSE, "title": "c"})
    old["students"].insert({"id": 1, "course_id": COURSE, "student_id": "S1", "name": "n"})
    old["meetings"].insert({"id": 1, "course_id": COURSE, "source_key": "k", "duration_s": 120.0})
    old["unknown_clusters"].insert(
        {"meeting_id": 1, "cluster_no": 1, "model": "m", "centroid": _vec(1),
         "seconds_by_minute": "[40.0, 0.0]", "label_student_pk": 1}
    )  # fmt: skip
    old["presence"].insert_all(  # 10 s seen by the analysis in minute 0, 40 s labelled
        [
            {"meeting_id": 1, "student_pk": 1, "minute": 0, "seconds_seen": 50.0, "present": 1},
            {"meeting_id": 1, "student_pk": 1, "minute": 1, "seconds_seen": 20.0, "present": 0},
        ]
    )
    conn.commit()
    conn.close()
    db = storage.open_db(tmp_path)
    rows = list(db.query("select minute, auto_seconds from presence order by minute"))
    assert [(r["minute"], r["auto_seconds"]) for r in rows] == [(0, 10.0), (1, 20.0)]
    unlabel_cluster(db, 1, 1, attendance_settings=Config().attendance)
    assert storage.meeting_presence(db, 1)[1] == [10.0, 20.0]
