"""``rollcall analyze`` and ``rollcall demo``: a local recording analysed with a progress
bar through :func:`rollcall.analysis.process.process_recording`, the same steps the
service's workers run.

``register(sub)`` adds both commands to the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text

from rollcall.analysis.process import ProcessedRecording, process_recording
from rollcall.cli.common import CliError, models_and_pm, open_db, writable_folder
from rollcall.config import Config
from rollcall.store import storage


def run_analysis(
    config: Config,
    console: Console,
    video: Path,
    course: str,
    out: Path,
    title: str = "",
    start_time: datetime | None = None,
    *,
    notify: bool = False,
    participants_file: Path | None = None,
) -> ProcessedRecording:
    """Process one video with a progress bar, print the summary and the files written."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from rollcall.reports.terminal import summary_table

    if not video.is_file():
        raise CliError(f"{video} does not exist or is not a file")
    writable_folder(out, "report folder")  # before minutes of analysis, not after
    participants = None
    if participants_file is not None:  # a bad file fails now, not after the analysis
        from rollcall.analysis.participants_csv import ParticipantsFileError, read_participants_csv

        try:
            participants = read_participants_csv(participants_file)
        except ParticipantsFileError as exc:
            raise CliError(str(exc)) from None
    db = open_db(config)
    storage.get_course(db, course)
    models, pm = models_and_pm(config, console, db, course)
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

        result = process_recording(
            db,
            pm,
            models,
            config,
            video,
            course,
            title=title,
            start_time=start_time,
            report_dir=out,
            notify=notify,
            progress=progress,
            announce=lambda text: console.print(Text(text)),
            participants=participants,
        )
    outcome = result.meeting
    if participants is not None:  # stored like the report the service fetches from Zoom
        from rollcall.bot.participants import store_participants
        from rollcall.pipeline.counter_evidence import report_start

        start = report_start(participants, outcome.context.start_time)
        store_participants(db, outcome.meeting_id, participants, start)
    console.print(summary_table(result.report))
    console.print(
        f"meeting {outcome.meeting_id}: {outcome.samples} frames sampled, {outcome.faces} faces, "
        f"{outcome.tracks} tracks, {result.report.unknown_clusters} unknown face cluster(s); "
        f"analysed in {outcome.seconds:.1f} s",
        highlight=False,
    )
    cost = outcome.tile_labels
    if cost.tiles:
        console.print(
            f"tile labels: {cost.tiles} read for {cost.tracks} doubtful track(s), "
            f"{cost.ms_per_tile:.0f} ms per tile",
            highlight=False,
        )
    labels = outcome.labels
    if labels.carried or labels.dropped:
        console.print(
            Text(
                f"unknown-face labels: {len(labels.carried)} kept on the matching cluster(s) "
                + ", ".join(f"{a}->{b}" for a, b in labels.carried)
                + (
                    f"; {len(labels.dropped)} matched no cluster and were dropped "
                    f"(cluster(s) {', '.join(map(str, labels.dropped))})"
                    if labels.dropped
                    else ""
                )
            )
        )
    for path in result.report_paths:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return result


def cmd_analyze(args, config, console) -> int:
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise CliError(
                f"--start {args.start!r} is not an ISO date-time like 2026-09-01T09:00"
            ) from None
    result = run_analysis(
        config,
        console,
        Path(args.video),
        args.course,
        Path(args.out),
        args.title or "",
        start,
        notify=args.notify,
        participants_file=Path(args.participants) if args.participants else None,
    )
    if args.notify:
        from rollcall.cli.notify import deliver_now

        if result.notify_error:
            raise CliError(f"notifications not queued: {result.notify_error}")
        return deliver_now(config, console, result.meeting_id, result.notifications)
    return 0


def cmd_demo(args, config, console) -> int:
    from rollcall.synthetic.demo import run_demo

    return run_demo(config, console, Path(args.out), run_analysis)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``analyze`` and ``demo`` to the CLI's subparsers."""
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
        "--participants",
        metavar="FILE",
        help="Zoom's participants CSV (Usage reports > Meeting participants): a student it "
        "says was not connected is not counted present on a face match alone",
    )
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
