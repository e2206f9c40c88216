"""Zoom events as one typed value, whichever way they arrive.

Webhooks, the WebSocket event subscription and the recording poller all turn
what Zoom sends into a :class:`ZoomEvent` with :func:`parse_event` and hand it
to the same :class:`EventSink`, so every path converges on one place (the
service's sink, which records the event and enqueues jobs).

A Zoom event body looks like::

    {"event": "recording.completed", "event_ts": 1700000000000,
     "payload": {"account_id": "...", "object": {"uuid": "...", "id": 123,
                 "recording_files": [{"id": "...", "download_url": "..."}]}},
     "download_token": "..."}

``download_token`` is a credential (it authorises downloads of the files) and
must never be logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

EventSource = Literal["webhook", "websocket", "poll"]
SOURCES: tuple[str, ...] = get_args(EventSource)

URL_VALIDATION = "endpoint.url_validation"
RECORDING_COMPLETED = "recording.completed"
RECORDING_TRASHED = "recording.trashed"
RECORDING_DELETED = "recording.deleted"
RECORDING_RECOVERED = "recording.recovered"
MEETING_ENDED = "meeting.ended"
MAX_INT = 2**63 - 1  # numbers are stored in SQLite, whose INTEGER is 64-bit


class EventError(ValueError):
    """A body that is not a usable Zoom event; the message says what is wrong."""


@dataclass(frozen=True)
class ZoomEvent:
    """One event from Zoom, as every delivery path hands it on."""

    event: str  # "recording.completed", "meeting.ended"...
    event_ts: int  # Zoom's timestamp, milliseconds since the epoch
    payload: dict[str, Any]  # the body's "payload" object, unchanged
    source: EventSource  # how it reached us
    download_token: str | None = None  # recording events only; a credential, never log it

    def __repr__(self) -> str:  # keeps the download token out of logs and tracebacks
        token = "<set>" if self.download_token else None
        return (
            f"ZoomEvent(event={self.event!r}, event_ts={self.event_ts}, "
            f"source={self.source!r}, meeting_uuid={meeting_uuid(self)!r}, "
            f"download_token={token})"
        )


class EventSink(Protocol):
    """Where events go. It must record the event durably before returning.

    The webhook answers Zoom 200 only after the sink returned, and answers 500
    (so Zoom retries) if it raised or took too long, so the sink should only
    record or enqueue, never do the work itself. The same event may be
    delivered more than once (Zoom retries, webhook and WebSocket both on,
    polling); deduplicate on :func:`event_keys`.
    """

    async def __call__(self, event: ZoomEvent) -> None: ...


def _check_number(name: str, where: str, value: Any) -> None:
    """EventError unless ``value`` is absent or a whole number in 0..MAX_INT (Zoom sends
    numbers; digits in a string are accepted too)."""
    if value is None or value == "":
        return
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise EventError(f"{name}: '{where}' must be a whole number from 0 to {MAX_INT}")


def parse_event(body: Any, source: EventSource) -> ZoomEvent:
    """Check the shape of a decoded event body and wrap it, or raise :class:`EventError`.

    Numbers that end up in the database (the meeting id, durations, file sizes) must
    be whole numbers that fit SQLite's 64-bit INTEGER.
    """
    if source not in SOURCES:
        raise EventError(f"unknown event source {source!r} (known: {', '.join(SOURCES)})")
    if not isinstance(body, Mapping):
        raise EventError(f"event body must be a JSON object, got {type(body).__name__}")
    name = body.get("event")
    if not isinstance(name, str) or not name.strip():
        raise EventError("event body has no 'event' name")
    event_ts = body.get("event_ts")
    if isinstance(event_ts, bool) or not isinstance(event_ts, int) or not 0 <= event_ts <= MAX_INT:
        raise EventError(f"{name}: 'event_ts' must be a non-negative integer")
    payload = body.get("payload")
    if not isinstance(payload, Mapping):
        raise EventError(f"{name}: 'payload' must be an object")
    obj = payload.get("object")
    if obj is not None and not isinstance(obj, Mapping):
        raise EventError(f"{name}: 'payload.object' must be an object")
    files = obj.get("recording_files") if obj is not None else None
    if files is not None and (
        not isinstance(files, list) or not all(isinstance(f, Mapping) for f in files)
    ):
        raise EventError(f"{name}: 'payload.object.recording_files' must be a list of objects")
    if obj is not None:
        for key in ("id", "duration"):
            _check_number(name, f"payload.object.{key}", obj.get(key))
    for i, f in enumerate(files or ()):
        _check_number(name, f"payload.object.recording_files[{i}].file_size", f.get("file_size"))
    token = body.get("download_token")
    if token is not None and not isinstance(token, str):
        raise EventError(f"{name}: 'download_token' must be a string")
    return ZoomEvent(
        event=name,
        event_ts=event_ts,
        payload=dict(payload),
        source=source,
        download_token=token or None,
    )


def event_object(event: ZoomEvent) -> dict[str, Any]:
    """``payload.object`` (the meeting or recording), or ``{}`` if the event has none."""
    obj = event.payload.get("object")
    return dict(obj) if isinstance(obj, Mapping) else {}


def meeting_uuid(event: ZoomEvent) -> str | None:
    """The meeting instance's UUID (``payload.object.uuid``), if the event names one."""
    uuid = event_object(event).get("uuid")
    return uuid if isinstance(uuid, str) and uuid else None


