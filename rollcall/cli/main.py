"""The ``rollcall`` command line.

Exit codes: 0 success, 1 a failure the message explains (missing model, bad
recording, unknown course...), 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group
from rollcall.config import Config, ConfigError, load_config
from rollcall.logs import setup_logging
from rollcall.store import storage

log = logging.getLogger("rollcall")
EXIT_FAILURE, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A failure to report in one line and exit 1."""


# ---------------------------------------------------------------- helpers


def _open(config: Config):
    return storage.open_db(config.home)


def _models_and_pm(config: Config, console: Console, db=None, course: str | None = None):
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

    models = resolve_face_models(config, progress=True)
    return models, make_plugin_manager(config, models, db=db, course_id=course)


def _print_checks(console: Console, result) -> None:
    for check in result.checks:
        if check.accepted:
            console.print(
                f"  [green]ok[/]      {escape(result.student_id)}/{escape(check.filename)}",
                highlight=False,
            )
        else:
            console.print(
                f"  [red]refused[/] {escape(result.student_id)}/{escape(check.filename)}: "
                f"{escape(check.problem)}",
                highlight=False,
            )
        for warning in check.warnings:
            console.print(
                f"  [yellow]warning[/] {escape(result.student_id)}/{escape(check.filename)}: "
                f"{escape(warning)}",
                highlight=False,
            )


def _enrollment_summary(console: Console, config: Config, results) -> int:
    accepted = sum(r.accepted for r in results)
    refused = sum(len(r.checks) - r.accepted for r in results)
    few = [r.student_id for r in results if r.accepted < config.enrollment.recommended_photos]
    console.print(f"{accepted} photo(s) enrolled, {refused} refused.")
    if few:
        console.print(
            f"[yellow]note[/]: fewer than {config.enrollment.recommended_photos} photos for "
            f"{', '.join(few)}; more poses make recognition more reliable."
        )
    unusable = [r for r in results if r.problem]
    for r in unusable:
        console.print(
            f"[red]not enrolled[/]: {escape(r.student_id)}: {escape(r.problem)}", highlight=False
        )
    return EXIT_FAILURE if unusable else 0


# ---------------------------------------------------------------- commands


def cmd_course_add(args, config, console) -> int:
    db = _open(config)
    created = storage.add_course(db, args.course, args.title or args.course)
    console.print(f"course {args.course} {'created' if created else 'updated'}", highlight=False)
    return 0


def cmd_course_list(args, config, console) -> int:
    table = Table("course", "title", "students")
    for c in storage.list_courses(_open(config)):
        table.add_row(c["course_id"], c["title"], str(c["students"]))
    console.print(table)
    return 0


def cmd_student_add(args, config, console) -> int:
    from rollcall.enrollment.enroll import enroll_photos

    db = _open(config)
    storage.get_course(db, args.course)
    models, pm = _models_and_pm(config, console)
    result = enroll_photos(
        db,
        pm,
        models.model_key,
        args.course,
        args.student,
        [Path(p) for p in args.photos],
        config.enrollment,
        name=args.name or "",
        email=args.email or "",
    )
    _print_checks(console, result)
    return _enrollment_summary(console, config, [result])


def cmd_student_import(args, config, console) -> int:
    from rollcall.enrollment.enroll import enroll_photos, photo_folders, read_roster_csv

    root = Path(args.folder)
    if not root.is_dir():
        raise CliError(f"{root} is not a folder (expected {root}/<student_id>/*.jpg)")
    db = _open(config)
    storage.get_course(db, args.course)
    roster_csv = root / "roster.csv"
    try:
        roster = read_roster_csv(roster_csv) if roster_csv.exists() else {}
    except ValueError as exc:
        raise CliError(str(exc)) from None
    folders = photo_folders(root)
    if not folders and not roster:
        raise CliError(f"{root} holds no <student_id>/ folders with photos and no roster.csv")
    models, pm = _models_and_pm(config, console)
    results = []
    for student_id in sorted(set(folders) | set(roster)):
        info = roster.get(student_id, {})
        result = enroll_photos(
            db,
            pm,
            models.model_key,
            args.course,
            student_id,
            folders.get(student_id, []),
            config.enrollment,
            name=info.get("name", ""),
            email=info.get("email", ""),
            folder=root,
        )
        _print_checks(console, result)
        results.append(result)
    return _enrollment_summary(console, config, results)


def cmd_student_remove(args, config, console) -> int:
    storage.remove_student(_open(config), args.course, args.student)
    console.print(
        f"student {args.student} removed from {args.course} with their photos, embeddings and results",
        highlight=False,
    )
    return 0


