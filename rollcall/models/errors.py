"""The one exception type the ``models`` package raises."""

from __future__ import annotations


class ModelError(Exception):
    """A model pack is unknown, missing, corrupt or could not be obtained.

    The message is meant for the person running rollcall: it names the file
    that was expected, where it was looked for, and how to fix the problem
    (which setting to change, which folder to fill, what to delete).
    """
