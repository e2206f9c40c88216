"""Evidence beyond the face, used only to doubt a match, never to make one.

Two checks run after the recognizer decided the tracks and before attendance is
stored:

- **Tile labels.** For every track whose face decision is in doubt (a review
  track, a track accepted only by its mean face, one whose margin over the next
  student or over non-students is below ``[recognition] tile_label_doubt``, or a
  match to a student the participants report says never connected), the name
  Zoom wrote on its tile is read (``rollcall.pipeline.tile_labels``). A label
  that clearly names someone else (a word of it matches no word of the
  student's name, email or id, even fuzzily) sends an accepted track to review
  with the reason ``tile labelled 'X'``. Anyone can rename themselves, so a
  label that matches changes nothing and a label never makes a track anyone's.
  A single-sample match whose margin over non-students' faces is below
  ``tile_label_doubt`` and whose tile shows no readable name needs review too:
  such matches are where look-alikes got through on the face alone.
- **The participants report** (Zoom's, or a CSV given to ``rollcall analyze
  --participants``). A present minute of a student the report says never
  connected, or was not connected in that minute, becomes "needs review" with
  the reason ``not in the participants report`` / ``not connected in this minute
  (participants report)``.

The reasons go into the tracks' decisions and the minutes' evidence, so
``rollcall explain`` and the HTML report show them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

import sqlite_utils

from rollcall.config import AttendanceConfig, Config
from rollcall.presence import attendance_totals, minute_lengths
from rollcall.types import (
    MeetingContext,
    Participant,
    Roster,
    TrackDecision,
    TrackIdentities,
    TrackSummary,
    track_decisions,
)

log = logging.getLogger(__name__)

#: Words of a display name that say nothing about who is there.
_GENERIC = (
    "iphone ipad android galaxy phone mobile zoom user guest laptop desktop computer pc mac "
    "macbook room class student host the and von van der den del della da de di dos la le "
    "mr mrs ms dr prof"
)
GENERIC_WORDS = frozenset(_GENERIC.split(" "))
#: A label word this similar (difflib ratio) to a word of the student's is theirs (OCR
#: slips such as "Geoge"); one less similar than ``OTHER_BELOW`` to all of them is not.
SAME_AT = 0.75
OTHER_BELOW = 0.6
NOT_IN_REPORT = "not in the participants report"
NOT_CONNECTED = "not connected in this minute (participants report)"


@dataclass(frozen=True, slots=True)
class Person:
    """An enrolled student as names and labels are compared against them."""

    index: int  # roster index
    student_id: str
    name: str
    email: str


def words(text: str) -> list[str]:
    """Lower-case ASCII words of a name (accents dropped, ``'s`` and punctuation removed)."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"['\u2019]s\b", " ", text)
    return [w for w in re.split(r"[^a-z0-9]+", text) if w]


def person_words(person: Person) -> set[str]:
    local = person.email.split("@", 1)[0] if person.email else ""
    found = set(words(person.name)) | set(words(local)) | set(words(person.student_id))
    return {w for w in found if not w.isdigit()}


def _word_matches(word: str, theirs: set[str]) -> float:
    """How well one label word matches a person's words (1 = certainly theirs)."""
    best = 0.0
    for w in theirs:
        if word == w or (
            len(word) >= 3 and len(w) >= 3 and (w.startswith(word) or word.startswith(w))
        ):
            return 1.0
        best = max(best, SequenceMatcher(None, word, w).ratio())
    return best


def informative_words(label: str) -> list[str]:
    """The words of a label that could say who someone is (not device names, initials
    or numbers)."""
    return [w for w in words(label) if len(w) >= 3 and not w.isdigit() and w not in GENERIC_WORDS]


def names_someone_else(label: str, person: Person) -> str | None:
    """The label's word that clearly is not the student's (None: the label fits them,
    or says too little: device names, initials, an unreadable read)."""
    theirs = person_words(person)
    for word in informative_words(label):
        if _word_matches(word, theirs) < OTHER_BELOW:
            return word
    return None


def roster_people(db: sqlite_utils.Database, roster: Roster) -> list[Person]:
    """The roster's students with their emails, in roster order."""
    keys = set(roster.student_keys)
    emails = {
        r["id"]: r["email"] or ""
        for r in db.query("select id, email from students")
        if r["id"] in keys
    }
    return [
        Person(i, sid, name, emails.get(pk, ""))
        for i, (pk, sid, name) in enumerate(
            zip(roster.student_keys, roster.student_ids, roster.names, strict=True)
        )
    ]


# ---------------------------------------------------------------- participants report


def _naive(value: datetime) -> datetime:
    """Clock time without a zone (an aware time in this machine's zone), so a Zoom
    CSV's local times and a file's UTC creation time compare."""
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value


