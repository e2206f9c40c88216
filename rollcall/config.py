"""The one place for configuration: ``config.toml`` validated at start.

Sources, later ones win:

1. built-in defaults (the ``Field`` defaults below, mirrored and documented in
   ``config.toml`` at the repository root);
2. the TOML file named by ``--config PATH``, else ``$ROLLCALL_CONFIG``, else
   ``config.toml`` in the data directory if it exists;
3. environment variables ``ROLLCALL_<SECTION>_<KEY>`` for every key
   (``ROLLCALL_MODELS_DIR``, ``ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN``...), which
   is how containers pass secrets. ``ROLLCALL_HOME`` is an alias for
   ``ROLLCALL_STORAGE_HOME``.

Each plugin owns one table, ``[plugins.<name>]``, validated by the settings
model the plugin declares (:class:`rollcall.PluginSettings`); its environment
variables are ``ROLLCALL_PLUGINS_<NAME>_<KEY>``. The built-in analyzers'
tables (``plugins.emotion``, ``plugins.engagement``) are validated here;
a third-party plugin's table when the plugin is loaded
(:func:`validate_plugin_settings`). The analyzers' old sections ``[emotion]``
and ``[engagement]`` and their ``ROLLCALL_EMOTION_*`` / ``ROLLCALL_ENGAGEMENT_*``
variables still work: they are migrated with a deprecation warning naming the
new key, and giving a key both the old and the new way is an error.

Any unknown key, wrong type or out-of-range value raises :class:`ConfigError`
naming the key; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from rollcall.plugin_settings import PluginSettings
from rollcall.plugins.emotion_settings import EmotionSettings
from rollcall.plugins.engagement_settings import EngagementSettings

log = logging.getLogger(__name__)
ENV_PREFIX = "ROLLCALL_"
PLUGINS_ENV_PREFIX = f"{ENV_PREFIX}PLUGINS_"
# Sections of earlier versions that are now a plugin's table: old section -> plugin name.
LEGACY_PLUGIN_SECTIONS = {"emotion": "emotion", "engagement": "engagement"}


# Upper bounds of durations: a value that validates must not overflow a date later.
DAY_S = 86_400.0
MAX_WAIT_S = 30 * DAY_S  # the longest retry wait
MAX_DAYS = 36_500  # a hundred years


class ConfigError(Exception):
    """The configuration is unusable; the message names the key and the problem."""


# A pragmatic address check (RFC 5322 allows more, mail servers accept less): one @,
# no spaces or angle brackets, a dotted domain.
_EMAIL_RE = re.compile(
    r"^[^@\s<>,;\"()]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


def check_email(value: str) -> str:
    """``value`` stripped if it looks like a deliverable address, else ValueError."""
    text = value.strip()
    if not _EMAIL_RE.match(text):
        raise ValueError("not an email address like name@example.edu")
    return text


def check_webhook_url(value: str) -> str:
    """An http(s) URL with a host ("" = none), else ValueError (the URL is not echoed)."""
    text = value.strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in text):
        raise ValueError("must not contain spaces")
    return text


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class StorageConfig(_Section):
    home: str = ""  # data directory; "" = $ROLLCALL_HOME or ~/.local/share/rollcall
    keep_videos: bool = False  # keep downloaded recordings after analysis


class ModelsConfig(_Section):
    pack: str = "buffalo_sc"
    dir: str = ""
    cache_dir: str = "~/.insightface/models"
    allow_download: bool = True
    download_base_url: str = "https://github.com/deepinsight/insightface/releases/download/v0.7"
    match_threshold: float = Field(0.0, ge=0.0, le=1.0)  # 0 = the pack's calibrated value
    threads: int = Field(0, ge=0, le=64)  # onnxruntime intra-op threads, 0 = half the cores
    provider: Literal["cpu", "cuda"] = "cpu"  # cuda falls back to the CPU with a warning
    precision: Literal["fp32", "int8"] = "fp32"  # int8: benchmarks/quantize.py's recognizer
    quantized_dir: str = "~/.cache/rollcall/int8"  # where the int8 copies are (a cache)


class AnalysisConfig(_Section):
    interval_s: float = Field(1.0, gt=0.0, le=60.0)
    det_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    min_face_px: int = Field(16, ge=8, le=512)
    max_side: int = Field(1920, ge=320, le=7680)  # frames wider/taller are scaled down first
    workers: int = Field(1, ge=1, le=64)
    recheck_s: float = Field(10.0, ge=0.0, le=600.0)  # unchanged tiles skip detection; 0 = off
    embed_max_age_s: float = Field(30.0, ge=0.0, le=3600.0)  # unchanged faces keep embeddings


class RecognitionConfig(_Section):
    min_track_samples: int = Field(3, ge=1, le=100)
    vote_share: float = Field(0.5, gt=0.0, le=1.0)
    max_gap_s: float = Field(3.0, ge=0.0, le=60.0)
    track_iou: float = Field(0.3, gt=0.0, lt=1.0)
    unknown_cluster_threshold: float = Field(0.0, ge=0.0, le=1.0)  # 0 = the pack's value
    # A track counts only when its mean face is this much closer to the student than to
    # the next enrolled student / to any non-student face (see README "How attendance
    # is decided"); borderline tracks make minutes "needs review" when review is on.
    margin_student: float = Field(0.08, ge=0.0, le=1.0)
    margin_cohort: float = Field(0.0, ge=-1.0, le=1.0)
    centroid_above: float = Field(0.05, ge=-0.05, le=0.5)
    review: bool = True
    review_slack: float = Field(0.0, ge=0.0, le=0.2)
    # Read Zoom's name label on the tiles of doubtful tracks (OCR); a label naming someone
    # else sends the match to review (rollcall/pipeline/counter_evidence.py).
    read_tile_labels: bool = True
    # An accepted track whose margin over the next student or over non-students is below
    # this is doubtful: its label is read. 1.0 reads the label of every track.
    tile_label_doubt: float = Field(0.15, ge=-1.0, le=1.0)


class AttendanceConfig(_Section):
    min_seconds_per_minute: float = Field(30.0, gt=0.0, le=60.0)
    absent_below_pct: float = Field(25.0, ge=0.0, le=100.0)
    late_after_pct: float = Field(15.0, ge=0.0, le=100.0)
    left_early_pct: float = Field(15.0, ge=0.0, le=100.0)


class EnrollmentConfig(_Section):
    min_face_px: int = Field(48, ge=16, le=1024)
    min_sharpness: float = Field(15.0, ge=0.0, le=100_000.0)
    min_det_score: float = Field(0.6, gt=0.0, lt=1.0)
    duplicate_similarity: float = Field(0.97, gt=0.0, le=1.0)
    recommended_photos: int = Field(5, ge=1, le=50)
    # Photos larger than this (bytes on disk / pixels in the header) are refused unread.
    max_photo_bytes: int = Field(30_000_000, ge=10_000, le=1_000_000_000)
    max_photo_pixels: int = Field(50_000_000, ge=10_000, le=500_000_000)
    # Blend embeddings of masked copies of every photo into the student's template, so a
    # student wearing a mask in class is still recognised (rollcall/enrollment/masks.py).
    masked_copies: bool = True


class PrivacyConfig(_Section):
    store_frames: bool = False
    store_face_crops: bool = False
    retention_days: int = Field(365, ge=0, le=MAX_DAYS)  # 0 = keep forever


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class CourseRule(_Section):
    """Which Zoom recordings belong to a course: any listed meeting id, topic
    pattern (shell-style, case-insensitive) or host email matches."""

    course: str = Field(min_length=1)
    meeting_ids: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    host_emails: list[str] = Field(default_factory=list)


class ZoomConfig(_Section):
    account_id: str = ""
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    webhook_secret_token: SecretStr = SecretStr("")
    users: list[str] = Field(default_factory=lambda: ["me"])
    poll_minutes: int = Field(60, ge=0, le=1440)
    websocket_subscription_id: str = ""
    api_base_url: str = "https://api.zoom.us/v2"
    oauth_url: str = "https://zoom.us/oauth/token"
    websocket_url: str = "wss://ws.zoom.us/ws"
    download_hosts: list[str] = Field(default_factory=lambda: ["zoom.us", "*.zoom.us"])
    course_map: list[CourseRule] = Field(default_factory=list)
    # Zoom builds the participants report minutes after the meeting: ask again this often,
    # for at most this many hours after the first try.
    participants_retry_s: float = Field(600.0, ge=1.0, le=DAY_S)
    participants_give_up_h: float = Field(24.0, ge=0.0, le=720.0)


class JobsConfig(_Section):
    # Upper bounds keep every value within what timedelta and SQLite can hold later.
    max_attempts: int = Field(5, ge=1, le=100)
    retry_base_s: float = Field(60.0, ge=0.0, le=DAY_S)
    retry_max_s: float = Field(3600.0, ge=0.0, le=MAX_WAIT_S)
    lease_s: float = Field(300.0, ge=5.0, le=DAY_S)
    poll_lookback_days: int = Field(7, ge=1, le=365)
    # How many times polling may put a failed job back in the queue with fresh download data.
    poll_revivals: int = Field(3, ge=0, le=100)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(1_000_000, ge=1024, le=100_000_000)
    # A connection must send a request's headers within this long of opening (or of the
    # previous answer); a request's body must arrive whole within body_timeout_s.
    header_timeout_s: float = Field(10.0, gt=0.0, le=600.0)
    body_timeout_s: float = Field(30.0, gt=0.0, le=3600.0)
    max_connections: int = Field(100, ge=1, le=10_000)  # more are answered 503 and closed
    shutdown_grace_s: float = Field(30.0, ge=0.0, le=3600.0)
    admin_token: SecretStr = SecretStr("")  # Bearer token of /api/plugins; "" = API off
    tls_terminated: bool = False  # HTTPS ends in front of us: session cookies are Secure
    max_upload_bytes: int = Field(4_000_000_000, ge=1024, le=1_000_000_000_000)  # web uploads

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if token and not token.strip():
            raise ValueError('must not be blank (only whitespace); "" turns the admin API off')
        if token != token.strip():
            raise ValueError("must not start or end with whitespace")
        return value


class ClusterConfig(_Section):
    """Worker machines (``rollcall worker``) through a Redis broker; off while
    ``broker_url`` is empty (rollcall serve analyses on its own machine then)."""

    broker_url: SecretStr = SecretStr("")  # redis://[:password@]host:port/db; may hold a password
    secret: SecretStr = SecretStr("")  # shared key that signs every message; required with a broker
    # Recordings rollcall serve has out on workers at once (the workers' total concurrency).
    max_in_flight: int = Field(4, ge=1, le=1024)
    # A task without a result after this long is given up (the job is retried).
    task_timeout_s: float = Field(3600.0, ge=10.0, le=DAY_S)
    # A worker machine silent this long is presumed dead; its task goes to another worker.
    worker_heartbeat_s: float = Field(60.0, ge=1.0, le=3600.0)

    @model_validator(mode="after")
    def _secret_with_broker(self) -> ClusterConfig:
        url = self.broker_url.get_secret_value()
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("broker_url must be a redis://, rediss:// or unix:// URL")
        if url and len(self.secret.get_secret_value()) < 16:
            raise ValueError(
                "a broker_url needs a secret of at least 16 characters "
                "([cluster] secret, ROLLCALL_CLUSTER_SECRET) shared by rollcall serve and "
                "its workers"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.broker_url.get_secret_value())


class OidcConfig(_Section):
    """Single sign-on to the web app with OpenID Connect (Google Workspace, Microsoft
    Entra...): off while ``issuer`` is ""."""

    issuer: str = ""  # the provider's issuer URL; its discovery document is read from it
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")  # prefer ROLLCALL_OIDC_CLIENT_SECRET
    allowed_domains: list[str] = Field(default_factory=list)  # email domains; [] = any
    auto_create: bool = False  # unknown emails get an instructor account (no courses)
    email_claim: str = Field("email", min_length=1)  # Entra: "preferred_username" too

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_webhook_url(value).rstrip("/")

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = [d.strip().lower().lstrip("@") for d in value if d.strip()]
        for domain in out:
            if "." not in domain or any(c.isspace() or c in "@/" for c in domain):
                raise ValueError(f"{domain!r} is not an email domain like school.edu")
        return out

    @model_validator(mode="after")
    def _complete(self) -> OidcConfig:
        if self.issuer and not self.client_id:
            raise ValueError("client_id is needed with an issuer")
        if self.auto_create and not self.allowed_domains:
            raise ValueError(
                "auto_create needs allowed_domains: else anyone with an account at the "
                "provider could create one here"
            )
        return self


class ReportsConfig(_Section):
    """Reports for instructors (term view, summaries)."""

    threshold_pct: float = Field(75.0, ge=0.0, le=100.0)  # below: highlighted
    language: str = Field("en", pattern=r"^[a-z]{2}(_[A-Z]{2})?$")  # templates' folder
    base_url: str = ""  # public URL of `rollcall serve`, for links in messages; "" = none

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_webhook_url(value).rstrip("/")


class SmtpConfig(_Section):
    """The mail server notifications are sent through."""

    host: str = ""  # "" = no email
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: SecretStr = SecretStr("")
    from_address: str = ""
    timeout_s: float = Field(30.0, gt=0.0, le=600.0)

    @field_validator("from_address")
    @classmethod
    def _from_address(cls, value: str) -> str:
        return check_email(value) if value.strip() else ""


class CourseNotify(_Section):
    """Who hears about one course's meetings, and how."""

    course: str = Field(min_length=1)
    emails: list[str] = Field(default_factory=list)  # instructors' addresses
    slack_webhook: SecretStr = SecretStr("")  # Slack-compatible incoming webhook URL
    teams_webhook: SecretStr = SecretStr("")  # Microsoft Teams incoming webhook URL
    threshold_pct: float | None = Field(None, ge=0.0, le=100.0)  # None = [reports] value
    language: str | None = Field(None, pattern=r"^[a-z]{2}(_[A-Z]{2})?$")  # None = [reports]

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        out = []
        for i, address in enumerate(value):
            try:
                out.append(check_email(address))
            except ValueError as exc:
                raise ValueError(f"entry {i} ({address!r}): {exc}") from None
        return out

    @field_validator("slack_webhook", "teams_webhook")
    @classmethod
    def _webhook(cls, value: SecretStr) -> SecretStr:
        return SecretStr(check_webhook_url(value.get_secret_value()))


