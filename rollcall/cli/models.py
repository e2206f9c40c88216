"""``rollcall models check``: resolve the configured face model pack.

``register(sub)`` adds the ``models`` group to the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse

from rollcall.cli.args import command, command_group


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``models`` command group to the CLI's subparsers."""
    models = command_group(sub, "models", "face models")
    command(models, "check", cmd_models_check, "resolve the configured model pack")
