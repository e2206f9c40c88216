"""Plugin administration: which optional plugins run for which course, with an audit log.

Settings live in the ``plugin_settings`` table: one row per plugin and scope,
``course_id = ""`` for the global setting. For a course, its own row wins,
else the global row, else the plugin is off: optional plugins (the built-in
analyzers and every third-party plugin) ship disabled; core plugins
(detector, recognizer, attendance) always run. Every change is appended to
``plugin_audit`` (who, when, what). Settings are read per job, so a change
takes effect with the next job without restarting ``rollcall serve``.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from rollcall.store import storage
from rollcall.store.db import inserted_pk, write_transaction
from rollcall.types import PluginFailure, PluginInfo

log = logging.getLogger(__name__)
GLOBAL = ""  # course_id of a global setting


@dataclass(frozen=True, slots=True)
class SensitiveNotice:
    """What an analyzer does and which laws may forbid it; shown before enabling."""

    plugin: str
    what: str
    laws: tuple[str, ...]

    def text(self) -> str:
        lines = [f"{self.plugin}: {self.what}", "Laws that may forbid or restrict it:"]
        return "\n".join(lines + [f"  - {law}" for law in self.laws])


NOTICES: dict[str, SensitiveNotice] = {
    "emotion": SensitiveNotice(
        "emotion",
        "infers each recognised student's facial expression (angry, disgust, fear, happy, "
        "sad, surprise, neutral) every sampled frame and stores per-minute distributions "
        "per student and a class summary.",
        (
            "EU AI Act (Regulation (EU) 2024/1689) Art. 5(1)(f): emotion recognition in "
            "education institutions is prohibited (since 2 February 2025).",
            "GDPR Art. 9 / UK GDPR: facial analysis of identified people is biometric and "
            "sensitive data processing; needs a legal basis and a DPIA (Art. 35).",
            "US: Illinois BIPA, Texas CUBI, Washington RCW 19.375 (biometric consent); "
            "FERPA for student records.",
        ),
    ),
    "engagement": SensitiveNotice(
        "engagement",
        "scores each recognised student's attention per minute from face visibility, head "
        "pose (looking at the screen) and movement, and stores the score and its components.",
        (
            "EU AI Act (Regulation (EU) 2024/1689): AI systems that monitor students' "
            "behaviour during tests are high-risk (Annex III 3(d)); if the score is used to "
            "infer emotions or intentions it falls under the Art. 5(1)(f) ban in education.",
            "GDPR Art. 5, 6, 9, 22 and 35: monitoring of identified students needs a legal "
            "basis, data minimisation, a DPIA, and no solely automated decisions.",
            "US: Illinois BIPA and other state biometric laws; FERPA for student records. "
            "Zoom withdrew its attention tracking in 2020 after privacy complaints.",
        ),
    ),
}


class PluginAdminError(Exception):
    """An administration request that cannot be carried out; the message says why."""


class ConfirmationRequired(PluginAdminError):
    """Enabling a sensitive analyzer needs an explicit confirmation (``--yes``)."""

    def __init__(self, notice: SensitiveNotice):
        super().__init__(f"{notice.text()}\nConfirm with --yes to enable {notice.plugin}.")
        self.notice = notice


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    who: str
    action: str  # "enable" or "disable"
    plugin: str
    course_id: str  # "" = global
    detail: str


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """A plugin with its settings, for ``plugins list`` and ``GET /api/plugins``."""

    info: PluginInfo
    enabled_globally: bool
    courses: dict[str, bool]  # per-course settings that override the global one

    def enabled_for(self, course_id: str | None) -> bool:
        if self.info.core:
            return True
        if course_id and course_id in self.courses:
            return self.courses[course_id]
        return self.enabled_globally

    def as_dict(self) -> dict[str, Any]:
        i = self.info
        return {
            "name": i.name,
            "version": i.version,
            "source": i.source,
            "core": i.core,
            "sensitive": i.name in NOTICES,
            "hooks": list(i.hooks),
            "problem": i.problem or None,
            "enabled_globally": self.enabled_globally,
            "courses": dict(sorted(self.courses.items())),
        }


def current_user() -> str:
    """The OS user running the command, for the audit log."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def settings(db: sqlite_utils.Database) -> dict[str, dict[str, bool]]:
    """plugin -> {course_id ("" = global): enabled}."""
    out: dict[str, dict[str, bool]] = {}
    for row in db.execute("SELECT plugin, course_id, enabled FROM plugin_settings").fetchall():
        out.setdefault(row[0], {})[row[1] or GLOBAL] = bool(row[2])
    return out


