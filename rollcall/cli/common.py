"""What every ``rollcall`` command module shares: the one-line error, the exit
codes, opening the database and loading the face models with their plugins.

Command modules import from here (and from :mod:`rollcall.cli.args`), never
from :mod:`rollcall.cli.main`, so no module of the CLI imports another in a cycle.
"""

from __future__ import annotations

import sqlite_utils
from rich.console import Console

from rollcall.config import Config
from rollcall.store import storage

EXIT_FAILURE, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A failure to report in one line and exit 1."""


def open_db(config: Config) -> sqlite_utils.Database:
    """The database of ``[storage] home``."""
    return storage.open_db(config.home)


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
