"""The Zoom REST calls rollcall needs, on top of zoomus, with retries and paging.

zoomus 1.2.1 is used for what it does well (base URI handling, request
building through its components' ``get_request``), but ``zoomus.ZoomClient``
itself is not instantiated: its constructor POSTs for a token at once, with no
timeout and no error handling, and keeps that token in a dict shared by every
component. Instead one zoomus component is built on ``api_base_url`` and each
call passes an explicit ``Authorization`` header with the token from our
:class:`~rollcall.bot.oauth.TokenProvider` (thread-safe, no shared mutable token).

This layer adds: token renewal (before expiry, and once after a 401), bounded
retries with exponential backoff on 429/5xx/connection errors honouring
``Retry-After``, ``next_page_token`` paging, month windows for recording lists,
uuid encoding, and typed results.
"""

from __future__ import annotations

import calendar
import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from zoomus.components.base import BaseComponent
from zoomus.util import API_VERSION_2

from rollcall.bot.oauth import OAuthError, TokenProvider
from rollcall.types import Participant

if TYPE_CHECKING:
    from rollcall.config import ZoomConfig

log = logging.getLogger(__name__)


class ZoomApiError(Exception):
    """A Zoom API call failed for good. ``status``/``code`` are Zoom's when known."""

    def __init__(
        self, message: str, *, status: int | None = None, code: int | None = None, path: str = ""
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.path = path


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ZoomUser:
    id: str
    email: str
    first_name: str
    last_name: str
    type: int | None
    status: str


@dataclass(frozen=True)
class RecordingFile:
    id: str
    meeting_id: str  # the meeting instance uuid Zoom puts on each file
    recording_type: str  # gallery_view, active_speaker, shared_screen_with_gallery_view...
    file_type: str  # MP4, M4A, TRANSCRIPT, CHAT, TIMELINE...
    file_extension: str
    file_size: int | None
    download_url: str
    status: str
    recording_start: datetime | None
    recording_end: datetime | None


@dataclass(frozen=True)
class ZoomRecording:
    uuid: str
    meeting_id: int  # the numeric meeting id (shared by all instances of a meeting)
    topic: str
    host_id: str
    host_email: str
    start_time: datetime | None
    duration: int  # minutes
    recording_files: list[RecordingFile] = field(default_factory=list)
    download_access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ScopeCheck:
    capability: str
    accepted: tuple[str, ...]  # any one of these is enough
    granted_by: str | None  # the scope that grants it, None when missing
    required: bool = True

    @property
    def ok(self) -> bool:
        return self.granted_by is not None


@dataclass(frozen=True)
class ScopeReport:
    scopes: tuple[str, ...]  # what the token carries
    checks: tuple[ScopeCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    @property
    def missing(self) -> list[ScopeCheck]:
        return [c for c in self.checks if not c.ok]


# Classic scope first, then granular ones; user-level variants only cover the
# app owner's own data but are accepted.
SCOPE_REQUIREMENTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    (
        "list cloud recordings",
        (
            "recording:read:admin",
            "cloud_recording:read:list_user_recordings:admin",
            "recording:read",
            "cloud_recording:read:list_user_recordings",
        ),
        True,
    ),
    (
        "read a meeting's recording files",
        (
            "recording:read:admin",
            "cloud_recording:read:list_recording_files:admin",
            "recording:read",
            "cloud_recording:read:list_recording_files",
        ),
        True,
    ),
    (
        "meeting participants report",
        ("report:read:admin", "report:read:list_meeting_participants:admin"),
        True,
    ),
    (
        "list users",
        ("user:read:admin", "user:read:list_users:admin"),
        False,
    ),
)


# ---------------------------------------------------------------------------
# Pure helpers


def encode_uuid(uuid: str) -> str:
    """Encode a meeting uuid for a URL path, as Zoom documents it.

    Uuids that start with ``/`` or contain ``//`` are encoded twice, others once.
    """
    once = quote(uuid, safe="")
    if uuid.startswith("/") or "//" in uuid:
        return quote(once, safe="")
    return once


def parse_time(value: Any) -> datetime | None:
    """Zoom's ``2024-03-01T10:00:00Z`` to an aware datetime (None if absent/invalid)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _add_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def month_windows(from_date: date, to_date: date) -> list[tuple[date, date]]:
    """Split an inclusive date range into windows Zoom accepts (``to`` < ``from`` + 1 month)."""
    if to_date < from_date:
        raise ValueError(f"to_date {to_date} is before from_date {from_date}")
    windows = []
    start = from_date
    while start <= to_date:
        end = min(to_date, _add_month(start) - timedelta(days=1))
        windows.append((start, end))
        start = end + timedelta(days=1)
    return windows


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, an HTTP date or an ISO time (None if absent)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = parse_time(value)
    if when is None:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def parse_recording_file(data: dict) -> RecordingFile:
    size = data.get("file_size")
    return RecordingFile(
        id=str(data.get("id") or ""),
        meeting_id=str(data.get("meeting_id") or ""),
        recording_type=str(data.get("recording_type") or ""),
        file_type=str(data.get("file_type") or ""),
        file_extension=str(data.get("file_extension") or ""),
        file_size=int(size) if size is not None else None,
        download_url=str(data.get("download_url") or ""),
        status=str(data.get("status") or ""),
        recording_start=parse_time(data.get("recording_start")),
        recording_end=parse_time(data.get("recording_end")),
    )


def parse_recording(data: dict, download_access_token: str | None = None) -> ZoomRecording:
    """A Zoom meeting-recording object (from a list, a get, or a webhook) to a dataclass."""
    return ZoomRecording(
        uuid=str(data.get("uuid") or ""),
        meeting_id=int(data.get("id") or 0),
        topic=str(data.get("topic") or ""),
        host_id=str(data.get("host_id") or ""),
        host_email=str(data.get("host_email") or ""),
        start_time=parse_time(data.get("start_time")),
        duration=int(data.get("duration") or 0),
        recording_files=[parse_recording_file(f) for f in data.get("recording_files") or []],
        download_access_token=download_access_token or data.get("download_access_token") or None,
    )


def parse_participant(data: dict) -> Participant:
    return Participant(
        user_id=str(data.get("user_id") or data.get("id") or ""),
        name=str(data.get("name") or ""),
        email=str(data.get("user_email") or ""),
        join_time=parse_time(data.get("join_time")),
        leave_time=parse_time(data.get("leave_time")),
        duration=int(data.get("duration") or 0),
    )


GALLERY_TYPES = ("gallery_view", "shared_screen_with_gallery_view")
SPEAKER_TYPES = ("active_speaker", "shared_screen_with_speaker_view")
SPEAKER_WARNING = "gallery view not recorded; accuracy is limited with speaker view"


def pick_video_file(recording: ZoomRecording) -> tuple[RecordingFile | None, str | None]:
    """The MP4 to analyse and an optional warning for the report.

    Preference: ``gallery_view``, ``shared_screen_with_gallery_view``, then a
    speaker view (with a warning). Files not ``completed`` are skipped. When a
    type has several files (recording stopped and restarted) the earliest is
    taken and a warning says so.
    """
    videos = [
        f
        for f in recording.recording_files
        if (f.file_type.upper() == "MP4" or f.file_extension.upper() == "MP4")
        and f.status.lower() == "completed"
    ]
    far_future = datetime.max.replace(tzinfo=UTC)
    for kind in (*GALLERY_TYPES, *SPEAKER_TYPES):
        matches = sorted(
            (f for f in videos if f.recording_type == kind),
            key=lambda f: f.recording_start or far_future,
        )
        if not matches:
            continue
        warnings = []
        if kind in SPEAKER_TYPES:
            warnings.append(SPEAKER_WARNING)
        if len(matches) > 1:
            warnings.append(f"{len(matches)} {kind} segments recorded; only the first is analysed")
        return matches[0], "; ".join(warnings) or None
    if recording.recording_files:
        return None, "no completed MP4 video (gallery or speaker view) in this recording"
    return None, "this recording has no files"


# ---------------------------------------------------------------------------
# Client


class ZoomClient:
    """Synchronous Zoom API client; safe to share between worker threads.

    ``sleep`` is called for every backoff wait (inject a recorder in tests).
    """

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        api_base_url: str = "https://api.zoom.us/v2",
        timeout: int = 30,
        max_attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_retry_after: float = 300.0,
        page_size: int = 300,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.tokens = tokens
        self.api_base_url = api_base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.page_size = page_size
        self._sleep = sleep
        # A zoomus component used only for URL building and the HTTP call; the
        # token goes in an explicit header per request (see module docstring).
        self._api = BaseComponent(
            base_uri=self.api_base_url, config={"version": API_VERSION_2}, timeout=timeout
        )

    @classmethod
    def from_config(cls, zoom: ZoomConfig, **kwargs) -> ZoomClient:
        """Client and token provider from the ``[zoom]`` configuration section."""
        return cls(TokenProvider.from_config(zoom), api_base_url=zoom.api_base_url, **kwargs)

    # -- transport ---------------------------------------------------------

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict:
        """GET ``path`` (already encoded) and return the JSON body, retrying as documented."""
        renewed_after_401 = False
        attempt = 0
        last = ""
        while True:
            attempt += 1
            try:
                token = self.tokens.token()
            except OAuthError as exc:
                if not exc.retryable or attempt >= self.max_attempts:
                    raise
                last = str(exc)
                self._wait(path, attempt, None, last)
                continue
            try:
                resp = self._api.get_request(
                    path,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
            except requests.RequestException as exc:
                last = f"connection error: {type(exc).__name__}"
                if attempt >= self.max_attempts:
                    break
                self._wait(path, attempt, None, last)
                continue
            status = resp.status_code
            if status == 401:
                self.tokens.invalidate(token)
                if not renewed_after_401:
                    renewed_after_401 = True
                    attempt -= 1  # a renewal is not a failed attempt
                    log.info("zoom answered 401; renewing the token once", extra={"path": path})
                    continue
                raise self._error(resp, path, "Zoom rejected the access token even after renewal")
            if status == 429 or status >= 500:
                last = f"HTTP {status}"
                if attempt >= self.max_attempts:
                    break
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self.max_retry_after:
                    raise self._error(
                        resp,
                        path,
                        f"Zoom rate limit: asked to retry after {retry_after:.0f} s "
                        f"(more than {self.max_retry_after:.0f} s); try again later",
                    )
                self._wait(path, attempt, retry_after, last)
                continue
            if status >= 400:
                raise self._error(resp, path, f"Zoom API error HTTP {status}")
            try:
                body = resp.json()
            except ValueError:
                raise ZoomApiError(
                    f"Zoom answered {path} with a body that is not JSON", status=status, path=path
                ) from None
            return body if isinstance(body, dict) else {}
        raise ZoomApiError(
            f"Zoom API {path}: gave up after {self.max_attempts} attempts (last: {last})",
            path=path,
        )

    def _wait(self, path: str, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = self._delay(attempt, retry_after)
        log.warning(
            "zoom request failed; retrying",
            extra={"path": path, "attempt": attempt, "delay_s": delay, "reason": reason},
        )
        self._sleep(delay)

    @staticmethod
    def _error(resp: requests.Response, path: str, prefix: str) -> ZoomApiError:
        code = None
        message = ""
        try:
            body = resp.json()
            if isinstance(body, dict):
                code = body.get("code")
                message = str(body.get("message") or "")
        except ValueError:
            pass
        text = f"{prefix} on {path}" + (f": {message}" if message else "")
        if code is not None:
            text += f" (code {code})"
        return ZoomApiError(text, status=resp.status_code, code=code, path=path)

    def _pages(self, path: str, params: dict[str, Any], key: str) -> Iterator[dict]:
        """Every item of ``key`` over all ``next_page_token`` pages."""
        params = {**params, "page_size": self.page_size}
        while True:
            body = self._get(path, params)
            yield from body.get(key) or []
            next_token = body.get("next_page_token")
            if not next_token:
                return
            params = {**params, "next_page_token": next_token}

    # -- API ----------------------------------------------------------------

    def list_users(self, *, status: str = "active") -> list[ZoomUser]:
        """Users of the account (``GET /users``, all pages)."""
        return [
            ZoomUser(
                id=str(u.get("id") or ""),
                email=str(u.get("email") or ""),
                first_name=str(u.get("first_name") or ""),
                last_name=str(u.get("last_name") or ""),
                type=u.get("type"),
                status=str(u.get("status") or ""),
            )
            for u in self._pages("/users", {"status": status}, "users")
        ]

    def list_recordings(self, user_id: str, from_date: date, to_date: date) -> list[ZoomRecording]:
        """Cloud recordings of ``user_id`` with a start date in ``[from_date, to_date]`` (UTC).

        The range is queried in windows of at most one month (Zoom's limit);
        meetings are de-duplicated by uuid.
        """
        path = f"/users/{quote(user_id, safe='')}/recordings"
        seen: set[str] = set()
        out: list[ZoomRecording] = []
        for start, end in month_windows(from_date, to_date):
            params = {"from": start.isoformat(), "to": end.isoformat()}
            for meeting in self._pages(path, params, "meetings"):
                recording = parse_recording(meeting)
                if recording.uuid in seen:
                    continue
                seen.add(recording.uuid)
                out.append(recording)
        log.info(
            "zoom recordings listed",
            extra={"user": user_id, "from": str(from_date), "to": str(to_date), "count": len(out)},
        )
        return out

    def get_meeting_recordings(self, meeting_uuid: str) -> ZoomRecording:
        """One meeting instance's recordings, with its ``download_access_token``."""
        body = self._get(
            f"/meetings/{encode_uuid(meeting_uuid)}/recordings",
            {"include_fields": "download_access_token"},
        )
        return parse_recording(body)

    def participants_report(self, meeting_uuid: str) -> list[Participant]:
        """The participants report of a past meeting instance (all pages).

        One person may appear several times (each join/leave is a row).
        """
        path = f"/report/meetings/{encode_uuid(meeting_uuid)}/participants"
        return [parse_participant(p) for p in self._pages(path, {}, "participants")]

    def check_scopes(self) -> ScopeReport:
        """What the token's scopes grant against what rollcall needs (``rollcall zoom check``)."""
        scopes = self.tokens.access_token().scopes
        checks = []
        for capability, accepted, required in SCOPE_REQUIREMENTS:
            granted = next((s for s in accepted if s in scopes), None)
            checks.append(ScopeCheck(capability, accepted, granted, required))
        return ScopeReport(scopes=scopes, checks=tuple(checks))
