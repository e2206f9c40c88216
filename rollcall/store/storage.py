"""SQLite storage (via sqlite-utils): schema, migrations and the queries the app needs.

One database file in the data directory, WAL mode, schema version in
``PRAGMA user_version``. Each migration is a function that takes the schema
from version N-1 to N; ``open_db`` applies the missing ones in a transaction.

Embeddings are stored as float32 bytes together with the name of the model
that made them, so changing the model pack re-embeds from the stored photos
instead of mixing incompatible vectors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

DB_NAME = "rollcall.db"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _migration_1(db: sqlite_utils.Database) -> None:
    db["courses"].create({"course_id": str, "title": str, "created_at": str}, pk="course_id")
    db["students"].create(
        {
            "id": int,
            "course_id": str,
            "student_id": str,
            "name": str,
            "email": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("course_id", "courses", "course_id")],
    )
    db["students"].create_index(["course_id", "student_id"], unique=True)
    db["photos"].create(
        {
            "id": int,
            "student_pk": int,
            "filename": str,
            "sha256": str,
            "image": bytes,
            "width": int,
            "height": int,
            "face_px": int,
            "det_score": float,
            "sharpness": float,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("student_pk", "students", "id")],
    )
    db["photos"].create_index(["student_pk", "filename"], unique=True)
    db["embeddings"].create(
        {
            "id": int,
            "photo_id": int,
            "student_pk": int,
            "model": str,
            "dim": int,
            "vector": bytes,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("photo_id", "photos", "id"), ("student_pk", "students", "id")],
    )
    db["embeddings"].create_index(["photo_id", "model"], unique=True)
    db["meetings"].create(
        {
            "id": int,
            "course_id": str,
            "source_key": str,
            "title": str,
            "source": str,
            "start_time": str,
            "duration_s": float,
            "status": str,
            "error": str,
            "model": str,
            "warnings": str,
            "created_at": str,
            "analyzed_at": str,
        },
        pk="id",
    )
    db["meetings"].create_index(["source_key"], unique=True)
    db["recordings"].create(
        {
            "id": int,
            "meeting_id": int,
            "path": str,
            "sha256": str,
            "size": int,
            "duration_s": float,
            "width": int,
            "height": int,
            "fps": float,
            "status": str,
            "error": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("meeting_id", "meetings", "id")],
    )
    db["presence"].create(
        {
            "meeting_id": int,
            "student_pk": int,
            "minute": int,
            "seconds_seen": float,
            "present": int,
        },
        pk=("meeting_id", "student_pk", "minute"),
    )
    db["attendance"].create(
        {
            "meeting_id": int,
            "student_pk": int,
            "present_minutes": int,
            "attendance_pct": float,
            "status": str,
        },
        pk=("meeting_id", "student_pk"),
    )
    db["unknown_clusters"].create(
        {
            "id": int,
            "meeting_id": int,
            "cluster_no": int,
            "model": str,
            "centroid": bytes,
            "n_tracks": int,
            "n_samples": int,
            "first_s": float,
            "last_s": float,
            "seconds_by_minute": str,
            "label_student_pk": int,
            "labeled_at": str,
        },
        pk="id",
    )
    db["unknown_clusters"].create_index(["meeting_id", "cluster_no"], unique=True)
    db["plugin_settings"].create(
        {"plugin": str, "course_id": str, "enabled": int, "updated_at": str, "updated_by": str},
        pk=("plugin", "course_id"),
    )


def _migration_2(db: sqlite_utils.Database) -> None:
    from rollcall.store.jobs import migrate_jobs

    migrate_jobs(db)


def _migration_3(db: sqlite_utils.Database) -> None:
    """Zoom's participants report and its reconciliation with face presence."""
    db["participants"].create(
        {
            "id": int,
            "meeting_id": int,
            "name": str,
            "email": str,
            "join_time": str,
            "leave_time": str,
            "student_pk": int,
        },
        pk="id",
    )
    db["participants"].create_index(["meeting_id"])
    db["reconciliation"].create(
        {
            "meeting_id": int,
            "student_pk": int,
            "connected_minutes": int,
            "unrecognized_minutes": int,
            "in_participants": int,
        },
        pk=("meeting_id", "student_pk"),
    )


