"""Web app accounts: users and their roles, the courses an instructor teaches,
per-user API tokens and the sign-in attempts that rate limiting counts.

Passwords are hashed with argon2id (``argon2-cffi``); API tokens are long
random strings stored as their SHA-256 (they carry enough entropy that a slow
hash adds nothing), so neither can be read back from the database. A user's
``session_version`` is part of every session cookie: changing the password or
removing the user bumps or deletes it, which ends the sessions already open.

Schema: migration 7 in ``rollcall.store.schema``. As everywhere in the store, a
connection never crosses threads.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from rollcall.store.db import StorageError, now_iso, utc_now, write_transaction
from rollcall.store.storage import NotFound

ADMIN = "admin"
INSTRUCTOR = "instructor"
ROLES: tuple[str, ...] = (ADMIN, INSTRUCTOR)
MIN_PASSWORD_CHARS = 10
TOKEN_PREFIX = "rc_"

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as long as a
    wrong password. Made on first use, not at import: argon2 takes about 0.4 s of CPU,
    which every ``rollcall`` command paid, logins or not."""
    return str(_HASHER.hash(secrets.token_hex(16)))


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """One account. ``courses`` are an instructor's courses (empty for an admin)."""

    id: int
    email: str
    role: str
    courses: tuple[str, ...]
    session_version: int
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def can_see(self, course_id: str | None) -> bool:
        """Whether this user may see (and work on) ``course_id``."""
        return self.is_admin or (course_id is not None and course_id in self.courses)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's record (never the token itself)."""

    id: int
    user_id: int
    name: str
    created_at: str
    last_used_at: str | None


def hash_password(password: str) -> str:
    check_password(password)
    return str(_HASHER.hash(password))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")


def _normal_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.partition("@")
    if not (local and at and "." in domain) or any(c.isspace() for c in email):
        raise UserError(f"{email!r} is not an email address")
    return email


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def _user(db: sqlite_utils.Database, row: dict[str, Any]) -> User:
    courses = tuple(
        r["course_id"]
        for r in db.query(
            "select course_id from user_courses where user_id = ? order by course_id", [row["id"]]
        )
    )
    return User(
        id=row["id"],
        email=row["email"],
        role=row["role"],
        courses=courses,
        session_version=row["session_version"],
        created_at=row["created_at"],
    )


def _check_courses(db: sqlite_utils.Database, courses: Iterable[str]) -> list[str]:
    out = sorted(set(courses))
    for course in out:
        if not db["courses"].count_where("course_id = ?", [course]):
            raise NotFound(f"no course {course!r}")
    return out


def add_user(
    db: sqlite_utils.Database,
    email: str,
    role: str,
    password: str,
    courses: Iterable[str] = (),
) -> User:
    """Create an account; ``courses`` are the courses an instructor may see."""
    email = _normal_email(email)
    _check_role(role)
    courses = _check_courses(db, courses)
    digest = hash_password(password)
    at = now_iso()
    with write_transaction(db) as conn:
        if conn.execute("select 1 from users where email = ?", [email]).fetchone():
            raise UserError(f"a user {email} already exists")
        cur = conn.execute(
            "insert into users (email, role, password_hash, created_at, password_changed_at) "
            "values (?, ?, ?, ?, ?)",
            [email, role, digest, at, at],
        )
        conn.executemany(
            "insert into user_courses (user_id, course_id) values (?, ?)",
            [(cur.lastrowid, c) for c in courses],
        )
        user_id = cur.lastrowid
    if user_id is None:
        raise StorageError(f"user {email} was not stored")
    return get_user(db, user_id)


def get_user(db: sqlite_utils.Database, user_id: int) -> User:
    rows = list(db.query("select * from users where id = ?", [user_id]))
    if not rows:
        raise NotFound(f"no user {user_id}")
    return _user(db, rows[0])


def find_user(db: sqlite_utils.Database, email: str) -> User | None:
    rows = list(db.query("select * from users where email = ?", [email.strip()]))
    return _user(db, rows[0]) if rows else None


def user_by_email(db: sqlite_utils.Database, email: str) -> User:
    user = find_user(db, email)
    if user is None:
        raise NotFound(f"no user {email}")
    return user


def list_users(db: sqlite_utils.Database) -> list[User]:
    return [_user(db, r) for r in db.query("select * from users order by email")]


def admin_exists(db: sqlite_utils.Database) -> bool:
    return bool(db["users"].count_where("role = ?", [ADMIN]))


def remove_user(db: sqlite_utils.Database, email: str) -> User:
    """Delete an account with its course assignments and API tokens."""
    user = user_by_email(db, email)
    with write_transaction(db) as conn:
        conn.execute("delete from api_tokens where user_id = ?", [user.id])
        conn.execute("delete from user_courses where user_id = ?", [user.id])
        conn.execute("delete from users where id = ?", [user.id])
    return user


