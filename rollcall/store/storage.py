"""SQLite storage (via sqlite-utils): the queries the app needs on the core tables.

The schema and its migrations are in ``rollcall.store.schema``; opening a
connection, the clock and the write transaction in ``rollcall.store.db``,
whose rule holds here too: a connection never crosses threads (open one per
thread/task with ``open_db``; never pass one to another thread).

Embeddings are stored as float32 bytes together with the name of the model
that made them, so changing the model pack re-embeds from the stored photos
instead of mixing incompatible vectors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from rollcall.store.db import (
    DB_NAME,
    StorageError,
    checkpoint_erased,
    inserted_pk,
    now_iso,
    open_db,
    write_transaction,
)
from rollcall.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["DB_NAME", "MIGRATIONS", "SCHEMA_VERSION", "StorageError", "now_iso", "open_db"]


# ---------------------------------------------------------------- courses & students


class NotFound(LookupError):
    """A course, student, photo or meeting that the user named does not exist."""


def add_course(db: sqlite_utils.Database, course_id: str, title: str) -> bool:
    """Create a course; returns False when it already existed (title updated)."""
    if db.table("courses").count_where("course_id = ?", [course_id]):
        db.table("courses").update(course_id, {"title": title})
        return False
    db.table("courses").insert({"course_id": course_id, "title": title, "created_at": now_iso()})
    return True


def get_course(db: sqlite_utils.Database, course_id: str) -> dict[str, Any]:
    rows = list(db.table("courses").rows_where("course_id = ?", [course_id]))
    if not rows:
        known = ", ".join(r["course_id"] for r in db.table("courses").rows) or "none yet"
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
        db.table("students").rows_where("course_id = ? and student_id = ?", [course_id, student_id])
    )
    if rows:
        changes = {k: v for k, v in (("name", name), ("email", email)) if v}
        if changes:
            db.table("students").update(rows[0]["id"], changes)
        return int(rows[0]["id"])
    return inserted_pk(
        db.table("students").insert(
            {
                "course_id": course_id,
                "student_id": student_id,
                "name": name or student_id,
                "email": email,
                "created_at": now_iso(),
            }
        )
    )


def get_student(db: sqlite_utils.Database, course_id: str, student_id: str) -> dict[str, Any]:
    rows = list(
        db.table("students").rows_where("course_id = ? and student_id = ?", [course_id, student_id])
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
    """Delete a student with every photo, embedding and result that belongs to them,
    and every line naming them in the warnings of the course's meetings (Zoom's
    participants reconciliation); the deleted content is overwritten
    (``secure_delete``) and the WAL checkpointed, so it stays in neither file."""
    student = get_student(db, course_id, student_id)
    pk = student["id"]
    with write_transaction(db):
        for table in tables_with_column(db, "student_pk"):
            db.execute(f"delete from {table} where student_pk = ?", [pk])
        db.execute(
            "update unknown_clusters set label_student_pk = null where label_student_pk = ?", [pk]
        )
        _scrub_warnings(db, course_id, [student["student_id"], student["name"]])
        db.execute("delete from students where id = ?", [pk])
    checkpoint_erased(db)


def _scrub_warnings(db: sqlite_utils.Database, course_id: str, words: list[str]) -> None:
    """Drop every warning line of the course's meetings that names one of ``words``
    (as a whole word: "Ana" does not match "Analysis")."""
    words = [w for w in words if w and w.strip()]
    if not words:
        return
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words))
    for m in db.query(
        "select id, warnings from meetings where course_id = ? and warnings is not null "
        "and warnings != ''",
        [course_id],
    ):
        lines = m["warnings"].split("\n")
        kept = [line for line in lines if not pattern.search(line)]
        if len(kept) != len(lines):
            db.execute("update meetings set warnings = ? where id = ?", ["\n".join(kept), m["id"]])


# ---------------------------------------------------------------- photos & embeddings


def add_photo(db: sqlite_utils.Database, student_pk: int, photo: dict[str, Any]) -> int:
    row = dict(photo, student_pk=student_pk, created_at=now_iso())
    return inserted_pk(db.table("photos").insert(row, replace=False))


def photos_of(db: sqlite_utils.Database, student_pk: int) -> list[dict[str, Any]]:
    return list(db.table("photos").rows_where("student_pk = ?", [student_pk], order_by="id"))


def remove_photo(db: sqlite_utils.Database, course_id: str, student_id: str, filename: str) -> None:
    pk = get_student(db, course_id, student_id)["id"]
    rows = list(db.table("photos").rows_where("student_pk = ? and filename = ?", [pk, filename]))
    if not rows:
        names = ", ".join(p["filename"] for p in photos_of(db, pk)) or "none"
        raise NotFound(f"student {student_id!r} has no photo {filename!r} (photos: {names})")
    with write_transaction(db):
        db.execute("delete from embeddings where photo_id = ?", [rows[0]["id"]])
        db.execute("delete from photos where id = ?", [rows[0]["id"]])
    checkpoint_erased(db)


def vector_to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def blob_to_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).copy()


def save_embedding(
    db: sqlite_utils.Database,
    photo_id: int,
    student_pk: int,
    model: str,
    vector: np.ndarray,
    masked: np.ndarray | None = None,
    filled: np.ndarray | None = None,
) -> None:
    """Store a photo's embedding, ``masked`` (the mean of its masked copies) and
    ``filled`` (the mean of its filled-crop embeddings) if made."""
    masked_blob = None if masked is None else vector_to_blob(masked)
    filled_blob = None if filled is None else vector_to_blob(filled)
    with write_transaction(db):
        db.execute(
            "insert into embeddings (photo_id, student_pk, model, dim, vector, masked_vector, "
            "filled_vector, created_at) values (?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict(photo_id, model) do update "
            "set vector = excluded.vector, dim = excluded.dim, "
            "masked_vector = excluded.masked_vector, filled_vector = excluded.filled_vector, "
            "created_at = excluded.created_at",
            [
                photo_id,
                student_pk,
                model,
                int(vector.shape[0]),
                vector_to_blob(vector),
                masked_blob,
                filled_blob,
                now_iso(),
            ],
        )


def save_filled_embedding(
    db: sqlite_utils.Database, photo_id: int, model: str, filled: np.ndarray
) -> None:
    """Add the filled-crop embedding to a photo embedded before they existed."""
    with write_transaction(db):
        db.execute(
            "update embeddings set filled_vector = ? where photo_id = ? and model = ?",
            [vector_to_blob(filled), photo_id, model],
        )


@dataclass(frozen=True, slots=True)
class StudentEmbeddings:
    student_pk: int
    student_id: str
    name: str
    email: str
    vectors: np.ndarray  # (k, d), may be empty (0, d) when nothing is embedded yet
    #: (k', d) masked-copy means of the photos that have one (photos embedded before
    #: masked templates existed, or with masked copies off, have none)
    masked: np.ndarray | None = None
    #: (k'', d) filled-crop means of the photos that have one (None when none has)
    filled: np.ndarray | None = None


def course_embeddings(
    db: sqlite_utils.Database, course_id: str, model: str
) -> list[StudentEmbeddings]:
    """Every student of the course with their photo embeddings made by ``model``."""
    out = []
    for s in db.table("students").rows_where("course_id = ?", [course_id], order_by="student_id"):
        rows = list(
            db.table("embeddings").rows_where(
                "student_pk = ? and model = ?", [s["id"], model], order_by="id"
            )
        )
        vecs = [blob_to_vector(r["vector"]) for r in rows]
        masked = [blob_to_vector(r["masked_vector"]) for r in rows if r.get("masked_vector")]
        filled = [blob_to_vector(r["filled_vector"]) for r in rows if r.get("filled_vector")]
        out.append(
            StudentEmbeddings(
                student_pk=s["id"],
                student_id=s["student_id"],
                name=s["name"],
                email=s["email"] or "",
                vectors=np.stack(vecs) if vecs else np.zeros((0, 0), np.float32),
                masked=np.stack(masked) if masked else None,
                filled=np.stack(filled) if filled else None,
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


def photos_missing_filled(
    db: sqlite_utils.Database, course_id: str, model: str
) -> list[dict[str, Any]]:
    """The course's photos embedded by ``model`` before filled-crop embeddings existed."""
    return list(
        db.query(
            "select p.* from photos p join students s on s.id = p.student_pk "
            "join embeddings e on e.photo_id = p.id and e.model = ? "
            "where s.course_id = ? and e.filled_vector is null order by p.id",
            [model, course_id],
        )
    )


