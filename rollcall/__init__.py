"""rollcall: automatic attendance for online classes from Zoom recordings.

This module is the public plugin API, the way ``datasette`` and ``pytest``
expose theirs: a plugin needs nothing else from rollcall::

    from rollcall import hookimpl, Face, SampledFrame

    class MyDetector:
        name = "my_detector"

        @hookimpl
        def rollcall_detect_faces(self, frame: SampledFrame) -> list[Face] | None: ...

The hooks themselves are specified in :mod:`rollcall.hookspecs`; the values they
take and return are the dataclasses of :mod:`rollcall.types`, re-exported here.
A plugin that stores rows writes them in ``rollcall_save_results`` inside
``write_transaction(db)`` (a savepoint of the meeting's transaction).
"""

from rollcall.hookspecs import hookimpl
from rollcall.store.db import write_transaction
from rollcall.types import (
    AttendanceReport,
    CorrectionNote,
    Face,
    MeetingContext,
    Roster,
    SampledFrame,
    StudentAttendance,
)

__all__ = [
    "AttendanceReport",
    "CorrectionNote",
    "Face",
    "MeetingContext",
    "Roster",
    "SampledFrame",
    "StudentAttendance",
    "hookimpl",
    "write_transaction",
]
