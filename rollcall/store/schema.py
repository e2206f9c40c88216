"""The database schema, in one place: the core tables' numbered migrations.

``PRAGMA user_version`` holds the schema version; migration N takes the
schema from version N-1 to N, each in its own write transaction, and a
migration keeps its number and effect forever (append new ones, never edit an
old one), so any existing database upgrades. :func:`migrate` is applied by
``rollcall.store.db.open_db``.

Only core tables live here. A plugin that stores rows creates its own tables
with the ``rollcall_create_tables`` hook (``create table if not exists``) and
writes them through the connection and transaction it is handed
(``rollcall_save_results``); see ``rollcall/hookspecs.py``.

``jobs.result_meeting_id`` deliberately has no foreign key: retention deletes
meetings and must not be blocked by the jobs that produced them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from rollcall.store.common import StorageError, write_transaction


def migrate_core(db: sqlite_utils.Database) -> None:
    """Migration 1: courses, students, photos, embeddings, meetings and their results."""
    db.table("courses").create({"course_id": str, "title": str, "created_at": str}, pk="course_id")
    db.table("students").create(
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
    db.table("students").create_index(["course_id", "student_id"], unique=True)
    db.table("photos").create(
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
    db.table("photos").create_index(["student_pk", "filename"], unique=True)
    db.table("embeddings").create(
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
    db.table("embeddings").create_index(["photo_id", "model"], unique=True)
    db.table("meetings").create(
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
    db.table("meetings").create_index(["source_key"], unique=True)
    db.table("recordings").create(
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
    db.table("presence").create(
        {
            "meeting_id": int,
            "student_pk": int,
            "minute": int,
            "seconds_seen": float,
            "present": int,
        },
        pk=("meeting_id", "student_pk", "minute"),
    )
    db.table("attendance").create(
        {
            "meeting_id": int,
            "student_pk": int,
            "present_minutes": int,
            "attendance_pct": float,
            "status": str,
        },
        pk=("meeting_id", "student_pk"),
    )
    db.table("unknown_clusters").create(
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
    db.table("unknown_clusters").create_index(["meeting_id", "cluster_no"], unique=True)
    db.table("plugin_settings").create(
        {"plugin": str, "course_id": str, "enabled": int, "updated_at": str, "updated_by": str},
        pk=("plugin", "course_id"),
    )


#: The job states the ``jobs.state`` check constraint allows (``rollcall.store.jobs.STATES``).
JOB_STATES: tuple[str, ...] = (
    "queued",
    "downloading",
    "analyzing",
    "done",
    "failed",
    "skipped",
    "cancelled",
)


_JOBS_SCHEMA = [
    f"""
    create table if not exists jobs (
        id integer primary key,
        key text not null unique,
        course_id text,
        meeting_uuid text not null,
        zoom_meeting_id integer,
        topic text not null default '',
        host_email text not null default '',
        file_id text not null,
        payload text not null default '{{}}',
        state text not null default 'queued'
            check (state in ({", ".join(f"'{s}'" for s in JOB_STATES)})),
        attempts integer not null default 0,
        max_attempts integer not null default 5 check (max_attempts >= 1),
        next_attempt_at text not null,
        error text,
        result_meeting_id integer,
        lease_owner text,
        lease_until text,
        created_at text not null,
        updated_at text not null,
        finished_at text
    )
    """,
    "create index if not exists jobs_due on jobs (state, next_attempt_at, id)",
    "create index if not exists jobs_lease_owner on jobs (lease_owner)",
    "create index if not exists jobs_meeting_uuid on jobs (meeting_uuid)",
    """
    create table if not exists job_events (
        id integer primary key,
        job_id integer not null references jobs (id) on delete cascade,
        at text not null,
        state text not null,
        worker_id text,
        message text not null default ''
    )
    """,
    "create index if not exists job_events_job on job_events (job_id, id)",
]


def migrate_jobs(db: sqlite_utils.Database) -> None:
    """Migration 2: the job queue of ``rollcall serve`` (``jobs``, ``job_events``).

    Idempotent (``if not exists``), so a migration interrupted half-way can run again.
    ``result_meeting_id`` deliberately has no foreign key: retention deletes meetings
    and must not be blocked by the jobs that produced them.
    """
    for statement in _JOBS_SCHEMA:
        db.execute(statement)


def migrate_participants(db: sqlite_utils.Database) -> None:
    """Migration 3: Zoom's participants report and its reconciliation with face presence."""
    db.table("participants").create(
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
    db.table("participants").create_index(["meeting_id"])
    db.table("reconciliation").create(
        {
            "meeting_id": int,
            "student_pk": int,
            "connected_minutes": int,
            "unrecognized_minutes": int,
            "in_participants": int,
        },
        pk=("meeting_id", "student_pk"),
    )


def migrate_plugin_admin(db: sqlite_utils.Database) -> None:
    """Migration 4: plugin administration audit log and plugin errors per job.

    Until now this migration also created the emotion and engagement tables;
    those belong to the plugins, which create them through the
    ``rollcall_create_tables`` hook (databases that have them keep them).
    Idempotent, so :func:`rollcall.store.plugin_admin` can apply it to a bare database.
    """

    if "plugin_audit" not in db.table_names():
        db.table("plugin_audit").create(
            {
                "id": int,
                "at": str,
                "who": str,
                "action": str,
                "plugin": str,
                "course_id": str,
                "detail": str,
            },
            pk="id",
        )
    if "plugin_errors" not in db.table_names():
        db.table("plugin_errors").create(
            {
                "id": int,
                "meeting_id": int,
                "job_id": int,
                "plugin": str,
                "hook": str,
                "error": str,
                "traceback": str,
                "at": str,
            },
            pk="id",
        )
        db.table("plugin_errors").create_index(["meeting_id"])


def migrate_corrections(db: sqlite_utils.Database) -> None:
    """Migration 5: instructors' manual attendance corrections."""
    db.table("corrections").create(
        {
            "id": int,
            "meeting_id": int,
            "student_pk": int,
            "minute_from": int,  # first corrected minute, 0-based
            "minute_to": int,  # last corrected minute, inclusive
            "present": int,  # 1 = present, 0 = absent
            "reason": str,
            "made_by": str,
            "made_at": str,
        },
        pk="id",
    )
    db.table("corrections").create_index(["meeting_id", "student_pk"])


def migrate_outbox(db: sqlite_utils.Database) -> None:
    """Migration 6: the notification outbox."""
    db.table("outbox").create(
        {
            "id": int,
            "meeting_id": int,
            "course_id": str,
            "channel": str,  # "email", "slack" or "teams"
            "recipient": str,  # addresses (comma-separated), or the webhook's name (never its URL)
            "generation": int,  # 0 = the automatic summary, 1.. = `rollcall notify resend`
            "dedupe_key": str,  # meeting:channel:generation - a message is queued once
            "state": str,  # pending, sending, sent, failed
            "attempts": int,
            "next_attempt_at": str,
            "claimed_at": str,
            "last_error": str,
            "created_at": str,
            "sent_at": str,
        },
        pk="id",
    )
    db.table("outbox").create_index(["dedupe_key"], unique=True)
    db.table("outbox").create_index(["state", "next_attempt_at"])
    db.table("outbox").create_index(["meeting_id"])


def migrate_unknown_labels(db: sqlite_utils.Database) -> None:
    """Migration 7: unknown-face labels that can be undone, moved and carried over.

    ``presence.auto_seconds`` keeps what the analysis saw, so a label's credit
    (``seconds_seen`` = automatic + labelled clusters) can be taken back; rows stored
    before get it back-filled as ``seconds_seen`` minus the seconds of the clusters
    labelled with that student (exact unless a minute was capped at its length).
    ``unknown_clusters.labeled_by`` says who labelled, ``enrolled_embedding_id`` which
    embedding ``--enroll`` added (removed when the label is).
    """
    db.execute("alter table presence add column auto_seconds float")
    db.execute("alter table unknown_clusters add column labeled_by text")
    db.execute("alter table unknown_clusters add column enrolled_embedding_id integer")
    db.execute(
        """
        update presence set auto_seconds = max(0.0, seconds_seen - coalesce((
            select sum(coalesce(json_extract(c.seconds_by_minute, '$[' || presence.minute || ']'),
                                0))
            from unknown_clusters c
            where c.meeting_id = presence.meeting_id and c.label_student_pk = presence.student_pk
        ), 0.0))
        """
    )


def migrate_participant_reports(db: sqlite_utils.Database) -> None:
    """Migration 8: Zoom participants reports still to fetch (retried on their own schedule)."""
    db.table("participant_reports").create(
        {
            "id": int,
            "meeting_id": int,
            "meeting_uuid": str,
            "start_time": str,
            "state": str,  # pending, done, missing (given up)
            "attempts": int,
            "first_attempt_at": str,
            "next_attempt_at": str,
            "give_up_at": str,
            "last_error": str,
            "updated_at": str,
        },
        pk="id",
    )
    db.table("participant_reports").create_index(["meeting_id"])
    db.table("participant_reports").create_index(["state", "next_attempt_at"])


def migrate_users(db: sqlite_utils.Database) -> None:
    """Migration 9: web app accounts, their courses, API tokens (hashed) and sign-in attempts."""
    db.execute(
        """
        create table users (
            id integer primary key,
            email text not null unique collate nocase,
            role text not null check (role in ('admin', 'instructor')),
            password_hash text not null,
            session_version integer not null default 0,
            created_at text not null,
            password_changed_at text not null
        )
        """
    )
    db.execute(
        """
        create table user_courses (
            user_id integer not null references users (id) on delete cascade,
            course_id text not null,
            primary key (user_id, course_id)
        )
        """
    )
    db.execute(
        """
        create table api_tokens (
            id integer primary key,
            user_id integer not null references users (id) on delete cascade,
            name text not null default '',
            token_sha256 text not null unique,
            created_at text not null,
            last_used_at text
        )
        """
    )
    db.execute(
        """
        create table signin_attempts (
            id integer primary key,
            email text not null collate nocase,
            remote text not null default '',
            ok integer not null,
            at text not null
        )
        """
    )
    db.execute("create index signin_attempts_at on signin_attempts (at)")


def migrate_outbox_claims(db: sqlite_utils.Database) -> None:
    """Migration 10: an outbox row being sent names the process sending it (``host:pid``),
    so a row left ``sending`` by a process that died is taken again at once."""
    db.table("outbox").add_column("claimed_by", str)


def migrate_review(db: sqlite_utils.Database) -> None:
    """Migration 11: "needs review" minutes and the evidence behind every present minute.

    ``presence.review`` is 1 for a minute that would be present only with borderline
    evidence (``present`` stays 0); ``attendance.review_minutes`` counts them.
    ``minute_evidence`` holds, per student and present or needs-review minute, what
    decided it (no images): samples, best and median similarity, the margins over
    the next student and over non-students, and the decision path.
    """
    db.execute("alter table presence add column review integer not null default 0")
    db.execute("alter table attendance add column review_minutes integer not null default 0")
    db.table("minute_evidence").create(
        {
            "meeting_id": int,
            "student_pk": int,
            "minute": int,
            "state": str,  # "present" or "review"
            "samples": int,
            "matched": int,
            "best_similarity": float,
            "median_similarity": float,
            "margin_student": float,
            "margin_cohort": float,
            "path": str,  # "vote", "centroid", "masked" or several joined by "+"
            "tracks": str,  # JSON list of track ids
            "reason": str,  # why a needs-review minute was not accepted
        },
        pk=("meeting_id", "student_pk", "minute"),
    )


def migrate_masked_templates(db: sqlite_utils.Database) -> None:
    """Migration 12: each photo embedding also keeps the mean of its masked copies
    (``masked_vector``, NULL for photos embedded before), so a face judged masked is
    compared with the students' masked templates too (see the recognizer)."""
    db.execute("alter table embeddings add column masked_vector blob")


def migrate_filled_templates(db: sqlite_utils.Database) -> None:
    """Migration 13: each photo embedding also keeps the mean of its filled-crop
    embeddings (``filled_vector``: the lower face covered by a neutral fill), so a
    masked track is compared like with like (see the recognizer's FILL_ROW). Photos
    embedded before get theirs when their course's roster is next loaded."""
    db.execute("alter table embeddings add column filled_vector blob")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    migrate_core,  # 1
    migrate_jobs,  # 2
    migrate_participants,  # 3
    migrate_plugin_admin,  # 4
    migrate_corrections,  # 5
    migrate_outbox,  # 6
    migrate_unknown_labels,  # 7
    migrate_participant_reports,  # 8
    migrate_users,  # 9
    migrate_outbox_claims,  # 10
    migrate_review,  # 11
    migrate_masked_templates,  # 12
    migrate_filled_templates,  # 13
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database, path: Path | str = "") -> None:
    """Apply the missing migrations, each in its own write transaction.

    The version is read again inside each transaction, so two processes opening
    a new database at once do not both apply the same migration. Raises
    ``StorageError`` for a database newer than this rollcall.
    """
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database {path} has schema version {version}, newer than this rollcall "
            f"understands ({SCHEMA_VERSION}); upgrade rollcall"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        with write_transaction(db):
            if schema_version(db) >= number:
                continue
            MIGRATIONS[number - 1](db)
            db.conn.execute(f"PRAGMA user_version = {number}")
