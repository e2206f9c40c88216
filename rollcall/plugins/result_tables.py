"""Storage shared by the face analyzers (emotion, engagement): their two result tables.

An analyzer keeps one row per student and minute in its *minutes* table and one
row per student, plus the whole class's row (``student_pk`` 0), in its *summary*
table. Both have ``meeting_id`` and ``student_pk`` columns, so retention and
student removal delete the rows with the meeting or the student (see the
``rollcall_create_tables`` hook). :class:`ResultTables` describes the two tables
of one analyzer; :class:`StoredResultsHooks` answers the storage hooks from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import sqlite_utils

from rollcall import MeetingContext, Roster, hookimpl, write_transaction

CLASS_PK = 0  # student_pk of the class-wide row in a summary table
Sheets = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


class _PerStudent(Protocol):
    @property
    def student_index(self) -> int: ...  # roster index, -1 for the whole class


class AnalyzerResult(Protocol):
    """What an analyzer's ``rollcall_finalize_meeting`` answer holds, for storage."""

    @property
    def minutes(self) -> Sequence[_PerStudent]: ...
    @property
    def students(self) -> Sequence[_PerStudent]: ...
    @property
    def cls(self) -> _PerStudent: ...


def report_rows(
    db: sqlite_utils.Database, sql: str, meeting_id: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Header and rows of an analyzer's report query (``?`` = meeting id); empty if no table."""
    try:
        cursor = db.execute(sql, [meeting_id])
    except Exception:  # table absent: the analyzer never ran here
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()


@dataclass(frozen=True, slots=True)
class ResultTables:
    """The result tables of one analyzer, how its results become rows, and its sheets.

    ``minute_row`` and ``summary_row`` give the columns of one record of
    ``result.minutes`` / ``result.students`` (and ``result.cls``) after
    ``meeting_id`` and ``student_pk``; ``sheets`` maps an XLSX sheet title to its
    query (``?`` = meeting id).
    """

    key: str  # the analyzer's key in the merged rollcall_finalize_meeting answers
    minutes: str
    minutes_columns: Mapping[str, type]
    summary: str
    summary_columns: Mapping[str, type]
    minute_row: Callable[[Any, Any], dict[str, Any]]  # (result, minute record) -> columns
    summary_row: Callable[[Any, Any], dict[str, Any]]  # (result, summary record) -> columns
    sheets: Mapping[str, str]

    def create(self, db: sqlite_utils.Database) -> None:
        """Create the two tables if they do not exist (idempotent)."""
        if self.minutes not in db.table_names():
            db[self.minutes].create(  # type: ignore[union-attr]
                {"meeting_id": int, "student_pk": int, "minute": int, **self.minutes_columns},
                pk=("meeting_id", "student_pk", "minute"),
            )
        if self.summary not in db.table_names():
            db[self.summary].create(  # type: ignore[union-attr]
                {"meeting_id": int, "student_pk": int, **self.summary_columns},
                pk=("meeting_id", "student_pk"),
            )

    def save(
        self, db: sqlite_utils.Database, meeting_id: int, result: AnalyzerResult, roster: Roster
    ) -> None:
        """Replace the meeting's rows (class row: student_pk 0), in a write transaction
        of ``db`` (a savepoint of the meeting's when called from the hook)."""
        self.create(db)
        keys = roster.student_keys

        def row(pk: int, columns: dict[str, Any]) -> dict[str, Any]:
            return {"meeting_id": meeting_id, "student_pk": pk, **columns}

        minutes = [row(keys[m.student_index], self.minute_row(result, m)) for m in result.minutes]
        summary = [
            row(keys[s.student_index], self.summary_row(result, s)) for s in result.students
        ] + [row(CLASS_PK, self.summary_row(result, result.cls))]
        with write_transaction(db):
            db.execute(f"DELETE FROM {self.minutes} WHERE meeting_id = ?", [meeting_id])
            db.execute(f"DELETE FROM {self.summary} WHERE meeting_id = ?", [meeting_id])
            db[self.minutes].insert_all(minutes)  # type: ignore[union-attr]
            db[self.summary].insert_all(summary)  # type: ignore[union-attr]

    def report_sheets(self, db: sqlite_utils.Database, meeting_id: int) -> Sheets:
        """XLSX sheets (title -> header, rows) of a meeting's results; {} when none."""
        sheets = {title: report_rows(db, sql, meeting_id) for title, sql in self.sheets.items()}
        return {title: sheet for title, sheet in sheets.items() if sheet[1]}


class StoredResultsHooks:
    """The storage hooks of an analyzer whose results live in ``tables``.

    A plugin class inherits them and sets the class attribute ``tables``.
    """

    tables: ClassVar[ResultTables]

    @hookimpl
    def rollcall_create_tables(self, db: sqlite_utils.Database) -> None:
        self.tables.create(db)

    @hookimpl
    def rollcall_save_results(
        self,
        db: sqlite_utils.Database,
        meeting: MeetingContext,
        results: dict[str, Any],
        roster: Roster,
    ) -> None:
        if self.tables.key in results:
            self.tables.save(db, meeting.meeting_id, results[self.tables.key], roster)

    @hookimpl
    def rollcall_report_sheets(
        self, db: sqlite_utils.Database, meeting_id: int
    ) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
        sheets = self.tables.report_sheets(db, meeting_id)
        return [(title, header, rows) for title, (header, rows) in sheets.items()]