# ---------------------------------------------------------------- meetings & results


def upsert_meeting(db: sqlite_utils.Database, meeting: dict[str, Any]) -> int:
    """Create the meeting or return the existing one with the same ``source_key``."""
    rows = list(db.table("meetings").rows_where("source_key = ?", [meeting["source_key"]]))
    if rows:
        db.table("meetings").update(
            rows[0]["id"], {k: v for k, v in meeting.items() if k != "source_key"}
        )
        return int(rows[0]["id"])
    return inserted_pk(db.table("meetings").insert(dict(meeting, created_at=now_iso())))


def find_meeting(db: sqlite_utils.Database, source_key: str) -> dict[str, Any] | None:
    """The meeting stored for this recording (``source_key``), or None."""
    rows = list(db.table("meetings").rows_where("source_key = ?", [source_key]))
    return rows[0] if rows else None


def get_meeting(db: sqlite_utils.Database, meeting_id: int) -> dict[str, Any]:
    try:
        return db.table("meetings").get(meeting_id)
    except sqlite_utils.db.NotFoundError:
        raise NotFound(f"meeting {meeting_id} does not exist") from None


def set_meeting_status(
    db: sqlite_utils.Database, meeting_id: int, status: str, error: str = ""
) -> None:
    db.table("meetings").update(meeting_id, {"status": status, "error": error})


