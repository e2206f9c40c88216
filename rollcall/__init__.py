"""rollcall: automatic attendance for online classes from Zoom recordings.

This module is the public plugin API, the way ``datasette`` and ``pytest``
expose theirs: a plugin needs nothing else from rollcall::

    from rollcall import hookimpl, Face, SampledFrame

    class MyDetector:
        name = "my_detector"

        @hookimpl
        def rollcall_detect_faces(self, frame: SampledFrame) -> list[Face] | None: ...

The hooks themselves are specified in :mod:`rollcall.hookspecs`; the values they
take and return are the dataclasses of :mod:`rollcall.types`, re-exported here,
with the few presence helpers a plugin that decides attendance needs.
A plugin with settings of its own declares ``settings_model``, a subclass of
:class:`PluginSettings`, and reads them from ``self.settings``::

    class MySettings(PluginSettings):
        min_faces: int = 1  # [plugins.my_detector] min_faces

    class MyDetector:
        name = "my_detector"
        settings_model = MySettings

A plugin that stores rows writes them in ``rollcall_save_results`` inside
``write_transaction(db)`` (a savepoint of the meeting's transaction).
"""

from rollcall.hookspecs import hookimpl
from rollcall.plugin_settings import PluginSettings
from rollcall.presence import (
    attendance_status,
    attendance_totals,
    minute_lengths,
    present_minutes,
    seconds_per_minute,
)
from rollcall.store.db import write_transaction
from rollcall.types import (
    STATUSES,
    AttendanceReport,
    CorrectionNote,
    Face,
    FaceMatch,
    MeetingContext,
    MinuteEvidence,
    OutgoingMessage,
    Roster,
    SampledFrame,
    StudentAttendance,
    StudentPresence,
    TrackDecision,
    TrackedFace,
    TrackIdentities,
    TrackSummary,
    minutes_in,
    track_decisions,
)

__all__ = [
    "STATUSES",
    "AttendanceReport",
    "CorrectionNote",
    "Face",
    "FaceMatch",
    "MeetingContext",
    "MinuteEvidence",
    "OutgoingMessage",
    "PluginSettings",
    "Roster",
    "SampledFrame",
    "StudentAttendance",
    "StudentPresence",
    "TrackDecision",
    "TrackIdentities",
    "TrackSummary",
    "TrackedFace",
    "attendance_status",
    "attendance_totals",
    "hookimpl",
    "minute_lengths",
    "minutes_in",
    "present_minutes",
    "seconds_per_minute",
    "track_decisions",
    "write_transaction",
]
