"""SQLite storage: schema version, WAL, retention."""

from __future__ import annotations

import sqlite3

import pytest

from rollcall.cli.main import main
from rollcall.store import retention, storage


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
    assert retention.purge_older_than(db, 30) == 1
    for table in by_meeting:
        assert db[table].count_where("meeting_id = ?", [old]) == 0, table
        if table not in ("embeddings", "photos"):
            assert db[table].count_where("meeting_id = ?", [new]) > 0, table


def _meeting(db, key: str, **fields) -> int:
    return storage.upsert_meeting(db, {"course_id": "C", "source_key": key, **fields})


def test_retention_counts_from_the_class_and_dry_run_deletes_nothing(home, monkeypatch, capsys):
    """A class of 2020 analysed (again) today is past a 30-day retention; a class of last
    week whose analysis is old is not. --dry-run lists what would go and keeps it."""
    from datetime import UTC, datetime, timedelta

    db = storage.open_db(home)
    storage.add_course(db, "C", "c")
    now = datetime.now(UTC)
    recent = (now - timedelta(days=5)).isoformat(timespec="seconds")
    old_class = _meeting(
        db, "old-class", title="Week 1", start_time="2020-01-06T09:00", analyzed_at=now.isoformat()
    )
    kept = _meeting(db, "recent-class", start_time=recent, analyzed_at=now.isoformat())
    no_start = _meeting(db, "no-start", analyzed_at="2020-01-01T00:00:00+00:00")
    reanalysed_late = _meeting(
        db, "late-analysis", start_time=recent, analyzed_at="2020-01-01T00:00:00+00:00"
    )
    monkeypatch.setenv("ROLLCALL_PRIVACY_RETENTION_DAYS", "30")
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["retention", "run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 meeting(s) older than 30 days would be deleted; nothing was deleted" in out
    assert "2020-01-06 (class start)" in out and "2020-01-01 (analysis)" in out
    assert len(storage.list_meetings(db)) == 4
    assert main(["retention", "run"]) == 0
    assert "deleted 2 meeting(s)" in capsys.readouterr().out
    assert [m["id"] for m in storage.list_meetings(db)] == [kept, reanalysed_late]
    assert old_class not in {m["id"] for m in storage.list_meetings(db)}
    assert no_start not in {m["id"] for m in storage.list_meetings(db)}


NAME, SID = "Quintessa Vorhaelder", "S-ZQX981"
PHOTO = b"PHOTO-BYTES-7f3a9c" * 64
TOPIC, HOST, URL = (
    "Topic-Kestrel-4471",
    "host-kestrel@example.edu",
    "https://dl.example/KESTREL-URL",
)


def _raw(home) -> bytes:
    """Every byte SQLite keeps on disk for the database (the file and its WAL)."""
    return b"".join(
        p.read_bytes()
        for p in (home / storage.DB_NAME, home / f"{storage.DB_NAME}-wal")
        if p.exists()
    )


def test_erased_data_is_not_left_in_the_database_files(home, monkeypatch):
    """On a build where secure_delete is off by default, a removed student's name, id and
    photo, and a purged meeting's Zoom job (topic, host, download URL), must not stay
    readable in the database file's free pages or in the WAL."""
    import json

    import numpy as np

    from rollcall.store import jobs

    real_connect = sqlite3.connect

    def connect_secure_delete_off(*args, **kwargs):  # what such a build does by default
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect_secure_delete_off)
    db = storage.open_db(home)
    storage.add_course(db, "C", "c")
    gone = storage.upsert_student(db, "C", SID, NAME, "q@example.edu")
    storage.upsert_student(db, "C", "S2", "Other Student")
    photo = storage.add_photo(db, gone, {"filename": "q.jpg", "sha256": "x", "image": PHOTO})
    storage.save_embedding(db, photo, gone, "m", np.ones(8, np.float32))
    warnings = [
        "no gallery view: speaker view analysed",
        f"{SID} {NAME}: connected 3 minute(s) without being recognised (camera off or not "
        "recognised)",
        "S2 Other Student: recognised on camera but not in Zoom's participants list",
    ]
    old = _meeting(
        db, "zoom:old", start_time="2020-01-06T09:00:00+00:00", warnings="\n".join(warnings)
    )
    db["participants"].insert({"meeting_id": old, "name": NAME, "student_pk": gone})
    job, _ = jobs.enqueue(
        db,
        course_id="C",
        meeting_uuid="uuid-kestrel==",
        file_id="f1",
        payload={"download_url": URL, "topic": TOPIC},
        zoom_meeting_id=98765432101,
        topic=TOPIC,
        host_email=HOST,
    )
    with db.conn:
        db.execute(
            "update jobs set state = 'done', result_meeting_id = ? where id = ?", [old, job.id]
        )
    running, _ = jobs.enqueue(db, course_id="C", meeting_uuid="u2", file_id="f2", payload={})
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # an older database: it is all in the file
    raw = _raw(home)
    assert all(s.encode() in raw for s in (NAME, SID, TOPIC, HOST, URL)) and PHOTO in raw

    storage.remove_student(db, "C", SID)
    kept = storage.get_meeting(db, old)["warnings"].split("\n")
    assert kept == [warnings[0], warnings[2]]
    raw = _raw(home)
    assert NAME.encode() not in raw and SID.encode() not in raw and PHOTO[:64] not in raw
    assert json.dumps(NAME).encode() not in raw

    assert retention.purge_older_than(db, 30, home) == 1
    assert jobs.find(db, jobs.job_key("uuid-kestrel==", "f1")) is None
    assert db["job_events"].count_where("job_id = ?", [job.id]) == 0
    assert jobs.get(db, running.id).state == "queued"  # an unfinished job is not touched
    raw = _raw(home)
    for secret in (TOPIC, HOST, URL, "uuid-kestrel=="):
        assert secret.encode() not in raw, secret
    assert db.execute("pragma secure_delete").fetchone()[0] == 1
