"""Example rollcall plugin: counts faces per sampled frame and reports the maximum.

Installed, it is discovered through the ``rollcall.plugins`` entry point
``face_counter``; it runs once enabled (``rollcall plugins enable face_counter``).
Setting ``ROLLCALL_EXAMPLE_FAIL=1`` makes it raise in ``rollcall_analyze_frame``,
which the tests use to check that a failing plugin does not stop a job.

Its settings are ``[plugins.face_counter]`` of rollcall's ``config.toml`` (or
``ROLLCALL_PLUGINS_FACE_COUNTER_CROWD_MIN``), validated by :class:`FaceCounterSettings`;
rollcall sets ``self.settings`` before any hook is called.
"""

from __future__ import annotations

import os
import threading

import pluggy
from pydantic import Field

from rollcall import PluginSettings

hookimpl = pluggy.HookimplMarker("rollcall")  # the same marker as rollcall.hookspecs.hookimpl


class FaceCounterSettings(PluginSettings):
    """``[plugins.face_counter]``."""

    crowd_min: int = Field(10, ge=1, le=1000)  # a frame with this many faces is "crowded"


class FaceCounter:
    """Counts the faces of each sampled frame, per meeting."""

    settings_model = FaceCounterSettings
    settings = FaceCounterSettings()  # replaced by the configured settings when loaded

    def __init__(self) -> None:
        self._counts: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    @hookimpl
    def rollcall_analyze_frame(self, meeting, frame, faces) -> None:
        if os.environ.get("ROLLCALL_EXAMPLE_FAIL") == "1":
            raise RuntimeError("example plugin failure (ROLLCALL_EXAMPLE_FAIL=1)")
        with self._lock:
            self._counts.setdefault(meeting.meeting_id, []).append(len(faces))

    @hookimpl
    def rollcall_finalize_meeting(self, meeting, tracks, identities, roster) -> dict:
        with self._lock:
            counts = self._counts.pop(meeting.meeting_id, [])
        return {
            "face_counter": {
                "frames": len(counts),
                "faces": sum(counts),
                "max_faces": max(counts, default=0),
                "crowded_frames": sum(n >= self.settings.crowd_min for n in counts),
            }
        }
