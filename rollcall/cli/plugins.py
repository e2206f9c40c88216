"""``rollcall plugins list|enable|disable|audit``: plugin administration from the command line.

``register(sub)`` adds the ``plugins`` group to the CLI's argparse
subparsers; each command has the CLI's ``(args, config, console) -> exit code``
signature.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollcall.cli.args import command, command_group, count
from rollcall.cli.common import markup_safe
from rollcall.config import Config
from rollcall.store import storage

EXIT_FAILURE = 1
HOOK_PREFIX = "rollcall_"


def _short(hooks: tuple[str, ...]) -> str:
    return ", ".join(h.removeprefix(HOOK_PREFIX) for h in hooks)


def cmd_plugins_list(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.pipeline.plugin_manager import describe_plugins
    from rollcall.store.plugin_admin import plugin_statuses

    db = storage.open_db(config.home)
    course = getattr(args, "course", None)
    if course:
        storage.get_course(db, course)
    columns = ["name", "version", "source", "global", "courses", "hooks"]
    if course:
        columns.insert(4, course)
    table = Table(*columns)
    problems = []
    for status in plugin_statuses(db, describe_plugins(config)):
        info = status.info
        glob = "always" if info.core else ("on" if status.enabled_globally else "off")
        courses = ", ".join(
            f"{c}:{'on' if v else 'off'}" for c, v in sorted(status.courses.items())
        )
        row = [info.name, info.version, info.source, glob, courses or "-", _short(info.hooks)]
        if course:
            row.insert(4, "on" if status.enabled_for(course) else "off")
        if info.problem:
            row[3] = "broken"
            problems.append((info.name, info.problem))
        table.add_row(*(markup_safe(v) for v in row))
    console.print(table)
    for name, problem in problems:
        console.print(
            f"[red]skipped[/] {markup_safe(name)}: {markup_safe(problem)}", highlight=False
        )
    return 0


def _set(args: argparse.Namespace, config: Config, console: Console, enabled: bool) -> int:
    from rollcall.pipeline.plugin_manager import describe_plugins
    from rollcall.store.plugin_admin import (
        ConfirmationRequired,
        PluginAdminError,
        current_user,
        set_plugin_enabled,
    )

    err = Console(stderr=True, highlight=False)
    db = storage.open_db(config.home)
    try:
        entry = set_plugin_enabled(
            db,
            describe_plugins(config),
            args.name,
            enabled,
            course_id=args.course,
            who=current_user(),
            confirmed=getattr(args, "yes", False),
        )
    except ConfirmationRequired as exc:
        err.print(Text(exc.notice.text()))
        err.print(f"[red]not enabled[/]: run again with --yes to enable {markup_safe(args.name)}.")
        return EXIT_FAILURE
    except PluginAdminError as exc:
        err.print(f"[red]error[/]: {markup_safe(str(exc))}")
        return EXIT_FAILURE
    from rollcall.store.plugin_admin import NOTICES

    if enabled and args.name in NOTICES:
        console.print(Text(NOTICES[args.name].text()), highlight=False)
    console.print(
        f"{markup_safe(entry.detail)} (by {markup_safe(entry.who)} at {entry.at}); "
        "takes effect with the next job.",
        highlight=False,
    )
    return 0


def cmd_plugins_enable(args: argparse.Namespace, config: Config, console: Console) -> int:
    return _set(args, config, console, True)


def cmd_plugins_disable(args: argparse.Namespace, config: Config, console: Console) -> int:
    return _set(args, config, console, False)


def cmd_plugins_audit(args: argparse.Namespace, config: Config, console: Console) -> int:
    from rollcall.store.plugin_admin import audit_log

    table = Table("when", "who", "action", "plugin", "scope", "detail")
    for e in audit_log(storage.open_db(config.home), args.limit):
        table.add_row(
            e.at,
            markup_safe(e.who),
            e.action,
            markup_safe(e.plugin),
            markup_safe(e.course_id or "global"),
            markup_safe(e.detail),
        )
    console.print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``plugins`` command group to the CLI's subparsers."""
    actions = command_group(sub, "plugins", "list, enable and disable plugins")

    p = command(actions, "list", cmd_plugins_list, "every plugin: version, source, settings, hooks")
    p.add_argument("--course", help="also show whether each plugin runs for this course")
    for name, func, text in (
        ("enable", cmd_plugins_enable, "enable a plugin globally or for one course"),
        ("disable", cmd_plugins_disable, "disable a plugin globally or for one course"),
    ):
        p = command(actions, name, func, text + " (effective from the next job; audited)")
        p.add_argument("name")
        p.add_argument("--course", help="only for this course (default: globally)")
        if name == "enable":
            p.add_argument(
                "--yes",
                action="store_true",
                help="confirm enabling a sensitive analyzer (emotion, engagement)",
            )
    p = command(actions, "audit", cmd_plugins_audit, "the plugin audit log, newest first")
    p.add_argument("--limit", type=count, default=50)
