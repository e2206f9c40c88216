"""`rollcall serve` as a real subprocess, for the service tests and the fault soak.

Also the fake Zoom both of them point it at: one account (``ACCOUNT_ID``) with
one host (``HOST_ID``), the settings that name them (:func:`fake_zoom_env`) and
the rows of its participants reports (:func:`participant`).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import requests

from tests.fakezoom import FakeAccount, FakeUser, FakeZoomServer, FakeZoomState

ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET = "acc-1", "client-1", "client-secret"
HOST_ID, HOST_EMAIL = "host-1", "teacher@example.edu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`rollcall serve` in a subprocess."""

    def __init__(self, env: dict[str, str], port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self._out = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rollcall", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url("/healthz"), timeout=1).status_code in (200, 503):
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
            assert self.proc.poll() is None, self.log.read_text()
        raise AssertionError("service did not start: " + self.log.read_text())

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(60)
        return self.proc.returncode if self.proc else 0


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(
        f"timed out waiting for {what}\n" + (log.read_text()[-4000:] if log else "")
    )


def fake_zoom_state(*, token_lifetime: float) -> FakeZoomState:
    """A fake Zoom's state with the one account and host :func:`fake_zoom_env` names."""
    return FakeZoomState(
        accounts=[FakeAccount(ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET)],
        token_lifetime=token_lifetime,
        users=[FakeUser(id=HOST_ID, email=HOST_EMAIL)],
    )


def fake_zoom_env(
    zoom: FakeZoomServer, course: str, topics: str = "Biology 101*"
) -> dict[str, str]:
    """The settings that point `rollcall serve` at ``zoom``: its account and host,
    downloads from 127.0.0.1, and meetings whose topic matches ``topics`` mapped to
    ``course``. The webhook secret, polling and timings are the caller's."""
    return {
        "ROLLCALL_ZOOM_ACCOUNT_ID": ACCOUNT_ID,
        "ROLLCALL_ZOOM_CLIENT_ID": CLIENT_ID,
        "ROLLCALL_ZOOM_CLIENT_SECRET": CLIENT_SECRET,
        "ROLLCALL_ZOOM_API_BASE_URL": zoom.api_base_url,
        "ROLLCALL_ZOOM_OAUTH_URL": zoom.oauth_url,
        "ROLLCALL_ZOOM_USERS": HOST_ID,
        "ROLLCALL_ZOOM_DOWNLOAD_HOSTS": "127.0.0.1,localhost",
        "ROLLCALL_ZOOM_COURSE_MAP": json.dumps([{"course": course, "topics": [topics]}]),
    }


def participant(key: str, name: str, start: datetime, minutes: int) -> dict[str, object]:
    """A participants-report row: ``name`` connected for ``minutes`` from ``start``
    (ids ``p<key>`` and ``u<key>``, no email)."""
    return {
        "id": f"p{key}",
        "user_id": f"u{key}",
        "name": name,
        "user_email": "",
        "join_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "leave_time": (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": 60 * minutes,
    }
