"""argparse helpers shared by the CLI modules: a command group, one command in it, and
argument types that bound numbers before they reach SQLite (64-bit INTEGER)."""

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


MAX_SQLITE_INT = 2**63 - 1


def _whole_number(text: str, low: int, high: int, what: str) -> int:
    cleaned = text.strip()
    if not cleaned.isascii() or not cleaned.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}")
    value = int(cleaned)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}, got {text}")
    return value


def record_id(text: str) -> int:
    """argparse type of a database id (meeting, cluster, correction, job): 1..2**63-1."""
    return _whole_number(text, 1, MAX_SQLITE_INT, "an id")


def count(text: str) -> int:
    """argparse type of a row count such as ``--limit``: 0..2**63-1."""
    return _whole_number(text, 0, MAX_SQLITE_INT, "a count")


def processes(text: str) -> int:
    """argparse type of a number of processes (``rollcall worker --concurrency``): 1..64."""
    return _whole_number(text, 1, 64, "a number of processes")


def tcp_port(text: str) -> int:
    """argparse type of a TCP port: 1..65535."""
    return _whole_number(text, 1, 65535, "a port")


def job_ref(text: str) -> int | str:
    """argparse type of a job given by id (digits, bounded like :func:`record_id`) or key."""
    digits = text.strip()
    return record_id(digits) if digits.isascii() and digits.isdigit() else text