class NotifyConfig(_Section):
    """The notification outbox: delivery retries and the per-course channels."""

    max_attempts: int = Field(8, ge=1, le=100)
    retry_base_s: float = Field(30.0, ge=0.0, le=DAY_S)
    retry_max_s: float = Field(3600.0, ge=0.0, le=MAX_WAIT_S)
    send_interval_s: float = Field(10.0, gt=0.0, le=3600.0)
    courses: list[CourseNotify] = Field(default_factory=list)


class PluginsConfig(BaseModel):
    """``[plugins.<name>]`` tables: the built-in analyzers' validated here, the
    others kept as given until their plugin is loaded (:func:`validate_plugin_settings`)."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True)

    emotion: EmotionSettings = EmotionSettings()
    engagement: EngagementSettings = EngagementSettings()
    # Where third-party tables' keys came from ("name.key" -> file) and the
    # ROLLCALL_PLUGINS_* variables not used by the built-ins, for their validation.
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _environ: dict[str, str] = PrivateAttr(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        """The raw ``[plugins.<name>]`` table of a third-party plugin ({} if none)."""
        return dict((self.model_extra or {}).get(name, {}))

    def third_party_names(self) -> list[str]:
        """Names of the ``[plugins.<name>]`` tables that are not built-in."""
        return sorted(self.model_extra or {})


BUILTIN_PLUGIN_SETTINGS: dict[str, type[PluginSettings]] = {
    name: field.annotation for name, field in PluginsConfig.model_fields.items()
}


class Config(_Section):
    storage: StorageConfig = StorageConfig()
    models: ModelsConfig = ModelsConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    attendance: AttendanceConfig = AttendanceConfig()
    enrollment: EnrollmentConfig = EnrollmentConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    logging: LoggingConfig = LoggingConfig()
    zoom: ZoomConfig = ZoomConfig()
    jobs: JobsConfig = JobsConfig()
    server: ServerConfig = ServerConfig()
    cluster: ClusterConfig = ClusterConfig()
    oidc: OidcConfig = OidcConfig()
    plugins: PluginsConfig = PluginsConfig()
    reports: ReportsConfig = ReportsConfig()
    smtp: SmtpConfig = SmtpConfig()
    notify: NotifyConfig = NotifyConfig()

    @property
    def home(self) -> Path:
        return data_home(self)


def data_home(config: Config) -> Path:
    """The data directory (database, enrollment photos, downloads)."""
    raw = config.storage.home or "~/.local/share/rollcall"
    return Path(raw).expanduser()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_value(raw: str, annotation: Any) -> Any:
    """Turn an environment string into the type ``annotation`` asks for.

    Values that do not convert are passed on unchanged, so validation reports
    them with the key's name like any other wrong value.
    """
    text = raw.strip()
    if str(annotation).startswith("list"):
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return raw
        return [part.strip() for part in text.split(",") if part.strip()]
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        return raw
    for kind in (int, float):
        if annotation is kind:
            try:
                return kind(text)
            except ValueError:
                return raw
    return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``ROLLCALL_<SECTION>_<KEY>`` of every section but ``plugins`` (see :func:`_plugin_values`)."""
    out: dict[str, dict[str, Any]] = {}
    if environ.get("ROLLCALL_HOME"):
        out.setdefault("storage", {})["home"] = environ["ROLLCALL_HOME"]
    for section_name, section_field in Config.model_fields.items():
        if section_name == "plugins":
            continue
        section_cls = section_field.annotation
        for key, field in section_cls.model_fields.items():
            env_name = f"{ENV_PREFIX}{section_name}_{key}".upper()
            if env_name in environ:
                out.setdefault(section_name, {})[key] = _env_value(
                    environ[env_name], field.annotation
                )
    return out


