"""``rollcall notify ...``: the notification outbox from the command line.

``register(sub)`` adds the ``notify`` group to the CLI's argparse subparsers.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``notify`` command group to the CLI's subparsers."""