def _migration_4(db: sqlite_utils.Database) -> None:
    """Plugin administration audit log, plugin errors and the analyzers' tables."""
    from rollcall.store.plugin_admin import migrate_plugin_admin

    migrate_plugin_admin(db)


def _migration_5(db: sqlite_utils.Database) -> None:
    """Instructors' manual attendance corrections."""
    from rollcall.store.corrections import migrate_corrections

    migrate_corrections(db)


def _migration_6(db: sqlite_utils.Database) -> None:
    """The notification outbox."""
    from rollcall.store.outbox import migrate_outbox

    migrate_outbox(db)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StorageError(Exception):
    """The database cannot be used (newer schema, locked, corrupt)."""


def open_db(home: Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database in ``home`` and bring its schema up to date."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / DB_NAME
    try:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        db = sqlite_utils.Database(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database {path} has schema version {version}, newer than this rollcall "
            f"understands ({SCHEMA_VERSION}); upgrade rollcall"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        with conn:
            MIGRATIONS[number - 1](db)
            conn.execute(f"PRAGMA user_version = {number}")
    return db


# ---------------------------------------------------------------- courses & students


class NotFound(LookupError):
    """A course, student, photo or meeting that the user named does not exist."""


def add_course(db: sqlite_utils.Database, course_id: str, title: str) -> bool:
    """Create a course; returns False when it already existed (title updated)."""
    if db["courses"].count_where("course_id = ?", [course_id]):
        db["courses"].update(course_id, {"title": title})
        return False
    db["courses"].insert({"course_id": course_id, "title": title, "created_at": now_iso()})
    return True


def get_course(db: sqlite_utils.Database, course_id: str) -> dict[str, Any]:
    rows = list(db["courses"].rows_where("course_id = ?", [course_id]))
    if not rows:
        known = ", ".join(r["course_id"] for r in db["courses"].rows) or "none yet"
        raise NotFound(
            f"course {course_id!r} does not exist (known: {known}); "
            f"create it with: rollcall course add {course_id} --title ..."
        )
    return rows[0]


def list_courses(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(
        db.query(
            "select c.course_id, c.title, count(s.id) as students from courses c "
            "left join students s on s.course_id = c.course_id group by c.course_id order by c.course_id"
        )
    )


def upsert_student(
    db: sqlite_utils.Database, course_id: str, student_id: str, name: str = "", email: str = ""
) -> int:
    """Create or update a student; returns its primary key."""
    get_course(db, course_id)
    rows = list(
        db["students"].rows_where("course_id = ? and student_id = ?", [course_id, student_id])
    )
    if rows:
        changes = {k: v for k, v in (("name", name), ("email", email)) if v}
        if changes:
            db["students"].update(rows[0]["id"], changes)
        return rows[0]["id"]
    return (
        db["students"]
        .insert(
            {
                "course_id": course_id,
                "student_id": student_id,
                "name": name or student_id,
                "email": email,
                "created_at": now_iso(),
            }
        )
        .last_pk
    )


def get_student(db: sqlite_utils.Database, course_id: str, student_id: str) -> dict[str, Any]:
    rows = list(
        db["students"].rows_where("course_id = ? and student_id = ?", [course_id, student_id])
    )
    if not rows:
        raise NotFound(f"student {student_id!r} is not enrolled in course {course_id!r}")
    return rows[0]


def list_students(db: sqlite_utils.Database, course_id: str) -> list[dict[str, Any]]:
    get_course(db, course_id)
    return list(
        db.query(
            "select s.id, s.student_id, s.name, s.email, count(p.id) as photos from students s "
            "left join photos p on p.student_pk = s.id where s.course_id = ? "
            "group by s.id order by s.student_id",
            [course_id],
        )
    )


def tables_with_column(db: sqlite_utils.Database, column: str) -> list[str]:
    """Every table holding ``column`` (``student_pk``, ``meeting_id``): what must go when a
    student or a meeting is deleted, plugin tables included (emotion, engagement,
    outbox...), so a new table cannot be forgotten. Embeddings come before the photos
    they reference."""
    names = [t for t in db.table_names() if column in {c.name for c in db[t].columns}]
    return sorted(names, key=lambda t: t != "embeddings")


def remove_student(db: sqlite_utils.Database, course_id: str, student_id: str) -> None:
    """Delete a student with every photo, embedding and result that belongs to them."""
    pk = get_student(db, course_id, student_id)["id"]
    with db.conn:
        for table in tables_with_column(db, "student_pk"):
            db.execute(f"delete from {table} where student_pk = ?", [pk])
        db.execute(
            "update unknown_clusters set label_student_pk = null where label_student_pk = ?", [pk]
        )
        db.execute("delete from students where id = ?", [pk])


# ---------------------------------------------------------------- photos & embeddings


def add_photo(db: sqlite_utils.Database, student_pk: int, photo: dict[str, Any]) -> int:
    row = dict(photo, student_pk=student_pk, created_at=now_iso())
    return db["photos"].insert(row, replace=False).last_pk


def photos_of(db: sqlite_utils.Database, student_pk: int) -> list[dict[str, Any]]:
    return list(db["photos"].rows_where("student_pk = ?", [student_pk], order_by="id"))


def remove_photo(db: sqlite_utils.Database, course_id: str, student_id: str, filename: str) -> None:
    pk = get_student(db, course_id, student_id)["id"]
    rows = list(db["photos"].rows_where("student_pk = ? and filename = ?", [pk, filename]))
    if not rows:
        names = ", ".join(p["filename"] for p in photos_of(db, pk)) or "none"
        raise NotFound(f"student {student_id!r} has no photo {filename!r} (photos: {names})")
    with db.conn:
        db.execute("delete from embeddings where photo_id = ?", [rows[0]["id"]])
        db.execute("delete from photos where id = ?", [rows[0]["id"]])


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).copy()


def save_embedding(
    db: sqlite_utils.Database, photo_id: int, student_pk: int, model: str, vector: np.ndarray
) -> None:
    with db.conn:
        db.execute(
            "insert into embeddings (photo_id, student_pk, model, dim, vector, created_at) "
            "values (?, ?, ?, ?, ?, ?) on conflict(photo_id, model) do update set "
            "vector = excluded.vector, dim = excluded.dim, created_at = excluded.created_at",
            [photo_id, student_pk, model, int(vector.shape[0]), vector_to_blob(vector), now_iso()],
        )


@dataclass(frozen=True, slots=True)
class StudentEmbeddings:
    student_pk: int
    student_id: str
    name: str
    email: str
    vectors: np.ndarray  # (k, d), may be empty (0, d) when nothing is embedded yet


def course_embeddings(
    db: sqlite_utils.Database, course_id: str, model: str
) -> list[StudentEmbeddings]:
    """Every student of the course with their photo embeddings made by ``model``."""
    out = []
    for s in db["students"].rows_where("course_id = ?", [course_id], order_by="student_id"):
        vecs = [
            blob_to_vector(r["vector"])
            for r in db["embeddings"].rows_where(
                "student_pk = ? and model = ?", [s["id"], model], order_by="id"
            )
        ]
        out.append(
            StudentEmbeddings(
                student_pk=s["id"],
                student_id=s["student_id"],
                name=s["name"],
                email=s["email"] or "",
                vectors=np.stack(vecs) if vecs else np.zeros((0, 0), np.float32),
            )
        )
    return out


def photos_missing_embeddings(
    db: sqlite_utils.Database, course_id: str, model: str
) -> list[dict[str, Any]]:
    return list(
        db.query(
            "select p.* from photos p join students s on s.id = p.student_pk "
            "where s.course_id = ? and not exists (select 1 from embeddings e "
            "where e.photo_id = p.id and e.model = ?) order by p.id",
            [course_id, model],
        )
    )


# ---------------------------------------------------------------- meetings & results


def upsert_meeting(db: sqlite_utils.Database, meeting: dict[str, Any]) -> int:
    """Create the meeting or return the existing one with the same ``source_key``."""
    rows = list(db["meetings"].rows_where("source_key = ?", [meeting["source_key"]]))
    if rows:
        db["meetings"].update(
            rows[0]["id"], {k: v for k, v in meeting.items() if k != "source_key"}
        )
        return rows[0]["id"]
    return db["meetings"].insert(dict(meeting, created_at=now_iso())).last_pk


def get_meeting(db: sqlite_utils.Database, meeting_id: int) -> dict[str, Any]:
    try:
        return db["meetings"].get(meeting_id)
    except sqlite_utils.db.NotFoundError:
        raise NotFound(f"meeting {meeting_id} does not exist") from None


def set_meeting_status(
    db: sqlite_utils.Database, meeting_id: int, status: str, error: str = ""
) -> None:
    db["meetings"].update(meeting_id, {"status": status, "error": error})


def save_recording(db: sqlite_utils.Database, recording: dict[str, Any]) -> int:
    return db["recordings"].insert(dict(recording, created_at=now_iso())).last_pk


def replace_results(
    db: sqlite_utils.Database,
    meeting_id: int,
    presence_rows: Iterable[dict[str, Any]],
    attendance_rows: Iterable[dict[str, Any]],
    clusters: Iterable[dict[str, Any]],
    meeting_changes: dict[str, Any],
) -> None:
    """Atomically replace a meeting's automatic results (a re-run never duplicates rows)."""
    with db.conn:
        for table in ("presence", "attendance", "unknown_clusters"):
            db.execute(f"delete from {table} where meeting_id = ?", [meeting_id])
        db["presence"].insert_all(presence_rows)
        db["attendance"].insert_all(attendance_rows)
        db["unknown_clusters"].insert_all(
            dict(c, seconds_by_minute=json.dumps(c["seconds_by_minute"])) for c in clusters
        )
        db["meetings"].update(meeting_id, meeting_changes)


def meeting_presence(db: sqlite_utils.Database, meeting_id: int) -> dict[int, list[float]]:
    """student_pk -> seconds seen per minute."""
    out: dict[int, list[float]] = {}
    for r in db.query(
        "select student_pk, minute, seconds_seen from presence where meeting_id = ? "
        "order by student_pk, minute",
        [meeting_id],
    ):
        out.setdefault(r["student_pk"], []).append(r["seconds_seen"])
    return out


def list_meetings(db: sqlite_utils.Database, course_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("where course_id = ?", [course_id]) if course_id else ("", [])
    return list(
        db.query(
            f"select id, course_id, title, source, start_time, duration_s, status, error, analyzed_at "
            f"from meetings {where} order by id",
            args,
        )
    )


def unknown_clusters(db: sqlite_utils.Database, meeting_id: int) -> list[dict[str, Any]]:
    get_meeting(db, meeting_id)
    rows = list(
        db["unknown_clusters"].rows_where("meeting_id = ?", [meeting_id], order_by="cluster_no")
    )
    for r in rows:
        r["seconds_by_minute"] = json.loads(r["seconds_by_minute"] or "[]")
    return rows


def purge_older_than(db: sqlite_utils.Database, days: int, home: Path | None = None) -> int:
    """Delete meetings analysed more than ``days`` days ago with all their results.

    Returns the number of meetings deleted; ``days == 0`` keeps everything.
    """
    if days <= 0:
        return 0
    cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    ids = [
        r["id"]
        for r in db.query(
            "select id from meetings where coalesce(analyzed_at, created_at) < ?", [cutoff]
        )
    ]
    with db.conn:
        for meeting_id in ids:
            for table in tables_with_column(db, "meeting_id"):
                db.execute(f"delete from {table} where meeting_id = ?", [meeting_id])
            db.execute("delete from meetings where id = ?", [meeting_id])
    if home is not None:
        import shutil

        for meeting_id in ids:
            shutil.rmtree(home / "evidence" / str(meeting_id), ignore_errors=True)
    return len(ids)