def plugin_env_name(plugin: str, key: str) -> str:
    """The environment variable of ``[plugins.<plugin>] <key>``: ``ROLLCALL_PLUGINS_<NAME>_<KEY>``."""
    return f"{PLUGINS_ENV_PREFIX}{re.sub(r'[^A-Za-z0-9]', '_', plugin)}_{key}".upper()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        if isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = dict(values)
    return merged


@dataclass(slots=True)
class _PluginValues:
    """The ``[plugins]`` table merged from the file and the environment."""

    tables: dict[str, Any]  # plugin name -> its table (a non-table value is reported)
    origins: dict[tuple[str, ...], str]  # ("plugins", name, key) -> file or variable
    environ: dict[str, str]  # ROLLCALL_PLUGINS_* variables not used by the built-ins


def _warn_deprecated(
    old_given: dict[tuple[str, ...], tuple[str, str]], new_given: dict[tuple[str, ...], str]
) -> None:
    """One warning per plugin and source naming the old keys and their new names;
    ConfigError when a key is also given by its new name."""
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for loc, (source, old) in sorted(old_given.items()):
        if loc in new_given:
            raise ConfigError(
                f"{'.'.join(loc)}: given twice, as {new_given[loc]} and by its old name "
                f"{old} in {source}; keep only the new one"
            )
        new = old.startswith(ENV_PREFIX) and plugin_env_name(*loc[1:]) or loc[2]
        groups.setdefault((source, loc[1]), []).append((old, new))
    for (source, name), pairs in groups.items():
        olds = ", ".join(old for old, _ in pairs)
        news = ", ".join(new for _, new in pairs)
        target = news if source == "the environment" else f"[plugins.{name}] {news}"
        log.warning(
            f"deprecated configuration keys {olds} in {source}: use {target} instead",
            extra={"plugin": name, "old": olds, "new": target},
        )


