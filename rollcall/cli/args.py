"""argparse helpers shared by the CLI modules: a command group and one command in it."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def command_group(sub: argparse._SubParsersAction, name: str, help_text: str):
    """A ``rollcall NAME ACTION`` group; returns the subparsers its commands go in."""
    parser = sub.add_parser(name, help=help_text)
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def command(
    actions: argparse._SubParsersAction, name: str, func: Callable, help_text: str
) -> argparse.ArgumentParser:
    """One command of a group, run by ``func(args, config, console) -> exit code``."""
    # argparse %-formats help strings: a literal "%" must be doubled there.
    parser = actions.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
    parser.set_defaults(func=func)
    return parser
