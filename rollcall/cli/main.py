"""The ``rollcall`` command line: the parser, built from one module per command group,
and the dispatch of a command with its errors turned into exit codes.

Exit codes: 0 success, 1 a failure the message explains (missing model, bad
recording, unknown course...), 2 a usage or configuration error.

Command groups: :mod:`~rollcall.cli.enrollment` (course, student, photo),
:mod:`~rollcall.cli.analyze` (analyze, demo), :mod:`~rollcall.cli.meetings`
(meeting, unknown), :mod:`~rollcall.cli.explain` (explain), :mod:`~rollcall.cli.reports` (report, attendance),
:mod:`~rollcall.cli.service` (serve, jobs, zoom), :mod:`~rollcall.cli.plugins`,
:mod:`~rollcall.cli.notify`, :mod:`~rollcall.cli.retention`, :mod:`~rollcall.cli.models`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from rollcall.cli import (
    analyze,
    enrollment,
    explain,
    meetings,
    models,
    notify,
    plugins,
    reports,
    retention,
    service,
    users,
)
from rollcall.cli.common import EXIT_FAILURE, EXIT_USAGE, CliError
from rollcall.cli.failures import describe_failure
from rollcall.config import ConfigError, load_config
from rollcall.logs import setup_logging
from rollcall.printable import printable

__all__ = ["CliError", "build_parser", "main"]

log = logging.getLogger("rollcall")

#: The command groups, in the order ``rollcall --help`` lists them.
GROUPS = (
    enrollment,
    analyze,
    meetings,
    explain,
    reports,
    service,
    plugins,
    notify,
    retention,
    models,
    users,
)


#: Failures whose message is the whole story (printed as "error: ..."), by module:
#: a module that was never imported cannot have raised its error, so the CLI
#: does not import the Zoom client (requests, zoomus) just to name its errors.
EXPLAINED_FAILURES = (
    ("rollcall.cli.common", "CliError"),
    ("rollcall.store.storage", "NotFound"),
    ("rollcall.store.storage", "StorageError"),
    ("rollcall.pipeline.decode", "RecordingError"),
    ("rollcall.models", "ModelError"),
    ("rollcall.store.jobs", "JobError"),
    ("rollcall.bot.oauth", "OAuthError"),
    ("rollcall.bot.zoom_client", "ZoomApiError"),
    ("rollcall.store.plugin_admin", "PluginAdminError"),
)


def explained_failures() -> tuple[type[BaseException], ...]:
    """The exception classes of :data:`EXPLAINED_FAILURES` whose modules are loaded."""
    loaded = (sys.modules.get(module) for module, _ in EXPLAINED_FAILURES)
    return tuple(
        getattr(mod, name)
        for mod, (_, name) in zip(loaded, EXPLAINED_FAILURES, strict=True)
        if mod is not None
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollcall", description="Attendance for online classes from their recordings."
    )
    parser.add_argument("--config", help="config.toml to use (default: $ROLLCALL_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Photos may follow --name/--email ("student add C S --name N a.jpg b.jpg"), which
    # argparse does not accept for a "*" positional; the leftovers are those photos.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "func", None) is enrollment.cmd_student_add and not any(
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
        # One problem per line ("invalid configuration:\n  key: ..."): the line breaks are
        # the message's own, so they stay; control characters inside a problem are escaped.
        lines = "\n  ".join(printable(part) for part in str(exc).split("\n  "))
        err.print(Text.assemble(("configuration error", "red"), f": {lines}"))
        return EXIT_USAGE
    setup_logging("DEBUG" if args.verbose else config.logging.level, config.logging.format)
    try:
        return args.func(args, config, console)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if isinstance(exc, explained_failures()):
            err.print(Text.assemble(("error", "red"), f": {printable(exc)}"))
            return EXIT_FAILURE
        # anything else: one line, the traceback only with -v
        if args.verbose:
            err.print(Text(traceback.format_exc().rstrip()))
        err.print(Text.assemble(("error", "red"), f": {describe_failure(exc)}"))
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