def save_recording(db: sqlite_utils.Database, recording: dict[str, Any]) -> int:
    return inserted_pk(db.table("recordings").insert(dict(recording, created_at=now_iso())))


def replace_results(
    db: sqlite_utils.Database,
    meeting_id: int,
    presence_rows: Iterable[dict[str, Any]],
    attendance_rows: Iterable[dict[str, Any]],
    clusters: Iterable[dict[str, Any]],
    meeting_changes: dict[str, Any],
    evidence_rows: Iterable[dict[str, Any]] = (),
) -> None:
    """Atomically replace a meeting's automatic results (a re-run never duplicates rows).

    A presence row's ``auto_seconds`` (what the analysis saw, before unknown-face labels
    add to ``seconds_seen``) defaults to its ``seconds_seen``.

    Called inside the caller's ``write_transaction`` it is a savepoint of it, so the
    caller can store more (the plugins' rows) and commit or roll back everything at once.
    """
    with write_transaction(db):
        for table in ("presence", "attendance", "unknown_clusters", "minute_evidence"):
            db.execute(f"delete from {table} where meeting_id = ?", [meeting_id])
        db.table("presence").insert_all(
            dict(r, auto_seconds=r.get("auto_seconds", r["seconds_seen"])) for r in presence_rows
        )
        db.table("attendance").insert_all(attendance_rows)
        db.table("unknown_clusters").insert_all(
            dict(c, seconds_by_minute=json.dumps(c["seconds_by_minute"])) for c in clusters
        )
        db.table("minute_evidence").insert_all(
            dict(r, tracks=json.dumps(list(r.get("tracks", ())))) for r in evidence_rows
        )
        db.table("meetings").update(meeting_id, meeting_changes)


def minute_evidence(
    db: sqlite_utils.Database, meeting_id: int, student_pk: int
) -> list[dict[str, Any]]:
    """The stored evidence rows of one student in one meeting, by minute."""
    rows = list(
        db["minute_evidence"].rows_where(
            "meeting_id = ? and student_pk = ?", [meeting_id, student_pk], order_by="minute"
        )
    )
    for r in rows:
        r["tracks"] = json.loads(r["tracks"] or "[]")
    return rows


