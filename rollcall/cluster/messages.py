"""What travels between the coordinator and its workers, and how it is sealed.

A task carries what a worker needs and nothing else: where to download the
recording and with which token, the course's roster (templates and photo
embeddings, no photos), the analysis settings and the plugins enabled for the
course. A result carries the meeting's rows (:class:`FrameAnalysis`) or the error.

Every message is pickled and signed with HMAC-SHA256 under ``[cluster] secret``;
the signature covers the kind ("task" / "result") and is checked before anything
is unpickled, so whoever can write to the broker without the secret can neither
make a worker run a task nor make the coordinator store a result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollcall.pipeline.orchestrator import FrameAnalysis
from rollcall.types import Roster

#: Outcome kinds of a result.
OK = "ok"
STARTED = "started"  # a worker took the task (no analysis yet)
RECORDING = "recording"  # the file is not a usable recording (RecordingError)
DOWNLOAD = "download"  # the download failed
TOKEN_REFUSED = "token_refused"  # Zoom refused the download token
ERROR = "error"  # anything else

#: Settings sections a worker takes from the coordinator for one task.
SETTINGS_SECTIONS = ("analysis", "recognition", "attendance", "privacy")


class BadSignature(ValueError):
    """A message not signed with this cluster's secret (or of another kind)."""


@dataclass(frozen=True, slots=True)
class DownloadSource:
    url: str
    token: str  # the webhook's download token or an OAuth access token ("" = none)
    size: int | None
    allowed_hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Task:
    """One recording to analyse, as sent to a worker."""

    token: str  # unique to this dispatch: a result is matched to it
    job_id: int
    meeting_id: int
    course_id: str
    title: str
    start_time: datetime | None
    roster: Roster
    download: DownloadSource
    settings: dict[str, Any]  # SETTINGS_SECTIONS of the coordinator's configuration
    plugins: tuple[str, ...]  # the plugins enabled for the course
    model_key: str  # the coordinator's model pack: a worker with another one refuses
    #: the roster's names and emails (the tile-label check) and the participants report
    people: tuple[Any, ...] = ()
    participants: tuple[Any, ...] | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What a worker says about a task: it started it, or how it ended."""

    token: str
    job_id: int
    worker: str
    kind: str  # OK, STARTED or an error kind
    analysis: FrameAnalysis | None = None
    error: str = ""
    seconds: float = 0.0  # the worker's wall time (download and analysis)
    extra: dict[str, Any] = field(default_factory=dict)


def _mac(secret: str, kind: str, body: bytes) -> str:
    return hmac.new(secret.encode(), kind.encode() + b"\0" + body, hashlib.sha256).hexdigest()


def seal(secret: str, kind: str, obj: Any) -> str:
    """``obj`` as text for a broker message, signed for ``kind``."""
    body = base64.b64encode(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return body.decode() + "." + _mac(secret, kind, body)


def unseal(secret: str, kind: str, text: str) -> Any:
    """The object :func:`seal` made; :class:`BadSignature` unless signed for ``kind``."""
    body, _, mac = text.rpartition(".")
    if not body or not hmac.compare_digest(mac, _mac(secret, kind, body.encode())):
        raise BadSignature(f"a {kind} message with a wrong signature was dropped")
    return pickle.loads(base64.b64decode(body))  # noqa: S301 - signed by a holder of the secret