def _key(text: str) -> str:
    return " ".join(words(text))


def report_start(participants: Sequence[Participant], start: datetime | None) -> datetime | None:
    """The recording's start as clock time comparable with the report's times: ``start``
    without its zone (see :func:`_naive`), else the report's first join."""
    if start is not None:
        return _naive(start)
    joins = [_naive(p.join_time) for p in participants if p.join_time]
    return min(joins) if joins else None


def connected_minutes(
    participants: Sequence[Participant],
    people: Sequence[Person],
    start: datetime | None,
    duration_s: float,
) -> dict[int, list[int]]:
    """Roster index -> 1/0 per minute of the recording: connected per the report.

    Participants are matched to students by email, else by name (case, accents and
    punctuation ignored), as the service's reconciliation does. A student absent
    from the result never connected. Without a known ``start`` the report's first
    join is taken as the recording's start.
    """
    by_email = {p.email.casefold(): p for p in people if p.email}
    by_name = {_key(p.name): p for p in people}
    start = report_start(participants, start)
    intervals: dict[int, list[tuple[float, float]]] = {}
    for p in participants:
        person = by_email.get((p.email or "").casefold()) or by_name.get(_key(p.name))
        if person is None:
            continue
        spans = intervals.setdefault(person.index, [])
        if p.join_time and p.leave_time and start is not None:
            spans.append(
                (
                    (_naive(p.join_time) - _naive(start)).total_seconds(),
                    (_naive(p.leave_time) - _naive(start)).total_seconds(),
                )
            )
        else:  # in the report, times unknown: connected throughout
            spans.append((float("-inf"), float("inf")))
    out = {}
    for index, spans in intervals.items():
        row = []
        for i, length in enumerate(minute_lengths(duration_s)):
            a, b = 60.0 * i, 60.0 * i + length
            row.append(int(any(j < b and leave > a for j, leave in spans)))
        out[index] = row
    return out


def doubt_by_participants(
    rows: list[Any],
    connected: dict[int, list[int]],
    attendance: AttendanceConfig,
) -> list[Any]:
    """Attendance rows with every present minute the report contradicts made "needs
    review" (reason in the minute's evidence); totals and status recomputed.

    ``attendance`` is the ``[attendance]`` settings (for the status). Rows are the
    attendance plugin's ``StudentPresence`` (a row without ``review`` is left alone).
    """
    out = []
    for row in rows:
        if not hasattr(row, "review"):
            out.append(row)
            continue
        conn = connected.get(row.student_index)
        minutes, review = list(row.minutes), list(row.review or (0,) * len(row.minutes))
        reasons: dict[int, str] = {}
        for m, present in enumerate(row.minutes):
            if conn is not None and m < len(conn) and conn[m]:
                continue
            if present or review[m]:
                reasons[m] = NOT_IN_REPORT if conn is None else NOT_CONNECTED
                if present:
                    minutes[m], review[m] = 0, 1
        if not reasons:
            out.append(row)
            continue
        evidence = tuple(
            dataclasses.replace(
                e,
                state="present" if minutes[e.minute] else "review",
                reason=_with_reason(e.reason, reasons[e.minute]),
            )
            if e.minute in reasons
            else e
            for e in row.evidence
        )
        count, pct, status = attendance_totals(
            minutes,
            absent_below_pct=attendance.absent_below_pct,
            late_after_pct=attendance.late_after_pct,
            left_early_pct=attendance.left_early_pct,
        )
        out.append(
            dataclasses.replace(
                row,
                minutes=tuple(minutes),
                review=tuple(review),
                evidence=evidence,
                present_minutes=count,
                attendance_pct=pct,
                status=status,
            )
        )
        log.info(
            "participants report doubts minutes",
            extra={"student_index": row.student_index, "minutes": sorted(reasons)},
        )
    return out


def _with_reason(reason: str, more: str) -> str:
    """``reason`` with ``more`` added once (doubting stored minutes again adds nothing)."""
    parts = [r for r in reason.split("; ") if r]
    return "; ".join(parts if more in parts else [*parts, more])


# ---------------------------------------------------------------- tile labels


def in_doubt(d: TrackDecision, doubt_margin: float, doubted: Collection[int]) -> bool:
    """Whether a track's face decision is in doubt (its tile label is then read)."""
    if d.state != "accepted" or d.path != "vote" or d.student_index in doubted:
        return True
    low_cohort = d.margin_cohort is not None and d.margin_cohort < doubt_margin
    # A NaN margin (a third-party recognizer's decision without evidence) is no doubt.
    return d.margin_student < doubt_margin or low_cohort