def course_unknown_centroids(
    db: sqlite_utils.Database, course_id: str, model: str, *, exclude_meeting: int | None = None
) -> np.ndarray:
    """(m, d) centroids of the unlabelled unknown-face clusters of the course's meetings
    (made by ``model``): faces of people who are not enrolled, the cohort of non-students."""
    rows = db.query(
        "select c.centroid from unknown_clusters c join meetings m on m.id = c.meeting_id "
        "where m.course_id = ? and c.model = ? and c.label_student_pk is null "
        "and c.meeting_id != ?",
        [course_id, model, -1 if exclude_meeting is None else exclude_meeting],
    )
    vectors = [blob_to_vector(r["centroid"]) for r in rows if r["centroid"]]
    if not vectors:
        return np.zeros((0, 0), np.float32)
    out = np.stack(vectors)
    normalised: np.ndarray = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return normalised


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
        db.table("unknown_clusters").rows_where(
            "meeting_id = ?", [meeting_id], order_by="cluster_no"
        )
    )
    for r in rows:
        r["seconds_by_minute"] = json.loads(r["seconds_by_minute"] or "[]")
    return rows


def delete_meeting_rows(db: sqlite_utils.Database, meeting_id: int) -> None:
    """Delete a meeting and every row of every table holding its ``meeting_id`` (call it
    inside a ``write_transaction``)."""
    for table in tables_with_column(db, "meeting_id"):
        db.execute(f"delete from {table} where meeting_id = ?", [meeting_id])
    db.execute("delete from meetings where id = ?", [meeting_id])


def remove_evidence(home: Path, meeting_ids: Iterable[int]) -> None:
    """Delete the evidence folders of deleted meetings (frames and crops, if any were kept)."""
    import shutil

    for meeting_id in meeting_ids:
        shutil.rmtree(home / "evidence" / str(meeting_id), ignore_errors=True)


# ---------------------------------------------------------------- removal by an admin

#: Job states in which a job may still write a meeting (``rollcall.store.jobs``).
_ACTIVE_JOB_STATES = ("queued", "downloading", "analyzing")
#: Tables holding a ``course_id`` that outlive the course: the plugin audit log, and the
#: jobs (deleted with their meetings below, or refused while active).
_KEPT_COURSE_TABLES = frozenset({"plugin_audit", "jobs"})


@dataclass(frozen=True, slots=True)
class Removal:
    """What removing a meeting or a course deletes: row counts per table, and the meetings."""

    what: str  # "meeting 3", "course CS101"
    meeting_ids: tuple[int, ...]
    rows: dict[str, int]  # table -> rows deleted (tables with none are left out)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        return f"{self.what}: {counts or 'no rows'}"


def _count(db: sqlite_utils.Database, table: str, where: str, ids: Iterable[Any]) -> int:
    ids = list(ids)
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    return int(
        db.execute(f"select count(*) from {table} where {where} in ({marks})", ids).fetchone()[0]
    )


def _job_ids(db: sqlite_utils.Database, meeting_ids: Iterable[int]) -> list[int]:
    ids = list(meeting_ids)
    if "jobs" not in db.table_names() or not ids:
        return []
    marks = ",".join("?" * len(ids))
    return [
        r["id"] for r in db.query(f"select id from jobs where result_meeting_id in ({marks})", ids)
    ]


def _refuse_active_jobs(db: sqlite_utils.Database, where: str, args: list[Any], what: str) -> None:
    if "jobs" not in db.table_names():
        return
    marks = ",".join("?" * len(_ACTIVE_JOB_STATES))
    active = [
        r["id"]
        for r in db.query(
            f"select id from jobs where ({where}) and state in ({marks}) order by id",
            [*args, *_ACTIVE_JOB_STATES],
        )
    ]
    if active:
        raise StorageError(
            f"{what} still has active job(s) {', '.join(map(str, active))}; cancel them first "
            f"(rollcall jobs cancel ID) or wait for them to finish"
        )


def _meeting_removal(
    db: sqlite_utils.Database, what: str, meeting_ids: list[int], extra: dict[str, int]
) -> Removal:
    rows: dict[str, int] = {}
    rows["meetings"] = _count(db, "meetings", "id", meeting_ids)
    for table in tables_with_column(db, "meeting_id"):
        rows[table] = _count(db, table, "meeting_id", meeting_ids)
    jobs = _job_ids(db, meeting_ids)
    rows["jobs"] = len(jobs)
    if jobs:
        rows["job_events"] = _count(db, "job_events", "job_id", jobs)
    rows.update(extra)
    return Removal(what, tuple(meeting_ids), {t: n for t, n in rows.items() if n})


