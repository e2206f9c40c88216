"""Zoom's participants CSV (web portal: Usage reports > Meeting participants > Export).

:func:`read_participants_csv` turns the export into the same ``Participant``
values the service gets from Zoom's participants API, leniently: a meeting
summary block (``Meeting ID,Topic,Start Time,...``) and blank lines before the
participants' header are skipped; columns may be separated by commas,
semicolons or tabs; the file may carry a byte-order mark or be Latin-1; column
names are matched without case (``Name (Original Name)``, ``Name``, ``User
Email``/``Email``, ``Join Time``, ``Leave Time``, ``Duration (Minutes)``); times
may be ``MM/DD/YYYY hh:mm:ss AM``, ``MM/DD/YYYY HH:MM[:SS]`` or ISO 8601. A
renamed participant's ``Name (Original Name)`` cell ``Ana (Ana Lima)`` gives
the account name ``Ana Lima``. A file that has no such header, or a row whose
time cannot be read, fails with :class:`ParticipantsFileError` naming the file
and the line.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

from rollcall.types import Participant

TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
)


class ParticipantsFileError(ValueError):
    """The participants file cannot be read; the message names the file and line."""


def _column(header: list[str], *names: str) -> int | None:
    cells = [re.sub(r"\s+", " ", h.strip().casefold()) for h in header]
    for name in names:
        for i, cell in enumerate(cells):
            if cell == name:
                return i
    for name in names:
        for i, cell in enumerate(cells):
            if cell.startswith(name):
                return i
    return None


def _time(text: str) -> datetime | None:
    text = " ".join(text.strip().split())
    if not text:
        return None
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(text) from None


def _split(line: str) -> list[str]:
    delimiter = max((",", ";", "\t"), key=line.count)
    return next(csv.reader([line], delimiter=delimiter))


def _text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_participants_csv(path: Path) -> list[Participant]:
    """The participants of a Zoom participants export (one row per join)."""
    path = Path(path)
    try:
        lines = _text(path).splitlines()
    except OSError as exc:
        raise ParticipantsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    at = 0
    for at, line in enumerate(lines):  # noqa: B007 (the header's line is used below)
        header = _split(line) if line.strip() else []
        name_col = _column(header, "name (original name)", "name", "participant")
        join_col = _column(header, "join time")
        leave_col = _column(header, "leave time")
        if None not in (name_col, join_col, leave_col):
            break
    else:
        raise ParticipantsFileError(
            f"{path}: no participants header (columns Name, Join Time and Leave Time) found; "
            "export it from Zoom: Usage reports > Meeting participants"
        )
    email_col = _column(header, "user email", "email")
    duration_col = _column(header, "duration")
    delimiter = max((",", ";", "\t"), key=lines[at].count)
    out = []
    reader = csv.reader(io.StringIO("\n".join(lines[at + 1 :])), delimiter=delimiter)
    for row in reader:
        number = at + 1 + reader.line_num  # 1-based line of the file
        if not any(cell.strip() for cell in row):
            continue
        needed = max(c for c in (name_col, join_col, leave_col) if c is not None)
        if len(row) <= needed:
            raise ParticipantsFileError(
                f"{path} line {number}: {len(row)} column(s), the header has {len(header)}"
            )
        try:
            join, leave = _time(row[join_col]), _time(row[leave_col])
        except ValueError as exc:
            raise ParticipantsFileError(
                f"{path} line {number}: {str(exc)!r} is not a date and time "
                "(expected e.g. 09/01/2026 09:00:00 AM)"
            ) from None
        if join and leave and leave < join:
            raise ParticipantsFileError(f"{path} line {number}: leave time before join time")
        name = row[name_col].strip()
        original = re.fullmatch(r"(.*\S)\s*\(([^()]+)\)", name)
        if original and "original" in header[name_col].casefold():
            name = original.group(2).strip()
        email = row[email_col].strip() if email_col is not None and email_col < len(row) else ""
        minutes = (
            row[duration_col].strip()
            if duration_col is not None and duration_col < len(row)
            else ""
        )
        out.append(
            Participant(
                user_id="",
                name=name,
                email=email,
                join_time=join,
                leave_time=leave,
                duration=int(float(minutes) * 60) if re.fullmatch(r"\d+(\.\d+)?", minutes) else 0,
            )
        )
    return out