def _plugin_values(
    file_values: dict[str, Any], file_path: Path | None, environ: Mapping[str, str]
) -> _PluginValues:
    """``[plugins.*]`` of the file, the old analyzer sections migrated into it, then the
    environment (new and old variable names) on top; ConfigError when a key is given
    both the old and the new way."""
    raw = file_values.get("plugins", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"plugins: must be a [plugins] table, got {raw!r}")
    tables: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    origins: dict[tuple[str, ...], str] = {}
    for name, table in tables.items():
        for key in table if isinstance(table, dict) else ():
            origins[("plugins", name, key)] = str(file_path)
    new_given = {loc: f"[plugins.{loc[1]}] {loc[2]} in {file_path}" for loc in origins}
    old_given: dict[tuple[str, ...], tuple[str, str]] = {}  # loc -> (source, old name)
    for section, name in LEGACY_PLUGIN_SECTIONS.items():
        if section not in file_values:
            continue
        values = file_values[section]
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a [{section}] table, got {values!r}")
        target = tables.setdefault(name, {})
        if not isinstance(target, dict):
            continue  # reported as "must be a table" below
        for key, value in values.items():
            target[key] = value
            where = f"{file_path}, old key [{section}] {key}"
            origins[("plugins", name, key)] = where
            old_given[("plugins", name, key)] = (str(file_path), f"[{section}] {key}")
    for name, model in BUILTIN_PLUGIN_SETTINGS.items():
        old_section = next((s for s, n in LEGACY_PLUGIN_SECTIONS.items() if n == name), None)
        for key, field in model.model_fields.items():
            old_env = f"{ENV_PREFIX}{old_section}_{key}".upper() if old_section else ""
            for env_name in (plugin_env_name(name, key), old_env):
                if env_name not in environ:
                    continue
                target = tables.setdefault(name, {})
                if isinstance(target, dict):
                    target[key] = _env_value(environ[env_name], field.annotation)
                origins[("plugins", name, key)] = env_name
                if env_name == old_env:
                    old_given[("plugins", name, key)] = ("the environment", env_name)
                else:
                    new_given[("plugins", name, key)] = env_name
    _warn_deprecated(old_given, new_given)
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"plugins.{name}: must be a [plugins.{name}] table, got {table!r}")
    builtin_env = {
        plugin_env_name(name, key)
        for name, model in BUILTIN_PLUGIN_SETTINGS.items()
        for key in model.model_fields
    }
    rest = {
        k: v
        for k, v in environ.items()
        if k.startswith(PLUGINS_ENV_PREFIX) and k not in builtin_env
    }
    return _PluginValues(tables, origins, rest)