def enabled_plugins(db: sqlite_utils.Database, course_id: str | None) -> set[str]:
    """Optional plugins enabled for ``course_id`` (its own setting, else the global one)."""
    enabled = set()
    for plugin, scopes in settings(db).items():
        scope = course_id if course_id and course_id in scopes else GLOBAL
        if scopes.get(scope, False):
            enabled.add(plugin)
    return enabled


def plugin_statuses(db: sqlite_utils.Database, infos: Iterable[PluginInfo]) -> list[PluginStatus]:
    """Every plugin with its global and per-course settings."""
    stored = settings(db)
    out = []
    for info in infos:
        scopes = stored.get(info.name, {})
        out.append(
            PluginStatus(
                info,
                enabled_globally=info.core or scopes.get(GLOBAL, False),
                courses={c: v for c, v in scopes.items() if c != GLOBAL},
            )
        )
    return out


def set_plugin_enabled(
    db: sqlite_utils.Database,
    infos: Sequence[PluginInfo],
    name: str,
    enabled: bool,
    *,
    course_id: str | None = None,
    who: str,
    confirmed: bool = False,
) -> AuditEntry:
    """Enable or disable ``name`` globally or for one course, and log it in the audit log.

    Raises :class:`ConfirmationRequired` when enabling a sensitive analyzer
    without ``confirmed``, :class:`PluginAdminError` for an unknown, core or
    broken plugin, ``storage.NotFound`` for an unknown course.
    """
    by_name = {i.name: i for i in infos}
    info = by_name.get(name)
    if info is None:
        raise PluginAdminError(f"unknown plugin {name!r} (known: {', '.join(sorted(by_name))})")
    if info.core:
        raise PluginAdminError(f"{name} is a core plugin: it always runs and cannot be switched")
    if enabled and info.problem:
        raise PluginAdminError(f"{name} cannot be enabled: {info.problem}")
    if course_id:
        storage.get_course(db, course_id)
    if enabled and name in NOTICES and not confirmed:
        raise ConfirmationRequired(NOTICES[name])
    scope = course_id or GLOBAL
    at = storage.now_iso()
    action = "enable" if enabled else "disable"
    detail = f"{action} {name} " + (f"for course {course_id}" if course_id else "globally")
    if enabled and name in NOTICES:
        detail += " (legal notice shown and confirmed)"
    with write_transaction(db):
        db.table("plugin_settings").upsert(
            {
                "plugin": name,
                "course_id": scope,
                "enabled": int(enabled),
                "updated_at": at,
                "updated_by": who,
            },
            pk=("plugin", "course_id"),
        )
        entry_id = inserted_pk(
            db.table("plugin_audit").insert(
                {
                    "at": at,
                    "who": who,
                    "action": action,
                    "plugin": name,
                    "course_id": scope,
                    "detail": detail,
                }
            )
        )
    log.info(
        "plugin setting changed",
        extra={"plugin": name, "course_id": scope, "action": action, "who": who},
    )
    return AuditEntry(entry_id, at, who, action, name, scope, detail)


def audit_log(db: sqlite_utils.Database, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` audit entries, newest first."""
    rows = db.execute(
        "SELECT id, at, who, action, plugin, course_id, detail FROM plugin_audit "
        "ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [AuditEntry(*row) for row in rows]


def save_plugin_failures(
    db: sqlite_utils.Database,
    meeting_id: int,
    failures: Iterable[PluginFailure],
    *,
    job_id: int | None = None,
) -> int:
    """Store a job's plugin failures against its meeting (replacing earlier ones); count."""
    at = storage.now_iso()
    rows = [
        {
            "meeting_id": meeting_id,
            "job_id": job_id,
            "plugin": f.plugin,
            "hook": f.hook,
            "error": f.error,
            "traceback": f.traceback,
            "at": at,
        }
        for f in failures
    ]
    with write_transaction(db):
        db.execute("DELETE FROM plugin_errors WHERE meeting_id = ?", [meeting_id])
        db.table("plugin_errors").insert_all(rows)
    return len(rows)


def stored_plugin_failures(db: sqlite_utils.Database, meeting_id: int) -> list[dict[str, Any]]:
    """The plugin failures stored for a meeting, oldest first."""
    return list(db.table("plugin_errors").rows_where("meeting_id = ?", [meeting_id], order_by="id"))