def set_password(db: sqlite_utils.Database, email: str, password: str) -> User:
    """Set a new password and end the user's open sessions."""
    user = user_by_email(db, email)
    digest = hash_password(password)
    with write_transaction(db) as conn:
        conn.execute(
            "update users set password_hash = ?, password_changed_at = ?, "
            "session_version = session_version + 1 where id = ?",
            [digest, now_iso(), user.id],
        )
    return get_user(db, user.id)


def set_courses(db: sqlite_utils.Database, user_id: int, courses: Iterable[str]) -> User:
    courses = _check_courses(db, courses)
    with write_transaction(db) as conn:
        conn.execute("delete from user_courses where user_id = ?", [user_id])
        conn.executemany(
            "insert into user_courses (user_id, course_id) values (?, ?)",
            [(user_id, c) for c in courses],
        )
    return get_user(db, user_id)


def verify_password(db: sqlite_utils.Database, email: str, password: str) -> User | None:
    """The user whose email and password these are, else None (same work either way)."""
    rows = list(db.query("select * from users where email = ?", [email.strip()]))
    digest = rows[0]["password_hash"] if rows else _dummy_hash()
    try:
        _HASHER.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return None
    if not rows:
        return None
    if _HASHER.check_needs_rehash(digest):
        with write_transaction(db) as conn:
            conn.execute(
                "update users set password_hash = ? where id = ?",
                [_HASHER.hash(password), rows[0]["id"]],
            )
    return _user(db, rows[0])


# ---------------------------------------------------------------- sign-in rate limiting


def record_attempt(
    db: sqlite_utils.Database, email: str, remote: str, ok: bool, *, now: datetime | None = None
) -> None:
    """Remember one sign-in attempt; attempts older than a day are forgotten."""
    at = utc_now(now)
    with write_transaction(db) as conn:
        conn.execute(
            "insert into signin_attempts (email, remote, ok, at) values (?, ?, ?, ?)",
            [email.strip(), remote or "", int(ok), now_iso(at)],
        )
        conn.execute("delete from signin_attempts where at < ?", [now_iso(at - timedelta(days=1))])


def too_many_attempts(
    db: sqlite_utils.Database,
    email: str,
    remote: str,
    *,
    limit: int,
    window_s: float,
    now: datetime | None = None,
) -> bool:
    """Whether ``limit`` sign-ins failed for this email, or from this address, within
    the last ``window_s`` seconds (a success resets neither: it is the failures that count)."""
    since = now_iso(utc_now(now) - timedelta(seconds=window_s))
    by_email = db.execute(
        "select count(*) from signin_attempts where ok = 0 and at >= ? and email = ?",
        [since, email.strip()],
    ).fetchone()[0]
    by_remote = db.execute(
        "select count(*) from signin_attempts where ok = 0 and at >= ? and remote = ?",
        [since, remote or ""],
    ).fetchone()[0]
    return bool(by_email >= limit or by_remote >= 3 * limit)


# ---------------------------------------------------------------- API tokens


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(db: sqlite_utils.Database, user_id: int, name: str = "") -> str:
    """A new API token for the user: returned once, stored only as its hash."""
    get_user(db, user_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(db) as conn:
        conn.execute(
            "insert into api_tokens (user_id, name, token_sha256, created_at) values (?, ?, ?, ?)",
            [user_id, name.strip(), _token_digest(token), now_iso()],
        )
    return token


def list_api_tokens(db: sqlite_utils.Database, user_id: int) -> list[ApiToken]:
    return [
        ApiToken(r["id"], r["user_id"], r["name"], r["created_at"], r["last_used_at"])
        for r in db.query("select * from api_tokens where user_id = ? order by id", [user_id])
    ]


def revoke_api_token(db: sqlite_utils.Database, user_id: int, token_id: int) -> None:
    with write_transaction(db) as conn:
        cur = conn.execute(
            "delete from api_tokens where id = ? and user_id = ?", [token_id, user_id]
        )
    if cur.rowcount == 0:
        raise NotFound(f"no API token {token_id}")


def user_for_token(db: sqlite_utils.Database, token: str) -> User | None:
    """The user an API token belongs to (and note its use), else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    rows = list(db.query("select * from api_tokens where token_sha256 = ?", [_token_digest(token)]))
    if not rows:
        return None
    with write_transaction(db) as conn:
        conn.execute(
            "update api_tokens set last_used_at = ? where id = ?", [now_iso(), rows[0]["id"]]
        )
    return get_user(db, rows[0]["user_id"])
