"""What every ``rollcall`` command module shares: the one-line error, the exit
codes, opening the database and loading the face models with their plugins.

Command modules import from here (and from :mod:`rollcall.cli.args`), never
from :mod:`rollcall.cli.main`, so no module of the CLI imports another in a cycle.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlite_utils
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from rollcall.config import Config
from rollcall.printable import printable
from rollcall.store import storage

EXIT_FAILURE, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A failure to report in one line and exit 1."""


def cell(value: object) -> Text:
    """Untrusted text (names, ids, titles, topics, errors) for the terminal: a rich
    ``Text``, never parsed as markup, with control characters escaped."""
    return Text(printable("" if value is None else value))


def markup_safe(value: object) -> str:
    """Untrusted text to put inside a rich markup string: escaped, control characters too."""
    return escape(printable("" if value is None else value))


def say(*parts: object) -> Text:
    """One line built from untrusted parts (see :func:`cell`)."""
    return cell("".join(str(p) for p in parts))


def open_db(config: Config) -> sqlite_utils.Database:
    """The database of ``[storage] home`` (``ROLLCALL_HOME``)."""
    if config.home.exists() and not config.home.is_dir():
        raise CliError(
            f"the data folder {config.home} ([storage] home, ROLLCALL_HOME) is a file, not a folder"
        )
    return storage.open_db(config.home)


def writable_folder(folder: Path, what: str) -> Path:
    """Check, before any long work whose results go to ``folder``, that it can be made
    and written: it (or the nearest folder above it that exists) is a folder that takes
    a file. Nothing is left behind; raises :class:`CliError` saying why not."""
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None:
        return folder
    if not existing.is_dir():
        raise CliError(f"{what} {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise CliError(f"{what} {folder} cannot be written: {exc.strerror or exc}") from None
    return folder


def confirm_removal(console: Console, plan: storage.Removal, yes: bool) -> bool:
    """Print what a removal deletes and ask before doing it (``yes``: do not ask).

    No answer (end of input, not a terminal) is a no.
    """
    console.print(say("this deletes ", plan.summary()))
    if yes:
        return True
    try:
        answer = input("delete? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    console.print("nothing deleted")
    return False


def models_and_pm(
    config: Config,
    console: Console,
    db: sqlite_utils.Database | None = None,
    course: str | None = None,
):
    """The configured face models and a plugin manager for them (``course``'s plugins)."""
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

    models = resolve_face_models(config, progress=True)
    return models, make_plugin_manager(config, models, db=db, course_id=course)
