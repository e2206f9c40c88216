"""SQLite storage: schema version, WAL, retention."""

from __future__ import annotations

import sqlite3

import pytest

from pipeline import storage
from pipeline.cli import main


def test_schema_is_versioned_and_in_wal_mode(tmp_path):
    db = storage.open_db(tmp_path)
    assert db.execute("pragma user_version").fetchone()[0] == storage.SCHEMA_VERSION
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    expected = {
        "courses",
        "students",
        "photos",
        "embeddings",
        "meetings",
        "recordings",
        "presence",
        "attendance",
        "unknown_clusters",
        "plugin_settings",
    }
    assert expected <= set(db.table_names())
    db.conn.close()
    storage.open_db(tmp_path)  # reopening applies nothing twice


def test_newer_schema_is_refused(tmp_path):
    storage.open_db(tmp_path).conn.close()
    conn = sqlite3.connect(tmp_path / storage.DB_NAME)
    conn.execute(f"pragma user_version = {storage.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(storage.StorageError, match="newer than this rollcall"):
        storage.open_db(tmp_path)


def test_retention_deletes_old_meetings_only(home, monkeypatch, capsys):
    db = storage.open_db(home)
    storage.add_course(db, "C", "c")
    old = storage.upsert_meeting(
        db, {"course_id": "C", "source_key": "old", "analyzed_at": "2020-01-01T00:00:00+00:00"}
    )
    new = storage.upsert_meeting(
        db, {"course_id": "C", "source_key": "new", "analyzed_at": storage.now_iso()}
    )
    pk = storage.upsert_student(db, "C", "S1")
    for meeting_id in (old, new):
        storage.replace_results(
            db,
            meeting_id,
            [
                {
                    "meeting_id": meeting_id,
                    "student_pk": pk,
                    "minute": 0,
                    "seconds_seen": 60.0,
                    "present": 1,
                }
            ],
            [
                {
                    "meeting_id": meeting_id,
                    "student_pk": pk,
                    "present_minutes": 1,
                    "attendance_pct": 100.0,
                    "status": "present",
                }
            ],
            [],
            {"status": "done"},
        )
    monkeypatch.setenv("ROLLCALL_PRIVACY_RETENTION_DAYS", "30")
    assert main(["retention", "run"]) == 0
    assert "deleted 1 meeting(s)" in capsys.readouterr().out
    assert [m["id"] for m in storage.list_meetings(db)] == [new]
    assert db["presence"].count == 1 and db["attendance"].count == 1
    monkeypatch.setenv("ROLLCALL_PRIVACY_RETENTION_DAYS", "0")
    assert main(["retention", "run"]) == 0
    assert "kept forever" in capsys.readouterr().out