def cmd_student_list(args, config, console) -> int:
    table = Table("student_id", "name", "email", "photos")
    for s in storage.list_students(_open(config), args.course):
        table.add_row(s["student_id"], s["name"], s["email"] or "", str(s["photos"]))
    console.print(table)
    return 0


def cmd_photo_remove(args, config, console) -> int:
    storage.remove_photo(_open(config), args.course, args.student, args.filename)
    console.print(f"photo {args.filename} of {args.student} removed", highlight=False)
    return 0


def run_analysis(
    config,
    console,
    video: Path,
    course: str,
    out: Path,
    title: str = "",
    start_time: datetime | None = None,
):
    """Analyse one video with a progress bar, print the summary, write the reports."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rollcall.pipeline.orchestrator import analyze_recording, write_meeting_reports
    from rollcall.reports.terminal import summary_table

    if not video.is_file():
        raise CliError(f"{video} does not exist or is not a file")
    db = _open(config)
    storage.get_course(db, course)
    storage.purge_older_than(db, config.privacy.retention_days, config.home)
    models, pm = _models_and_pm(config, console, db, course)
    columns = (
        TextColumn("analysing"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("analyse", total=1.0, clock="")

        def progress(done: float, total: float) -> None:
            bar.update(
                task,
                total=total,
                completed=done,
                clock=f"{int(done) // 60:02d}:{int(done) % 60:02d} of "
                f"{int(total) // 60:02d}:{int(total) % 60:02d}",
            )

        outcome = analyze_recording(
            db,
            pm,
            models,
            config,
            video,
            course,
            title=title,
            start_time=start_time,
            progress=progress,
        )
    paths = write_meeting_reports(pm, outcome, out)
    console.print(summary_table(outcome.report))
    console.print(
        f"meeting {outcome.meeting_id}: {outcome.samples} frames sampled, {outcome.faces} faces, "
        f"{outcome.tracks} tracks, {outcome.report.unknown_clusters} unknown face cluster(s); "
        f"analysed in {outcome.seconds:.1f} s",
        highlight=False,
    )
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    return outcome


def cmd_analyze(args, config, console) -> int:
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise CliError(
                f"--start {args.start!r} is not an ISO date-time like 2026-09-01T09:00"
            ) from None
    outcome = run_analysis(
        config, console, Path(args.video), args.course, Path(args.out), args.title or "", start
    )
    if args.notify:
        from rollcall.cli.notify import notify_now

        return notify_now(config, console, outcome.meeting_id)
    return 0


def cmd_demo(args, config, console) -> int:
    from rollcall.synthetic.demo import run_demo

    return run_demo(config, console, Path(args.out), run_analysis)


def cmd_meeting_list(args, config, console) -> int:
    table = Table("id", "course", "title", "start", "minutes", "status", "error")
    for m in storage.list_meetings(_open(config), args.course):
        table.add_row(
            str(m["id"]),
            m["course_id"],
            m["title"] or "",
            m["start_time"] or "",
            f"{(m['duration_s'] or 0) / 60:.1f}",
            m["status"] or "",
            m["error"] or "",
        )
    console.print(table)
    return 0


def cmd_unknown_list(args, config, console) -> int:
    from rollcall.presence import minute_lengths

    db = _open(config)
    table = Table(
        "cluster", "tracks", "seconds seen", "first seen", "last seen", "minutes seen", "label"
    )
    for c in storage.unknown_clusters(db, args.meeting):
        label = ""
        if c["label_student_pk"]:
            label = db["students"].get(c["label_student_pk"])["student_id"]
        minutes = sum(1 for s in c["seconds_by_minute"] if s > 0)
        table.add_row(
            str(c["cluster_no"]),
            str(c["n_tracks"]),
            f"{sum(c['seconds_by_minute']):.0f}",
            f"{c['first_s']:.0f} s",
            f"{c['last_s']:.0f} s",
            f"{minutes}/{len(minute_lengths(storage.get_meeting(db, args.meeting)['duration_s']))}",
            label,
        )
    console.print(table)
    return 0


def cmd_unknown_label(args, config, console) -> int:
    from rollcall.pipeline.unknowns import label_cluster

    row = label_cluster(
        _open(config),
        args.meeting,
        args.cluster,
        args.student,
        attendance_settings=config.attendance,
        enroll=args.enroll,
    )
    console.print(
        f"cluster {args.cluster} of meeting {args.meeting} labelled {args.student}: now "
        f"{row['present_minutes']} minute(s) present ({row['attendance_pct']}%, {row['status']})"
        + ("; its embedding was added to the student's template" if args.enroll else ""),
        highlight=False,
    )
    return 0


def cmd_retention_run(args, config, console) -> int:
    days = config.privacy.retention_days
    deleted = storage.purge_older_than(_open(config), days, config.home)
    if days:
        console.print(f"deleted {deleted} meeting(s) analysed more than {days} days ago")
    else:
        console.print("[privacy] retention_days = 0: results are kept forever, nothing deleted")
    return 0


def cmd_serve(args, config, console) -> int:
    import asyncio

    from rollcall.service.serve import serve

    host = args.host or config.server.host
    port = args.port or config.server.port
    asyncio.run(serve(config, host, port))
    return 0


def _job_table(rows) -> Table:
    table = Table(
        "id", "state", "course", "topic", "meeting uuid", "attempts", "next attempt", "error"
    )
    for j in rows:
        table.add_row(
            str(j.id),
            j.state,
            j.course_id or "",
            j.topic or "",
            j.meeting_uuid,
            f"{j.attempts}/{j.max_attempts}",
            j.next_attempt_at or "",
            (j.error or "")[:80],
        )
    return table


def cmd_jobs_list(args, config, console) -> int:
    from rollcall.store import jobs

    console.print(_job_table(jobs.list_jobs(_open(config), args.state, args.limit)))
    return 0


def cmd_jobs_show(args, config, console) -> int:
    from rollcall.store import jobs

    db = _open(config)
    job = jobs.get(db, int(args.job) if args.job.isdigit() else args.job)
    console.print(_job_table([job]))
    if job.error:
        console.print(Text(f"error: {job.error}"))
    for event in jobs.events(db, job.id):
        console.print(Text(f"{event.at}  {event.state:<12} {event.message or ''}"))
    return 0


def cmd_jobs_retry(args, config, console) -> int:
    from rollcall.store import jobs

    job = jobs.retry(_open(config), args.job)
    console.print(f"job {job.id} queued again")
    return 0


def cmd_jobs_cancel(args, config, console) -> int:
    from rollcall.store import jobs

    job = jobs.cancel(_open(config), int(args.job) if args.job.isdigit() else args.job, args.reason)
    console.print(f"job {job.id} cancelled")
    return 0


def cmd_zoom_check(args, config, console) -> int:
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.service.serve import disabled_parts, zoom_credentials_missing

    for part, reason in disabled_parts(config).items():
        console.print(Text(f"disabled: {part}: {reason}"))
    if zoom_credentials_missing(config):
        return 1
    report = ZoomClient.from_config(config.zoom).check_scopes()
    for check in report.checks:
        mark = "ok" if check.ok else ("MISSING" if check.required else "optional")
        console.print(
            Text(f"{mark:<8} {check.capability}: needs one of {', '.join(check.accepted)}")
        )
    if not report.ok:
        console.print(
            Text(
                "add the missing scopes to the Server-to-Server OAuth app in the Zoom "
                "App Marketplace, then run this again"
            )
        )
        return 1
    console.print("Zoom credentials and scopes are fine")
    return 0


def cmd_models_check(args, config, console) -> int:
    from rollcall.models import ModelError
    from rollcall.pipeline.plugin_manager import resolve_face_models

    try:
        models = resolve_face_models(config, allow_download=False)
    except ModelError as exc:
        if not config.models.allow_download:
            raise
        raise ModelError(f"{exc} (`models check` never downloads)") from None
    console.print(
        f"pack {models.pack_name}: detector {models.detector_path}, "
        f"recognizer {models.recognizer_path}, match threshold {models.match_threshold}",
        highlight=False,
    )
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollcall", description="Attendance for online classes from their recordings."
    )
    parser.add_argument("--config", help="config.toml to use (default: $ROLLCALL_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str):
        return command_group(sub, name, help_text)

    courses = group("course", "manage courses")
    p = command(courses, "add", cmd_course_add, "create a course (or rename it)")
    p.add_argument("course")
    p.add_argument("--title", default="")
    command(courses, "list", cmd_course_list, "list courses")

    students = group("student", "manage enrolled students")
    p = command(
        students,
        "import",
        cmd_student_import,
        "enroll from FOLDER/<student_id>/*.jpg and optional FOLDER/roster.csv",
    )
    p.add_argument("course")
    p.add_argument("folder")
    p = command(students, "add", cmd_student_add, "enroll one student from photos")
    p.add_argument("course")
    p.add_argument("student")
    p.add_argument("photos", nargs="*")
    p.add_argument("--name")
    p.add_argument("--email")
    p = command(
        students,
        "remove",
        cmd_student_remove,
        "remove a student with all their photos, embeddings and results",
    )
    p.add_argument("course")
    p.add_argument("student")
    p = command(students, "list", cmd_student_list, "list the students of a course")
    p.add_argument("course")

    photos = group("photo", "manage enrollment photos")
    p = command(photos, "remove", cmd_photo_remove, "remove one photo and its embeddings")
    p.add_argument("course")
    p.add_argument("student")
    p.add_argument("filename")

    p = sub.add_parser(
        "analyze",
        help="analyse a local recording",
        description="analyse a local recording and write attendance reports",
    )
    p.set_defaults(func=cmd_analyze)
    p.add_argument("video")
    p.add_argument("--course", required=True)
    p.add_argument("--out", default="report", help="report folder (default: ./report)")
    p.add_argument("--title", help="meeting title (default: the file name)")
    p.add_argument("--start", help="clock time of the recording's start, ISO 8601")
    p.add_argument(
        "--notify",
        action="store_true",
        help="send the course's instructors the summary now ([notify.courses] of the course)",
    )

    p = sub.add_parser("demo", help="build a demo meeting from bundled images and analyse it")
    p.set_defaults(func=cmd_demo)
    p.add_argument(
        "--out", default="rollcall-demo", help="output folder (default: ./rollcall-demo)"
    )

    meetings = group("meeting", "analysed meetings")
    p = command(meetings, "list", cmd_meeting_list, "list meetings")
    p.add_argument("--course")

    unknown = group("unknown", "faces that matched no student")
    p = command(unknown, "list", cmd_unknown_list, "list a meeting's unknown-face clusters")
    p.add_argument("meeting", type=int)
    p = command(unknown, "label", cmd_unknown_label, "attribute a cluster to a student")
    p.add_argument("meeting", type=int)
    p.add_argument("cluster", type=int)
    p.add_argument("student")
    p.add_argument(
        "--enroll",
        action="store_true",
        help="also add the cluster's embedding to the student's template",
    )

    from rollcall.cli.reports import register as register_report_commands

    register_report_commands(sub)

    p = sub.add_parser("serve", help="run the Zoom service (webhook, polling, workers)")
    p.set_defaults(func=cmd_serve)
    p.add_argument("--host", help="listen address (default: [server] host)")
    p.add_argument("--port", type=int, help="listen port (default: [server] port)")

    job_cmds = group("jobs", "the service's recording jobs")
    p = command(job_cmds, "list", cmd_jobs_list, "list jobs, newest first")
    p.add_argument("--state")
    p.add_argument("--limit", type=int, default=50)
    p = command(job_cmds, "show", cmd_jobs_show, "one job with its history and error")
    p.add_argument("job")
    p = command(job_cmds, "retry", cmd_jobs_retry, "queue a failed or cancelled job again")
    p.add_argument("job", type=int)
    p = command(job_cmds, "cancel", cmd_jobs_cancel, "cancel a job")
    p.add_argument("job")
    p.add_argument("--reason", default="cancelled by an admin")

    zoom = group("zoom", "Zoom account")
    command(zoom, "check", cmd_zoom_check, "verify Zoom credentials and scopes")

    from rollcall.cli.plugins import register as register_plugin_commands

    register_plugin_commands(sub)

    from rollcall.cli.notify import register as register_notify_commands

    register_notify_commands(sub)

    retention = group("retention", "data retention ([privacy] retention_days)")
    command(retention, "run", cmd_retention_run, "delete meetings older than the retention period")

    models = group("models", "face models")
    command(models, "check", cmd_models_check, "resolve the configured model pack")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Photos may follow --name/--email ("student add C S --name N a.jpg b.jpg"), which
    # argparse does not accept for a "*" positional; the leftovers are those photos.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "func", None) is cmd_student_add and not any(
            e.startswith("-") for e in extra
        ):
            args.photos = [*args.photos, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        err.print(Text.assemble(("configuration error", "red"), f": {exc}"))
        return EXIT_USAGE
    setup_logging("DEBUG" if args.verbose else config.logging.level, config.logging.format)
    from rollcall.bot.oauth import OAuthError
    from rollcall.bot.zoom_client import ZoomApiError
    from rollcall.models import ModelError
    from rollcall.pipeline.decode import RecordingError
    from rollcall.store.jobs import JobError
    from rollcall.store.plugin_admin import PluginAdminError

    try:
        return args.func(args, config, console)
    except (
        CliError,
        storage.NotFound,
        storage.StorageError,
        RecordingError,
        ModelError,
        JobError,
        OAuthError,
        ZoomApiError,
        PluginAdminError,
    ) as exc:
        err.print(Text.assemble(("error", "red"), f": {exc}"))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
