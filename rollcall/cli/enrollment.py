"""``rollcall course|student|photo ...``: courses, enrolled students and their photos.

``register(sub)`` adds the three command groups to the CLI's argparse
subparsers; each command has the CLI's ``(args, config, console) -> exit code``
signature.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group
from rollcall.cli.common import (
    EXIT_FAILURE,
    CliError,
    cell,
    confirm_removal,
    markup_safe,
    models_and_pm,
    open_db,
    say,
)
from rollcall.config import Config
from rollcall.store import storage


def _print_checks(console: Console, result) -> None:
    for check in result.checks:
        if check.accepted:
            console.print(
                f"  [green]ok[/]      {markup_safe(result.student_id)}/{markup_safe(check.filename)}",
                highlight=False,
            )
        else:
            console.print(
                f"  [red]refused[/] {markup_safe(result.student_id)}/{markup_safe(check.filename)}: "
                f"{markup_safe(check.problem)}",
                highlight=False,
            )
        for warning in check.warnings:
            console.print(
                f"  [yellow]warning[/] {markup_safe(result.student_id)}/{markup_safe(check.filename)}: "
                f"{markup_safe(warning)}",
                highlight=False,
            )


def _enrollment_summary(console: Console, config: Config, results) -> int:
    accepted = sum(r.accepted for r in results)
    refused = sum(len(r.checks) - r.accepted for r in results)
    few = [r.student_id for r in results if r.accepted < config.enrollment.recommended_photos]
    console.print(f"{accepted} photo(s) enrolled, {refused} refused.")
    if few:
        console.print(
            Text.assemble(
                ("note", "yellow"),
                cell(
                    f": fewer than {config.enrollment.recommended_photos} photos for "
                    f"{', '.join(few)}; more poses make recognition more reliable."
                ),
            )
        )
    unusable = [r for r in results if r.problem]
    for r in unusable:
        console.print(
            f"[red]not enrolled[/]: {markup_safe(r.student_id)}: {markup_safe(r.problem)}",
            highlight=False,
        )
    return EXIT_FAILURE if unusable else 0


def cmd_course_add(args, config, console) -> int:
    db = open_db(config)
    created = storage.add_course(db, args.course, args.title or args.course)
    console.print(say(f"course {args.course} {'created' if created else 'updated'}"))
    return 0


def cmd_course_list(args, config, console) -> int:
    table = Table("course", "title", "students")
    for c in storage.list_courses(open_db(config)):
        table.add_row(cell(c["course_id"]), cell(c["title"]), str(c["students"]))
    console.print(table)
    return 0


def cmd_course_remove(args, config, console) -> int:
    db = open_db(config)
    if not confirm_removal(console, storage.plan_course_removal(db, args.course), args.yes):
        return EXIT_FAILURE
    removed = storage.remove_course(db, args.course, config.home)
    console.print(say("deleted ", removed.summary()))
    return 0


def cmd_student_add(args, config, console) -> int:
    from rollcall.enrollment.enroll import enroll_photos

    db = open_db(config)
    storage.get_course(db, args.course)
    models, pm = models_and_pm(config, console)
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
    db = open_db(config)
    storage.get_course(db, args.course)
    roster_csv = root / "roster.csv"
    try:
        roster = read_roster_csv(roster_csv) if roster_csv.exists() else {}
    except ValueError as exc:
        raise CliError(str(exc)) from None
    folders = photo_folders(root)
    if not folders and not roster:
        raise CliError(f"{root} holds no <student_id>/ folders with photos and no roster.csv")
    models, pm = models_and_pm(config, console)
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
    storage.remove_student(open_db(config), args.course, args.student)
    console.print(
        say(
            f"student {args.student} removed from {args.course} "
            "with their photos, embeddings and results"
        )
    )
    return 0


def cmd_student_list(args, config, console) -> int:
    table = Table("student_id", "name", "email", "photos")
    for s in storage.list_students(open_db(config), args.course):
        table.add_row(cell(s["student_id"]), cell(s["name"]), cell(s["email"]), str(s["photos"]))
    console.print(table)
    return 0


def cmd_photo_remove(args, config, console) -> int:
    storage.remove_photo(open_db(config), args.course, args.student, args.filename)
    console.print(say(f"photo {args.filename} of {args.student} removed"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``course``, ``student`` and ``photo`` command groups to the CLI's subparsers."""
    courses = command_group(sub, "course", "manage courses")
    p = command(courses, "add", cmd_course_add, "create a course (or rename it)")
    p.add_argument("course")
    p.add_argument("--title", default="")
    command(courses, "list", cmd_course_list, "list courses")
    p = command(
        courses,
        "remove",
        cmd_course_remove,
        "delete a course with its students, photos, meetings and results",
    )
    p.add_argument("course")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    students = command_group(sub, "student", "manage enrolled students")
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

    photos = command_group(sub, "photo", "manage enrollment photos")
    p = command(photos, "remove", cmd_photo_remove, "remove one photo and its embeddings")
    p.add_argument("course")
    p.add_argument("student")
    p.add_argument("filename")
