"""SQLite storage: schema version, WAL, retention."""

from __future__ import annotations

import sqlite3

import pytest

from rollcall.cli.main import main
from rollcall.store import storage


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


def test_every_table_forgets_a_removed_student_and_a_purged_meeting(tmp_path):
    """Privacy: removing a student or purging a meeting reaches every table that holds
    them, the optional analyzers' (created through their hook) and the notification
    outbox included."""
    from rollcall.pipeline.plugin_manager import report_manager

    db = storage.open_db(tmp_path)
    report_manager().hook.rollcall_create_tables(db=db)
    storage.add_course(db, "C", "c")
    gone = storage.upsert_student(db, "C", "S1")
    kept = storage.upsert_student(db, "C", "S2")
    old = storage.upsert_meeting(
        db, {"course_id": "C", "source_key": "old", "analyzed_at": "2020-01-01T00:00:00+00:00"}
    )
    new = storage.upsert_meeting(
        db, {"course_id": "C", "source_key": "new", "analyzed_at": storage.now_iso()}
    )
    by_student = storage.tables_with_column(db, "student_pk")
    by_meeting = storage.tables_with_column(db, "meeting_id")
    assert {"emotion_minutes", "engagement_summary", "corrections", "participants"} <= set(
        by_student
    )
    assert {"emotion_minutes", "engagement_minutes", "outbox", "plugin_errors"} <= set(by_meeting)
    photo = storage.add_photo(db, gone, {"filename": "a.jpg", "sha256": "x", "image": b""})
    storage.save_embedding(db, photo, gone, "m", storage.blob_to_vector(b"\0" * 16))

    def fill(table: str) -> None:
        columns = {c.name for c in db[table].columns}
        for pk in (gone, kept):
            for meeting_id in (old, new):
                row = {"student_pk": pk, "meeting_id": meeting_id}
                db[table].insert({k: v for k, v in row.items() if k in columns}, alter=False)

    with db.conn:
        for table in sorted(set(by_student + by_meeting) - {"embeddings", "photos"}):
            db.execute(f"delete from {table}")  # start from nothing but the rows below
            fill(table)
    storage.remove_student(db, "C", "S1")
    for table in by_student:
        assert db[table].count_where("student_pk = ?", [gone]) == 0, table
    assert storage.purge_older_than(db, 30) == 1
    for table in by_meeting:
        assert db[table].count_where("meeting_id = ?", [old]) == 0, table
        if table not in ("embeddings", "photos"):
            assert db[table].count_where("meeting_id = ?", [new]) > 0, table