_SECRET_WORDS = ("secret", "token", "password", "webhook")


_HOLDS_SECRETS = ("notify.courses",)  # lists/tables whose whole value may include secrets
_PLAIN_KEYS = ("course", "emails", "threshold_pct", "language")


def _is_secret(key: str) -> bool:
    """Keys whose values are never echoed (webhook URLs carry their credential)."""
    if any(word in key for word in _SECRET_WORDS):
        return True
    return key.startswith(_HOLDS_SECRETS) and key.rsplit(".", 1)[-1] not in _PLAIN_KEYS


def _table_keys(model: type[BaseModel], loc: list[str]) -> list[str] | None:
    """The keys of the table holding ``loc[-1]``, following ``loc`` through ``model``."""
    cls: Any = model
    for part in loc[:-1]:
        fields = getattr(cls, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return None
        cls = fields[part].annotation
    fields = getattr(cls, "model_fields", None)
    return list(fields) if isinstance(fields, dict) else None


def _describe(
    error: dict[str, Any],
    origins: Mapping[tuple[str, ...], str],
    *,
    model: type[BaseModel] | None = None,
    prefix: tuple[str, ...] = (),
) -> str:
    """One line about one validation error: key, problem, value (unless secret), source.

    ``model`` is the model validated (default :class:`Config`); its errors'
    locations are relative to ``prefix``.
    """
    rel = [str(p) for p in error["loc"]]
    loc = [*prefix, *rel]
    key = ".".join(loc)
    msg = error["msg"]
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
        if model is None and len(loc) == 1:
            msg = f"unknown section (known: {', '.join(Config.model_fields)})"
        else:
            known = _table_keys(model or Config, rel)
            if known is not None:
                msg = f"unknown key (known keys of [{'.'.join(loc[:-1])}]: {', '.join(known)})"
    where = origins.get(tuple(loc[:3])) or origins.get(tuple(loc[:2]))
    value = error.get("input")
    shown = (
        ""
        if error["type"] == "extra_forbidden" or _is_secret(key) or isinstance(value, Mapping)
        else f" (got {value!r})"
    )
    return f"{key}: {msg}{shown}" + (f" [from {where}]" if where else "")


def config_path_from(explicit: str | os.PathLike | None, environ: Mapping[str, str]) -> Path | None:
    """Which TOML file to read: ``--config``, else ``$ROLLCALL_CONFIG``, else none."""
    if explicit:
        return Path(explicit).expanduser()
    if environ.get("ROLLCALL_CONFIG"):
        return Path(environ["ROLLCALL_CONFIG"]).expanduser()
    return None


def load_config(
    path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration, or raise :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    file_path = config_path_from(path, environ)
    file_values: dict[str, Any] = {}
    if file_path is not None:
        try:
            with open(file_path, "rb") as fh:
                file_values = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {file_path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file_path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {file_path} cannot be read: {exc}") from None
    for section, values in file_values.items():
        if section in Config.model_fields and not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a [{section}] table, got {values!r}")
    plugins = _plugin_values(file_values, file_path, environ)
    file_values = {
        k: v for k, v in file_values.items() if k not in LEGACY_PLUGIN_SECTIONS and k != "plugins"
    }
    env_values = _env_overrides(environ)
    origins: dict[tuple[str, ...], str] = dict(plugins.origins)
    for section, values in file_values.items():
        for key in values if isinstance(values, dict) else ():
            origins[(section, key)] = str(file_path)
    for section, values in env_values.items():
        for key in values:
            origins[(section, key)] = (
                "ROLLCALL_HOME"
                if (section, key) == ("storage", "home")
                and "ROLLCALL_HOME" in environ
                and f"{ENV_PREFIX}STORAGE_HOME" not in environ
                else f"{ENV_PREFIX}{section}_{key}".upper()
            )
    merged = _merge(file_values, env_values)
    merged["plugins"] = plugins.tables  # always: a fresh PluginsConfig per load
    try:
        config = Config.model_validate(merged, strict=True)
    except ValidationError as exc:
        problems = [_describe(e, origins) for e in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    config.plugins._origins = {
        f"{loc[1]}.{loc[2]}": where
        for loc, where in plugins.origins.items()
        if loc[1] not in BUILTIN_PLUGIN_SETTINGS
    }
    config.plugins._environ = plugins.environ
    return config


def validate_plugin_settings(
    config: Config, name: str, model: type[BaseModel] | None
) -> BaseModel | None:
    """A third-party plugin's settings: its ``[plugins.<name>]`` table and its
    ``ROLLCALL_PLUGINS_<NAME>_<KEY>`` variables validated by ``model`` (None when
    the plugin declares no settings and the config gives none).

    Raises :class:`ConfigError` naming the key, the value and where it came
    from, like :func:`load_config`.
    """
    values = config.plugins.table(name)
    origins: dict[tuple[str, ...], str] = {
        ("plugins", name, key): config.plugins._origins.get(f"{name}.{key}", "") for key in values
    }
    if model is None:
        if values:
            keys = ", ".join(sorted(values))
            where = next(iter(origins.values()))
            raise ConfigError(
                f"plugins.{name}: the plugin declares no settings (settings_model), "
                f"but the configuration sets {keys}" + (f" [from {where}]" if where else "")
            )
        return None
    for key, field in model.model_fields.items():
        env_name = plugin_env_name(name, key)
        if env_name in config.plugins._environ:
            values[key] = _env_value(config.plugins._environ[env_name], field.annotation)
            origins[("plugins", name, key)] = env_name
    try:
        return model.model_validate(values, strict=True)
    except ValidationError as exc:
        problems = [
            _describe(e, origins, model=model, prefix=("plugins", name)) for e in exc.errors()
        ]
        raise ConfigError("; ".join(problems)) from None


def config_toml_keys() -> dict[str, list[str]]:
    """Every section and key, for checking that config.toml documents them all
    (a plugin's table is named ``plugins.<name>``)."""
    keys: dict[str, list[str]] = {}
    for name, field in Config.model_fields.items():
        if name == "plugins":
            for plugin, model in BUILTIN_PLUGIN_SETTINGS.items():
                keys[f"plugins.{plugin}"] = list(model.model_fields)
        else:
            keys[name] = list(field.annotation.model_fields)
    return keys


def course_notify(config: Config, course_id: str) -> CourseNotify | None:
    """The ``[[notify.courses]]`` entry of a course, if it has one."""
    return next((c for c in config.notify.courses if c.course == course_id), None)


def threshold_for(config: Config, course_id: str) -> float:
    """Attendance % below which a student of this course is highlighted."""
    entry = course_notify(config, course_id)
    if entry is not None and entry.threshold_pct is not None:
        return entry.threshold_pct
    return config.reports.threshold_pct


def language_for(config: Config, course_id: str) -> str:
    """Language (template folder) of the texts sent about this course."""
    entry = course_notify(config, course_id)
    if entry is not None and entry.language is not None:
        return entry.language
    return config.reports.language


def zoom_credentials_missing(config: Config) -> list[str]:
    """The ``[zoom]`` credentials that are not set (the Zoom API needs all three)."""
    z = config.zoom
    missing = [
        name
        for name, value in (("account_id", z.account_id), ("client_id", z.client_id))
        if not value
    ]
    if not z.client_secret.get_secret_value():
        missing.append("client_secret")
    return missing
