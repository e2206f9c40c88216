"""The hook specifications of rollcall's pipeline: the whole plugin contract.

A recording goes through the hooks in this order (the orchestrator in
``rollcall/pipeline/orchestrator.py`` calls them):

1. ``rollcall_sampling_interval`` - frame sampling: each plugin may ask for a
   sampling interval; the smallest answer wins (default ``[analysis] interval_s``).
2. ``rollcall_detect_faces`` - face detection on every sampled frame (first
   non-None result wins: one detector).
3. ``rollcall_embed_faces`` - face recognition, part 1: an L2-normalised
   embedding for each detected face (first non-None result wins). Then
   ``rollcall_embed_filled_faces``: for the faces that look masked, a second
   embedding with the lower face covered by a neutral fill (first result wins).
4. ``rollcall_match_faces`` - face recognition, part 2: open-set matching of
   one frame's faces against the course roster (first non-None result wins).
   The orchestrator then tracks faces across samples.
5. ``rollcall_analyze_frame`` - per-frame analysis: every analyzer sees the
   frame and its tracked, matched faces. Return value ignored.
6. ``rollcall_identify_tracks`` - face recognition, part 3: decide each
   track's identity by voting over its observations (first result wins).
7. ``rollcall_finalize_meeting`` - per-meeting finalisation: every analyzer
   turns what it gathered into results. Returns a ``dict`` of named results
   (merged into ``MeetingOutcome.results``).
8. ``rollcall_create_tables`` then ``rollcall_save_results`` - storage: in the
   one write transaction that replaces the meeting's core results, every
   plugin that keeps rows creates its tables (idempotent) and writes its
   results through the connection it is handed. The attendance and every
   plugin's rows commit or roll back together; a plugin never opens a
   connection of its own.
9. ``rollcall_report`` - reporting: write files for the analysed meeting into
   ``out_dir`` and return their paths.

Reading results back, the report (``rollcall/reports/results.py``) calls:

10. ``rollcall_report_sheets`` - the extra XLSX sheets a plugin shows for a
    meeting, read from its own tables (core code never names a plugin's table).

Outside the analysis, once a meeting is analysed, its notifications are queued
in the outbox (``rollcall/store/outbox.py``) and delivered by
``rollcall/notify/delivery.py``, which calls:

11. ``rollcall_send_notification`` - deliver one instructor notification
   (first result wins: the plugin that owns the message's channel sends it
   and returns True; an exception means "try again later").

Hook names must start with ``rollcall_``; pluggy rejects unknown hooks when a
plugin is registered, and a plugin may implement any subset.

A plugin's own settings are not a hook: it declares ``settings_model`` (a
:class:`rollcall.PluginSettings` subclass) and finds its validated
``[plugins.<name>]`` table in ``self.settings`` (``docs/plugins.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pluggy

if TYPE_CHECKING:
    import sqlite_utils

    from rollcall.config import Config
    from rollcall.types import (
        AttendanceReport,
        Face,
        FaceMatch,
        MeetingContext,
        OutgoingMessage,
        RecordingInfo,
        Roster,
        SampledFrame,
        TrackedFace,
        TrackSummary,
    )

PROJECT = "rollcall"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def rollcall_sampling_interval(config: Config, info: RecordingInfo) -> float | None:
    """Seconds between sampled frames this plugin needs, or None for no opinion."""


@hookspec(firstresult=True)
def rollcall_detect_faces(frame: SampledFrame) -> list[Face] | None:
    """Detect faces in ``frame.image``; boxes and keypoints in that image's pixels.

    ``frame.image`` may be one gallery tile of the sampled frame rather than the
    whole frame (the fast path, ``rollcall.pipeline.gallery``); the orchestrator moves the
    boxes back into frame coordinates.
    """


@hookspec(firstresult=True)
def rollcall_embed_faces(frame: SampledFrame, faces: list[Face]) -> np.ndarray | None:
    """Return an (n, d) float32 array of L2-normalised embeddings, one row per face."""


@hookspec(firstresult=True)
def rollcall_embed_filled_faces(
    frame: SampledFrame, faces: list[Face], roster: Roster | None
) -> list[np.ndarray | None] | None:
    """Per face, an L2-normalised embedding of its crop with the lower face filled
    (the part a mask covers), or None for a face that does not look masked next to
    ``roster``'s templates; every face when ``roster`` is None (enrollment photos).
    ``face.embedding`` is set. No answer: masked faces are matched without it."""


@hookspec(firstresult=True)
def rollcall_match_faces(embeddings: np.ndarray, roster: Roster) -> list[FaceMatch] | None:
    """Open-set match of one frame's faces: one ``FaceMatch`` per face.

    A face below the threshold is unknown (``student_index == -1``); one student
    matches at most one face of the frame.
    """


@hookspec
def rollcall_analyze_frame(
    meeting: MeetingContext, frame: SampledFrame, faces: list[TrackedFace]
) -> None:
    """Look at one sampled frame and its tracked faces; keep what you need."""


@hookspec(firstresult=True)
def rollcall_identify_tracks(tracks: list[TrackSummary], roster: Roster) -> dict[int, int] | None:
    """Map track id -> roster index for tracks attributed to a student (others are unknown).

    The built-in recognizer answers a ``rollcall.TrackIdentities``: that mapping (the
    *accepted* tracks) which also carries ``decisions`` (track id ->
    ``rollcall.TrackDecision``) including borderline *review* tracks, from which the
    attendance plugin makes "needs review" minutes and their evidence. A plain dict
    is accepted too (every track in it accepted, no review).
    """


@hookspec
def rollcall_finalize_meeting(
    meeting: MeetingContext, tracks: list[TrackSummary], identities: dict[int, int], roster: Roster
) -> dict[str, Any] | None:
    """Turn what was gathered into results; return them by name.

    ``tracks`` are all face tracks of the recording, ``identities`` maps the
    attributed track ids to roster indexes. Do not write to the database here:
    store your results in ``rollcall_save_results``.
    """


@hookspec
def rollcall_create_tables(db: sqlite_utils.Database) -> None:
    """Create this plugin's tables if they do not exist (``create table if not exists``).

    Called before ``rollcall_save_results``, inside the same write transaction;
    must be idempotent. Use a column named ``meeting_id`` (and ``student_pk``
    for per-student rows): retention and student removal then delete your rows
    with the meeting or the student.
    """


@hookspec
def rollcall_save_results(
    db: sqlite_utils.Database, meeting: MeetingContext, results: dict[str, Any], roster: Roster
) -> None:
    """Store this plugin's results of ``meeting`` (replacing a previous run's rows).

    ``results`` is the merged dict of every ``rollcall_finalize_meeting`` answer
    (pick your own key). The orchestrator calls this inside the write
    transaction that replaces the meeting's core results: write through ``db``,
    never open a connection, never commit. Wrap your writes in
    ``rollcall.store.db.write_transaction(db)`` (a savepoint there) so a failure
    undoes exactly your rows. An exception that reaches the orchestrator rolls
    back the whole meeting's results (the previous ones stay); an optional
    plugin's exception is caught like any of its hooks (recorded as a plugin
    failure, the other results are stored).
    ``roster.student_keys[i]`` is the ``student_pk`` of roster index ``i``.
    """


@hookspec
def rollcall_report_sheets(
    db: sqlite_utils.Database, meeting_id: int
) -> list[tuple[str, list[str], list[tuple[Any, ...]]]] | None:
    """Extra report sheets for a meeting, read from this plugin's tables.

    Return ``(title, header, rows)`` per sheet, only sheets with rows (an empty
    list or None when the plugin stored nothing for the meeting, or its tables
    do not exist). Sheets of all plugins are shown, in registration order.
    """


@hookspec
def rollcall_report(
    meeting: MeetingContext, report: AttendanceReport, out_dir: Path
) -> list[Path] | None:
    """Write report files for one meeting into ``out_dir``; return the paths written."""


@hookspec(firstresult=True)
def rollcall_send_notification(message: OutgoingMessage) -> bool | None:
    """Send ``message`` if this plugin owns ``message.channel``; return True when sent.

    Return None for channels the plugin does not handle. Raise on a delivery
    failure (server down, HTTP 5xx...): the outbox records the error and
    retries with backoff. ``message.target`` (addresses or a webhook URL) and
    the SMTP password are secrets for logging purposes: never log them.
    """