def close_to_a_stranger(d: TrackDecision, doubt_margin: float) -> str:
    """Why an accepted vote-path match is close to a *non-student's* face (margin over
    the cohort below ``doubt_margin``), or "". Such a match stands on the face alone
    only when its tile shows a name that is not someone else's (``doubt_by_labels``):
    measured, every look-alike of an absent student accepted by its votes was one."""
    if d.state != "accepted" or d.path != "vote" or d.margin_cohort is None:
        return ""
    if d.margin_cohort < doubt_margin:
        return f"only {d.margin_cohort:.2f} closer than to a non-student"
    return ""


#: The reason of a close call whose tile name could not be read (see ``doubt_by_labels``).
NO_LABEL = "no name on its tile could be read to check it"


def doubt_by_labels(
    identities: dict[int, int],
    tracks: Sequence[TrackSummary],
    people: Sequence[Person],
    strips: dict[int, list[tuple[float, Any]]],
    reader: Any,
    *,
    doubt_margin: float,
    doubted: Collection[int] = (),
) -> TrackIdentities:
    """The decisions with every doubtful track whose tile label names someone else sent
    to review (reason ``tile labelled 'X'``). ``reader.read(strip)`` is the OCR.

    Only tracks whose decision is in doubt are read, at most until one strip reads
    a name (a device name or initials say nothing: the next strip is read); a label
    never makes a track accepted or anyone's. A vote-path match close to a
    non-student's face (``close_to_a_stranger``: margin over the cohort below
    ``doubt_margin``) whose tile shows no readable name at all needs review too,
    reason :data:`NO_LABEL`: measured, such matches are where look-alikes of absent
    students got through on the face alone (benchmarks/accuracy.py look-alike rows,
    on faces-lfw and on a second face set; the README has the numbers), and the
    tile's name was what caught them. A match close only to another *student* is
    left to the face (the margin rule): in recordings without names those were
    all genuine.
    """
    decisions = dict(track_decisions(identities))
    read_tracks = 0
    for tr in tracks:
        d = decisions.get(tr.track_id)
        if d is None or not in_doubt(d, doubt_margin, doubted):
            continue
        if strips.get(tr.track_id):
            read_tracks += 1
        named = False  # a strip read a name (the student's or someone else's)
        for _, strip in strips.get(tr.track_id, []):
            reading = reader.read(strip)
            if reading is None or not informative_words(reading.text):
                continue
            named = True
            word = names_someone_else(reading.text, people[d.student_index])
            if word is not None:
                note = f"tile labelled '{reading.text}'"
                decisions[tr.track_id] = dataclasses.replace(
                    d, state="review", reason="; ".join(r for r in (d.reason, note) if r)
                )
                log.info(
                    "tile label doubts a match",
                    extra={
                        "track_id": tr.track_id,
                        "student_id": people[d.student_index].student_id,
                        "label": reading.text,
                    },
                )
            break  # one clear reading is enough
        close = close_to_a_stranger(d, doubt_margin)
        if not named and close:
            decisions[tr.track_id] = dataclasses.replace(
                d, state="review", reason="; ".join(r for r in (d.reason, close, NO_LABEL) if r)
            )
            log.info(
                "a close match with no readable tile name needs review",
                extra={"track_id": tr.track_id, "student_id": people[d.student_index].student_id},
            )
    if hasattr(reader, "stats"):
        reader.stats.tracks += read_tracks
    return TrackIdentities(decisions)


# ---------------------------------------------------------------- one meeting


class MeetingDoubts:
    """Both checks for one analysis, as the orchestrator runs them: :meth:`tracks` after
    the recognizer decided the tracks, :meth:`minutes` after the attendance was counted."""

    def __init__(
        self,
        people: Sequence[Person],
        meeting: MeetingContext,
        participants: Sequence[Participant] | None,
        config: Config,
    ) -> None:
        self.people = list(people)  # roster_people(), read where the database is
        self.config = config
        self.connected: dict[int, list[int]] | None = (
            connected_minutes(participants, self.people, meeting.start_time, meeting.duration_s)
            if participants is not None
            else None
        )

    def tracks(
        self, identities: dict[int, int], tracks: Sequence[TrackSummary], labels: Any, reader: Any
    ) -> dict[int, int]:
        """``identities`` with doubtful tracks whose tile names someone else in review."""
        rec = self.config.recognition
        if not rec.read_tile_labels or not self.people:
            return identities
        never = (
            {p.index for p in self.people if not any(self.connected.get(p.index, ()))}
            if self.connected is not None
            else set()
        )
        return doubt_by_labels(
            identities,
            tracks,
            self.people,
            labels.strips,
            reader,
            doubt_margin=rec.tile_label_doubt,
            doubted=never,
        )

    def minutes(self, rows: list[Any]) -> list[Any]:
        """Attendance rows with the minutes the participants report contradicts in review."""
        if self.connected is None:
            return rows
        return doubt_by_participants(rows, self.connected, self.config.attendance)
