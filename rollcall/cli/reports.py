"""``rollcall report ...`` and ``rollcall attendance ...``: reports and manual corrections.

``register(sub)`` adds the command groups to the CLI's argparse subparsers;
each command has the CLI's ``(args, config, console) -> exit code`` signature.
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from rollcall.cli.args import command, command_group, record_id
from rollcall.cli.common import EXIT_FAILURE, CliError
from rollcall.config import Config
from rollcall.store import storage

FORMATS_HELP = "comma-separated formats to write with --out: csv,xlsx,png,html (default: all four)"


def _cli_error(message: str) -> Exception:
    return CliError(message)


def _formats(args: argparse.Namespace) -> tuple[str, ...]:
    from rollcall.reports.common import FORMATS, parse_formats

    if args.format and not args.out:
        raise _cli_error("--format needs --out DIR (the folder to write the files into)")
    try:
        return parse_formats(args.format) if args.format else FORMATS
    except ValueError as exc:
        raise _cli_error(str(exc)) from None


def cmd_report_meeting(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.reports.common import incomplete_notice
    from rollcall.reports.meeting import write_reports
    from rollcall.reports.results import meeting_report
    from rollcall.reports.terminal import summary_table

    formats = _formats(args)
    report = meeting_report(storage.open_db(config.home), args.meeting, config.attendance)
    console.print(summary_table(report))
    if args.out:
        for path in write_reports(report, Path(args.out), formats).values():
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if not report.complete:
        Console(stderr=True, highlight=False).print(
            Text.assemble(
                ("error", "red"), f": meeting {args.meeting}: {incomplete_notice(report)}"
            )
        )
        return EXIT_FAILURE
    return 0


def cmd_report_course(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.config import threshold_for
    from rollcall.reports.course import course_report, parse_day
    from rollcall.reports.course_writers import course_table, write_course_reports

    formats = _formats(args)
    try:
        date_from = parse_day(args.date_from, "--from")
        date_to = parse_day(args.date_to, "--to")
    except ValueError as exc:
        raise _cli_error(str(exc)) from None
    if date_from and date_to and date_from > date_to:
        raise _cli_error(f"--from {date_from} is after --to {date_to}")
    report = course_report(
        storage.open_db(config.home),
        args.course,
        date_from=date_from,
        date_to=date_to,
        threshold_pct=threshold_for(config, args.course),
        rules=config.attendance,
    )
    console.print(course_table(report))
    unfinished = [
        m["id"]
        for m in storage.list_meetings(storage.open_db(config.home), args.course)
        if m["status"] != "done"
    ]
    if unfinished:
        console.print(
            Text(
                f"left out: meeting(s) {', '.join(map(str, unfinished))} of {args.course}, "
                "whose analysis did not finish (rollcall meeting list)",
                style="yellow",
            )
        )
    if not report.meetings:
        console.print(Text(f"no analysed meetings of {args.course} in {report.period}"))
    if args.out:
        for path in write_course_reports(report, Path(args.out), formats).values():
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (e.g. a container without /etc/passwd entry)
        return "unknown"


def cmd_attendance_set(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.store.corrections import CorrectionError, add_correction

    try:
        correction = add_correction(
            storage.open_db(config.home),
            args.meeting,
            args.student,
            present=args.present,
            reason=args.reason,
            made_by=args.by or _default_user(),
            minutes=args.minutes,
        )
    except CorrectionError as exc:
        raise _cli_error(str(exc)) from None
    span = (
        f"minutes {correction.minute_from}-{correction.minute_to}"
        if args.minutes
        else "the whole meeting"
    )
    console.print(
        Text(
            f"correction {correction.id}: {correction.student_id} "
            f"{'present' if correction.present else 'absent'} for {span} of meeting "
            f"{correction.meeting_id} (by {correction.made_by})"
        )
    )
    return 0


def cmd_attendance_list(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.store.corrections import list_corrections, minute_labels_of

    db = storage.open_db(config.home)
    rows = list_corrections(db, args.meeting)
    if not rows:
        console.print(f"meeting {args.meeting} has no corrections")
        return 0
    labels = minute_labels_of(storage.get_meeting(db, args.meeting))

    def label(i: int) -> str:
        return labels[i] if i < len(labels) else "?"

    for c in rows:
        value = "present" if c.present else "absent"
        console.print(
            Text.assemble(
                (f"#{c.id} ", "bold"),
                f"{c.student_id}: {value} in minutes {c.minute_from}-{c.minute_to} "
                f"({label(c.minute_from)}-{label(c.minute_to)}), by {c.made_by} at {c.made_at}",
            )
        )
        console.print(Text(f"    why: {c.reason}"))
    return 0


def cmd_attendance_remove(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.store.corrections import remove_correction

    c = remove_correction(storage.open_db(config.home), args.correction)
    console.print(
        Text(f"removed correction {c.id} ({c.student_id}, meeting {c.meeting_id}): {c.reason}")
    )
    return 0


def cmd_attendance_review(args: argparse.Namespace, config: Config, console: Console) -> int:
    """What is left to review: the meetings (of a course, or all), or one meeting's runs
    of needs-review minutes with why and the command that resolves each."""
    from rollcall.reports.common import minute_labels, review_runs
    from rollcall.reports.results import meeting_report, meetings_to_review

    db = storage.open_db(config.home)
    if args.meeting is None:
        if args.course is not None:
            storage.get_course(db, args.course)  # NotFound: a clear error for a typo
        counts = meetings_to_review(db, args.course, config.attendance)
        if not counts:
            console.print("nothing to review")
            return 0
        for meeting_id, count in counts.items():
            m = storage.get_meeting(db, meeting_id)
            console.print(
                Text(
                    f"meeting {meeting_id} ({m['course_id']}, {m['title'] or 'untitled'}, "
                    f"{m['start_time'] or 'start unknown'}): {count.minutes} minute"
                    f"{'s' if count.minutes != 1 else ''} of {count.students} student"
                    f"{'s' if count.students != 1 else ''}"
                )
            )
        console.print("rollcall attendance review MEETING lists them with why")
        return 0
    report = meeting_report(db, args.meeting, config.attendance)
    runs = review_runs(report)
    if not runs:
        console.print(f"meeting {args.meeting}: nothing to review")
        return 0
    labels = minute_labels(report)
    for r in runs:
        span = (
            f"{r.minute_from}" if r.minute_from == r.minute_to else f"{r.minute_from}-{r.minute_to}"
        )
        shown = labels[r.minute_from] + (
            "" if r.minute_from == r.minute_to else f"-{labels[r.minute_to]}"
        )
        console.print(Text.assemble((f"{r.student_id}", "bold"), f" {r.name}: minutes {shown}"))
        console.print(Text(f"    why: {r.why or 'no stored evidence'}"))
        console.print(
            Text(
                f"    resolve: rollcall attendance set {args.meeting} {r.student_id} "
                f'--minutes {span} --present|--absent --reason "..."'
            ),
            soft_wrap=True,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` and ``attendance`` command groups to the CLI's subparsers."""
    actions = command_group(sub, "report", "reports of stored results")

    text = "show a meeting's report (corrections applied) and write it with --out"
    p = command(actions, "meeting", cmd_report_meeting, text)
    p.add_argument("meeting", type=record_id)
    p.add_argument("--out", help="folder to write attendance.csv/.xlsx/.png/.html into")
    p.add_argument("--format", help=FORMATS_HELP)

    text = (
        "term report of a course: every student x every analysed meeting (attendance %), "
        "students under the course's threshold highlighted"
    )
    p = command(actions, "course", cmd_report_course, text)
    p.add_argument("course")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="last day, YYYY-MM-DD")
    p.add_argument(
        "--out", help="folder to write term.csv/.xlsx/.html, term-students/-meetings.png into"
    )
    p.add_argument("--format", help=FORMATS_HELP)

    actions = command_group(sub, "attendance", "manual attendance corrections")
    text = (
        "correct a student's attendance in a meeting (stored beside the automatic result; "
        "re-analysis keeps it)"
    )
    p = command(actions, "set", cmd_attendance_set, text)
    p.add_argument("meeting", type=record_id)
    p.add_argument("student", help="the student's id in the meeting's course")
    p.add_argument(
        "--minutes",
        help="minutes to correct, inclusive: 0-based offsets (10-45, or 7) or the report's "
        "HH:MM column headers (09:10-09:45); default: the whole meeting",
    )
    value = p.add_mutually_exclusive_group(required=True)
    value.add_argument("--present", dest="present", action="store_true", default=None)
    value.add_argument("--absent", dest="present", action="store_false")
    p.add_argument("--reason", required=True, help="why (shown in every report)")
    p.add_argument("--by", help="who made the correction (default: the OS user)")

    text = "list a meeting's corrections (who, when, why, which minutes)"
    p = command(actions, "list", cmd_attendance_list, text)
    p.add_argument("meeting", type=record_id)

    text = (
        "what needs review: meetings with minutes to review (all, or of --course), or one "
        "meeting's needs-review minutes with why and how to resolve them"
    )
    p = command(actions, "review", cmd_attendance_review, text)
    p.add_argument("meeting", type=record_id, nargs="?")
    p.add_argument("--course", help="only this course's meetings")

    text = "remove a correction (the automatic result shows again)"
    p = command(actions, "remove", cmd_attendance_remove, text)
    p.add_argument("correction", type=record_id, metavar="CORRECTION_ID")
