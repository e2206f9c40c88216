"""Running one recording through the enabled plugins, start to finish.

Follow a recording here: probe -> roster -> sample frames -> detect -> embed ->
match -> track -> analyse -> identify tracks -> doubt (tile labels of doubtful tracks,
the participants report: ``counter_evidence``) -> finalise -> store (core results and
the plugins' rows, one transaction) -> report.
Frames are decoded in a thread of their own, ahead of the analysis
(``decode.prefetched``); detection and embedding go through the fast path of
``rollcall.pipeline.gallery`` (per gallery tile, only where the picture changed or a
face is not settled, ``[analysis] recheck_s`` / ``embed_max_age_s``).
A recording that cannot be decoded fails with a ``RecordingError``; the
meeting is marked failed and every previously stored result stays intact
(results are replaced in one transaction only after a complete run). That
transaction also holds the plugins' rows (``rollcall_create_tables``,
``rollcall_save_results``): a plugin's results and the attendance commit or
roll back together.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pluggy
import sqlite_utils

from rollcall.config import Config
from rollcall.enrollment.enroll import load_roster
from rollcall.pipeline import counter_evidence
from rollcall.pipeline.decode import (
    RecordingError,
    RecordingInfo,
    prefetched,
    probe,
    sample_frames,
)
from rollcall.pipeline.evidence import EvidenceKeeper
from rollcall.pipeline.gallery import TileGate
from rollcall.pipeline.plugin_manager import FaceModels, plugin_failures
from rollcall.pipeline.tile_labels import LabelReader, LabelStats, TileLabels
from rollcall.pipeline.tracking import FaceTracker
from rollcall.pipeline.unknowns import (
    CarriedLabels,
    carry_labels,
    cluster_rows,
    cluster_unknown_tracks,
    credit_labels,
)
from rollcall.store import storage
from rollcall.store.db import write_transaction
from rollcall.store.plugin_admin import save_plugin_failures
from rollcall.types import (
    Face,
    MeetingContext,
    PluginFailure,
    Roster,
    SampledFrame,
    track_decisions,
)

log = logging.getLogger(__name__)
Progress = Callable[[float, float], None]  # (seconds done, seconds total)
LINK_SIMILARITY = 0.3  # same face in consecutive samples is far above this for any ArcFace model


@dataclass(slots=True)
class MeetingOutcome:
    meeting_id: int
    context: MeetingContext
    results: dict[str, Any] = field(default_factory=dict)
    samples: int = 0
    faces: int = 0
    tracks: int = 0
    seconds: float = 0.0  # wall time of the analysis
    labels: CarriedLabels = field(default_factory=CarriedLabels)  # labels kept from before
    tile_labels: LabelStats = field(default_factory=LabelStats)  # OCR of doubtful tiles


@dataclass(slots=True)
class FrameJob:
    """What the frame analysis of one recording needs: the file, the course's roster
    (its students' templates), the meeting it is for. Nothing of the database."""

    path: Path
    roster: Roster
    meeting_id: int
    course_id: str
    title: str
    start_time: datetime | None = None
    #: the roster's students with names and emails, for the tile-label check
    people: tuple[counter_evidence.Person, ...] = ()
    #: Zoom's participants report when known (``rollcall analyze --participants``)
    participants: tuple[Any, ...] | None = None


@dataclass(slots=True)
class FrameAnalysis:
    """What the frames of one recording gave: the rows to store and the plugins' results.

    Made by :func:`analyse_frames` (here, or on a cluster worker machine, which sends
    it back to the coordinator), stored by :func:`store_analysis`.
    """

    info: RecordingInfo
    start_time: datetime | None
    context: MeetingContext
    results: dict[str, Any]  # the plugins' rollcall_finalize_meeting results
    presence_rows: list[dict[str, Any]]
    attendance_rows: list[dict[str, Any]]
    clusters: list[dict[str, Any]]  # unknown-face cluster rows (no label yet)
    evidence_rows: list[dict[str, Any]]  # minute_evidence rows: why a minute is present/review
    evidence: dict[str, bytes]  # evidence files not yet written (a cluster worker's)
    source: str  # where the recording was read from (a path or the download URL)
    size: int  # its size in bytes
    samples: int = 0
    faces: int = 0
    tracks: int = 0
    gate: dict[str, int] = field(default_factory=dict)  # the tile gate's counters
    tile_labels: LabelStats = field(default_factory=LabelStats)  # OCR of doubtful tiles
    plugin_failures: list[PluginFailure] = field(default_factory=list)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def analyze_recording(
    db: sqlite_utils.Database,
    pm: pluggy.PluginManager,
    models: FaceModels,
    config: Config,
    path: Path,
    course_id: str,
    *,
    title: str = "",
    start_time: datetime | None = None,
    source: str = "file",
    source_key: str | None = None,
    progress: Progress | None = None,
    announce: Callable[[str], None] | None = None,
    commit_guard: Callable[[sqlite_utils.Database], Any] | None = None,
    frames: Callable[[FrameJob], FrameAnalysis] | None = None,
    participants: list | None = None,
) -> MeetingOutcome:
    """Analyse ``path`` for ``course_id``, store the results and return them.

    When the recording was analysed before (same ``source_key``) its meeting is
    replaced: ``announce`` is told so, the title and start time given then are kept
    unless given anew, and unknown-face labels move to the matching new clusters.

    ``commit_guard(db)`` is called inside the transaction that stores the results,
    before anything is written; when it raises, nothing is stored (the service passes
    a check that its worker still holds the recording's job).

    ``frames(job)`` turns the recording into a :class:`FrameAnalysis`; by default
    :func:`analyse_frames` here, a cluster coordinator passes one that has a worker
    machine do it (``rollcall.cluster``). The meeting row, the roster and the storing
    are the same either way.

    ``participants`` (Zoom's participants report, when known) can only doubt
    matches (``rollcall.pipeline.counter_evidence``).
    """
    started = time.monotonic()
    storage.get_course(db, course_id)  # an unknown course fails here, before anything
    if source_key is None:
        source_key = f"file:{course_id}:{file_sha256(path)}"
    previous = storage.find_meeting(db, source_key)
    if previous is not None:
        # Analysing the same recording again: what was given the first time stays
        # unless it is given anew (a missing title must not become the file name,
        # a missing start must not become unknown or the file's date).
        title = title or previous["title"] or ""
        if start_time is None and previous["start_time"]:
            start_time = datetime.fromisoformat(previous["start_time"])
        text = (
            f"meeting {previous['id']} ({title or path.stem}) was analysed from this recording "
            f"before ({previous['status'] or 'unknown state'}"
            + (f", {previous['analyzed_at']}" if previous["analyzed_at"] else "")
            + "): its results are being replaced; corrections and unknown-face labels are kept"
        )
        log.info("meeting replaced", extra={"meeting_id": previous["id"], "course_id": course_id})
        if announce is not None:
            announce(text)
    meeting_id = storage.upsert_meeting(
        db,
        {
            "course_id": course_id,
            "source_key": source_key,
            "title": title or path.stem,
            "source": source,
            "start_time": start_time.isoformat() if start_time else None,
            "status": "analyzing",
            "error": "",
        },
    )
    if frames is None:

        def frames(job: FrameJob) -> FrameAnalysis:
            return analyse_frames(pm, models, config, job, progress=progress)

    try:
        roster = course_roster(db, pm, models, course_id, exclude_meeting=meeting_id)
        job = FrameJob(
            path=path,
            roster=roster,
            meeting_id=meeting_id,
            course_id=course_id,
            title=title or path.stem,
            start_time=start_time,
            people=tuple(counter_evidence.roster_people(db, roster)),
            participants=tuple(participants) if participants is not None else None,
        )
        analysis = frames(job)
        outcome = store_analysis(db, pm, models, config, job, analysis, commit_guard)
    except RecordingError as exc:
        # The meeting keeps the problem in one line; the file's path is the recording's.
        storage.set_meeting_status(db, meeting_id, "failed", exc.problem)
        storage.save_recording(
            db, {"meeting_id": meeting_id, "path": str(path), "status": "failed", "error": str(exc)}
        )
        raise
    outcome.seconds = time.monotonic() - started
    return outcome


def course_roster(
    db: sqlite_utils.Database,
    pm: pluggy.PluginManager,
    models: FaceModels,
    course_id: str,
    *,
    exclude_meeting: int | None = None,
) -> Roster:
    """The course's roster with its cohort: the unknown-face centroids of the course's
    other meetings (non-students the recognizer's margins compare against).

    Read from the database here, so a cluster worker gets it inside the task's roster.
    """
    roster = load_roster(db, pm, course_id, models.model_key)
    cohort = storage.course_unknown_centroids(
        db, course_id, models.model_key, exclude_meeting=exclude_meeting
    )
    if len(cohort) and roster.templates.ndim == 2 and cohort.shape[1] == roster.templates.shape[1]:
        roster = dataclasses.replace(roster, cohort=cohort)
    return roster


def analyse_frames(
    pm: pluggy.PluginManager,
    models: FaceModels,
    config: Config,
    job: FrameJob,
    *,
    progress: Progress | None = None,
    evidence_in_memory: bool = False,
) -> FrameAnalysis:
    """The frames of ``job.path`` through the plugins: no database, no data directory.

    Everything the store needs comes back in a :class:`FrameAnalysis`; the local path
    stores it at once, a cluster worker sends it to the coordinator. With
    ``evidence_in_memory`` the evidence files are returned instead of written.
    """
    path, roster, meeting_id = job.path, job.roster, job.meeting_id
    info = probe(path)
    start_time = job.start_time or info.start_time
    requested = [i for i in pm.hook.rollcall_sampling_interval(config=config, info=info) if i]
    interval = min([config.analysis.interval_s, *requested])
    context = MeetingContext(
        meeting_id=meeting_id,
        course_id=job.course_id,
        title=job.title,
        duration_s=info.duration_s,
        interval_s=interval,
        start_time=start_time,
        settings=config.model_dump(mode="json"),
    )
    rec = config.recognition
    tracker = FaceTracker(
        iou_threshold=rec.track_iou, link_similarity=LINK_SIMILARITY, max_gap_s=rec.max_gap_s
    )
    keeper = EvidenceKeeper(
        None if evidence_in_memory else config.home / "evidence" / str(meeting_id),
        frames=config.privacy.store_frames,
        face_crops=config.privacy.store_face_crops,
    )
    a = config.analysis
    gate = TileGate(recheck_s=a.recheck_s, embed_max_age_s=a.embed_max_age_s)
    tile_labels = TileLabels(enabled=rec.read_tile_labels)
    samples = faces_seen = 0
    with prefetched(sample_frames(path, interval)) as frames:
        for frame in frames:
            samples += 1
            faces = gate.faces(
                frame.t,
                frame.image,
                detect=lambda image, f=frame: _detect(pm, f, image),
                embed=lambda found, f=frame: _embed(pm, f, found),
            )
            if faces:
                _embed_filled(pm, frame, faces, gate.measured, roster)
                embeddings = np.stack([face.embedding for face in faces])
                matches = pm.hook.rollcall_match_faces(embeddings=embeddings, roster=roster)
                tracked = tracker.update(
                    frame.t, faces, embeddings, matches, gate.measured, gate.keys
                )
                gate.settle(
                    [tracker.settled(tf.track_id) for tf in tracked],
                    [tracker.measurements(tf.track_id) for tf in tracked],
                )
                faces_seen += len(faces)
            else:
                tracked = tracker.update(frame.t, [], None, [])
            pm.hook.rollcall_analyze_frame(meeting=context, frame=frame, faces=tracked)
            keeper.see(frame, tracked)
            tile_labels.see(frame, tracked, gate.frame_grid)
            if progress:
                progress(min(frame.t + interval, info.duration_s), info.duration_s)
    tracks = tracker.finish()
    identities = pm.hook.rollcall_identify_tracks(tracks=tracks, roster=roster) or {}
    doubt = counter_evidence.MeetingDoubts(job.people, context, job.participants, config)
    identities = doubt.tracks(identities, tracks, tile_labels, reader := LabelReader())
    results: dict[str, Any] = {}
    for result in pm.hook.rollcall_finalize_meeting(
        meeting=context, tracks=tracks, identities=identities, roster=roster
    ):
        results.update(result or {})
    if "attendance" in results:
        results["attendance"] = doubt.minutes(results["attendance"])
    clusters = cluster_unknown_tracks(
        tracks, identities, threshold=models.cluster_threshold, min_samples=rec.min_track_samples
    )
    keeper.save_track_crops(track_decisions(identities))
    keeper.save_cluster_crops(clusters)
    attendance = results.get("attendance", [])
    presence_rows, attendance_rows, evidence_rows = [], [], []
    for row in attendance:
        pk = roster.student_keys[row.student_index]
        review = getattr(row, "review", ()) or (0,) * len(row.minutes)
        for minute, (seen, present) in enumerate(zip(row.seconds_seen, row.minutes, strict=True)):
            presence_rows.append(
                {
                    "meeting_id": meeting_id,
                    "student_pk": pk,
                    "minute": minute,
                    "seconds_seen": seen,
                    "present": present,
                    "review": review[minute],
                }
            )
        attendance_rows.append(
            {
                "meeting_id": meeting_id,
                "student_pk": pk,
                "present_minutes": row.present_minutes,
                "attendance_pct": row.attendance_pct,
                "status": row.status,
                "review_minutes": sum(review),
            }
        )
        for ev in getattr(row, "evidence", ()):
            evidence_rows.append(
                {"meeting_id": meeting_id, "student_pk": pk, **dataclasses.asdict(ev)}
            )
    new_clusters = cluster_rows(
        clusters,
        meeting_id=meeting_id,
        model=models.model_key,
        duration_s=info.duration_s,
        interval_s=interval,
        max_gap_s=rec.max_gap_s,
    )
    return FrameAnalysis(
        info=info,
        start_time=start_time,
        context=context,
        results=results,
        presence_rows=presence_rows,
        attendance_rows=attendance_rows,
        clusters=new_clusters,
        evidence_rows=evidence_rows,
        evidence=keeper.files,
        source=str(path),
        size=path.stat().st_size,
        samples=samples,
        faces=faces_seen,
        tracks=len(tracks),
        gate=gate.stats.as_dict(),
        tile_labels=reader.stats,
        plugin_failures=list(plugin_failures(pm)),
    )


def store_analysis(
    db: sqlite_utils.Database,
    pm: pluggy.PluginManager,
    models: FaceModels,
    config: Config,
    job: FrameJob,
    analysis: FrameAnalysis,
    guard: Callable[[sqlite_utils.Database], Any] | None = None,
) -> MeetingOutcome:
    """Store what the frames gave, in one transaction that ``guard(db)`` opens (when it
    raises, nothing is written); unknown-face labels move to the new clusters."""
    meeting_id, course_id, roster = job.meeting_id, job.course_id, job.roster
    info, start_time, context = analysis.info, analysis.start_time, analysis.context
    results, new_clusters = analysis.results, analysis.clusters
    presence_rows, attendance_rows = analysis.presence_rows, analysis.attendance_rows
    evidence_rows = analysis.evidence_rows
    labels = carry_labels(
        storage.unknown_clusters(db, meeting_id), new_clusters, threshold=models.cluster_threshold
    )
    warnings = []
    if labels.dropped:
        warnings.append(
            "unknown-face label(s) of cluster(s) "
            + ", ".join(map(str, labels.dropped))
            + " from the previous analysis matched no cluster of this one and were dropped"
        )
    if not any(len(e) for e in roster.photo_embeddings):
        warnings.append("no student of this course has an enrolled photo: everyone is absent")
    # One transaction: the core results and every plugin's rows commit or roll back together.
    with write_transaction(db):
        if guard is not None:
            guard(db)  # raises: nothing below is written
        storage.replace_results(
            db,
            meeting_id,
            presence_rows,
            attendance_rows,
            new_clusters,
            {
                "status": "done",
                "error": "",
                "duration_s": info.duration_s,
                "model": models.model_key,
                "start_time": start_time.isoformat() if start_time else None,
                "warnings": "\n".join(warnings),
                "analyzed_at": storage.now_iso(),
            },
            evidence_rows,
        )
        stored = storage.get_meeting(db, meeting_id)
        for student_pk in sorted({c["label_student_pk"] for c in new_clusters} - {None}):
            credit_labels(db, stored, student_pk, attendance_settings=config.attendance)
        pm.hook.rollcall_create_tables(db=db)
        pm.hook.rollcall_save_results(db=db, meeting=context, results=results, roster=roster)
    failures = list(plugin_failures(pm))
    failures += [f for f in analysis.plugin_failures if f not in failures]
    save_plugin_failures(db, meeting_id, failures)
    if analysis.evidence:  # sent by a cluster worker: written here, beside the database
        folder = config.home / "evidence" / str(meeting_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in analysis.evidence.items():
            (folder / Path(name).name).write_bytes(data)
    storage.save_recording(
        db,
        {
            "meeting_id": meeting_id,
            "path": analysis.source,
            "size": analysis.size,
            "duration_s": info.duration_s,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "status": "done",
            "error": "",
        },
    )
    log.info(
        "meeting analysed",
        extra={
            "meeting_id": meeting_id,
            "course_id": course_id,
            "samples": analysis.samples,
            "faces": analysis.faces,
            "tracks": analysis.tracks,
            "unknown_clusters": len(new_clusters),
            "labels_carried": len(labels.carried),
            "labels_dropped": len(labels.dropped),
            **analysis.gate,
            **analysis.tile_labels.as_dict(),
        },
    )
    return MeetingOutcome(
        meeting_id=meeting_id,
        context=context,
        results=results,
        samples=analysis.samples,
        faces=analysis.faces,
        tracks=analysis.tracks,
        labels=labels,
        tile_labels=analysis.tile_labels,
    )


def _detect(pm: pluggy.PluginManager, frame: SampledFrame, image: np.ndarray) -> list:
    """Faces in ``image`` (the frame or one of its tiles), through the detector hook."""
    if image is not frame.image:
        frame = SampledFrame(index=frame.index, t=frame.t, image=np.ascontiguousarray(image))
    return pm.hook.rollcall_detect_faces(frame=frame) or []


def _embed(pm: pluggy.PluginManager, frame: SampledFrame, faces: list) -> np.ndarray:
    """Embeddings of some faces of ``frame``, in one recognizer call."""
    return np.asarray(pm.hook.rollcall_embed_faces(frame=frame, faces=faces), np.float32)


def _embed_filled(
    pm: pluggy.PluginManager,
    frame: SampledFrame,
    faces: list[Face],
    measured: list[bool],
    roster: Roster,
) -> None:
    """Set ``filled_embedding`` on the ``faces`` measured in this frame that look masked
    (one more recognizer call, only when some do; the rest keep None)."""
    if roster.masked_templates is None or roster.filled_templates is None:
        return
    faces = [f for f, m in zip(faces, measured, strict=True) if m]
    if not faces:
        return
    found = pm.hook.rollcall_embed_filled_faces(frame=frame, faces=faces, roster=roster)
    for face, filled in zip(faces, found or [], strict=False):
        face.filled_embedding = filled