def recording_files(event: ZoomEvent) -> list[dict[str, Any]]:
    """The recording files of a recording event (``payload.object.recording_files``)."""
    files = event_object(event).get("recording_files")
    if not isinstance(files, list):
        return []
    return [dict(f) for f in files if isinstance(f, Mapping)]


def file_key(meeting_uuid: str, file_id: str) -> str:
    """Idempotency key of one recording file: meeting UUID + recording file id.

    Same format as ``rollcall.store.jobs.job_key`` (Zoom UUIDs never contain ``:``).
    """
    return f"{meeting_uuid}:{file_id}"


def event_keys(event: ZoomEvent) -> tuple[str, ...]:
    """One idempotency key per recording file of the event, in the order Zoom lists them.

    The key names the file (meeting UUID + file id), not the delivery, so a
    webhook, its retries, the same event over the WebSocket and the poller's
    view of the same recording all give the same keys. Files without an id
    and events without files (``meeting.ended``) give no key. The key does
    not include the event name: a queue that dedupes should scope it by the
    action it takes (analyse on ``recording.completed``, forget on
    ``recording.deleted``...).
    """
    obj = event_object(event)
    keys: list[str] = []
    for f in recording_files(event):
        uuid = obj.get("uuid") or f.get("meeting_id")
        file_id = f.get("id")
        if isinstance(uuid, str) and uuid and isinstance(file_id, str) and file_id:
            keys.append(file_key(uuid, file_id))
    return tuple(keys)


def event_key(event: ZoomEvent, file: Mapping[str, Any]) -> str:
    """The idempotency key of one of the event's recording files."""
    uuid = meeting_uuid(event) or file.get("meeting_id")
    file_id = file.get("id")
    if not isinstance(uuid, str) or not uuid or not isinstance(file_id, str) or not file_id:
        raise EventError(f"{event.event}: recording file without meeting UUID or file id")
    return file_key(uuid, file_id)


def log_context(event: ZoomEvent) -> dict[str, Any]:
    """Safe fields for ``extra={...}`` when logging an event (no tokens)."""
    obj = event_object(event)
    return {
        "zoom_event": event.event,
        "event_ts": event.event_ts,
        "source": event.source,
        "meeting_uuid": obj.get("uuid"),
        "zoom_meeting_id": obj.get("id"),
        "files": len(recording_files(event)),
    }