def plan_meeting_removal(db: sqlite_utils.Database, meeting_id: int) -> Removal:
    """What :func:`remove_meeting` would delete (nothing is deleted)."""
    get_meeting(db, meeting_id)
    return _meeting_removal(db, f"meeting {meeting_id}", [meeting_id], {})


def remove_meeting(db: sqlite_utils.Database, meeting_id: int, home: Path | None = None) -> Removal:
    """Delete a meeting with every row that holds it (results, corrections, participants,
    outbox, plugin rows...), the finished Zoom job rows that produced it and its evidence.

    Raises :class:`StorageError` while a job that may still write it is active.
    """
    plan = plan_meeting_removal(db, meeting_id)
    _refuse_active_jobs(db, "result_meeting_id = ?", [meeting_id], plan.what)
    with write_transaction(db):
        _delete_jobs(db, _job_ids(db, [meeting_id]))
        delete_meeting_rows(db, meeting_id)
    checkpoint_erased(db)
    if home is not None:
        remove_evidence(home, [meeting_id])
    return plan


def _delete_jobs(db: sqlite_utils.Database, job_ids: list[int]) -> None:
    for job_id in job_ids:
        db.execute("delete from job_events where job_id = ?", [job_id])
        db.execute("delete from jobs where id = ?", [job_id])


def plan_course_removal(db: sqlite_utils.Database, course_id: str) -> Removal:
    """What :func:`remove_course` would delete (nothing is deleted)."""
    get_course(db, course_id)
    meeting_ids = [
        r["id"]
        for r in db.table("meetings").rows_where("course_id = ?", [course_id], order_by="id")
    ]
    student_pks = [r["id"] for r in db.table("students").rows_where("course_id = ?", [course_id])]
    extra = {"courses": 1, "students": len(student_pks)}
    for table in tables_with_column(db, "student_pk"):
        if table not in tables_with_column(db, "meeting_id"):  # counted with the meetings
            extra[table] = _count(db, table, "student_pk", student_pks)
    with_meeting = set(tables_with_column(db, "meeting_id"))
    for table in tables_with_column(db, "course_id"):
        if table in {"courses", "students", "meetings", *_KEPT_COURSE_TABLES}:
            continue
        where = "course_id = ?"
        if table in with_meeting:  # rows of the course's meetings are counted with them
            where += " and (meeting_id is null or meeting_id not in (select id from meetings))"
        n = db.execute(f"select count(*) from {table} where {where}", [course_id]).fetchone()[0]
        extra[table] = extra.get(table, 0) + n
    return _meeting_removal(db, f"course {course_id}", meeting_ids, extra)


def remove_course(db: sqlite_utils.Database, course_id: str, home: Path | None = None) -> Removal:
    """Delete a course with its students (photos, embeddings), its meetings (as
    :func:`remove_meeting` does) and its per-course plugin settings; the plugin audit log
    stays. Raises :class:`StorageError` while a job of the course is active."""
    plan = plan_course_removal(db, course_id)
    _refuse_active_jobs(db, "course_id = ?", [course_id], plan.what)
    with write_transaction(db):
        _delete_jobs(db, _job_ids(db, plan.meeting_ids))
        for meeting_id in plan.meeting_ids:
            delete_meeting_rows(db, meeting_id)
        student_pks = [
            r["id"] for r in db.table("students").rows_where("course_id = ?", [course_id])
        ]
        for pk in student_pks:
            for table in tables_with_column(db, "student_pk"):
                db.execute(f"delete from {table} where student_pk = ?", [pk])
            db.execute(
                "update unknown_clusters set label_student_pk = null where label_student_pk = ?",
                [pk],
            )
        for table in tables_with_column(db, "course_id"):
            if table not in {"courses", *_KEPT_COURSE_TABLES}:
                db.execute(f"delete from {table} where course_id = ?", [course_id])
        db.execute("delete from courses where course_id = ?", [course_id])
    checkpoint_erased(db)
    if home is not None:
        remove_evidence(home, plan.meeting_ids)
    return plan
