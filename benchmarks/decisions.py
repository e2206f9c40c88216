"""Where needs-review minutes come from, and the track decisions re-run without video.

Used by ``benchmarks/accuracy.py``:

- ``Capture`` is a plugin that keeps what ``rollcall_finalize_meeting`` sees (the
  tracks, the recognizer's decisions, the roster) so a meeting's track decisions
  can be explained minute by minute (``review_breakdown``) and saved
  (``save_capture``);
- ``replay`` decides saved tracks again with the current ``TrackDecider`` and the
  attendance plugin, without decoding, detecting or embedding anything: a change to
  the decision rule is measured in seconds. Only the track decisions and what follows
  them are re-run; a change to per-frame matching or tracking needs a real run.
"""

from __future__ import annotations

import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rollcall import hookimpl
from rollcall.synthetic.meeting import GroundTruth
from rollcall.types import MeetingContext, Roster, TrackSummary, track_decisions


@dataclass
class Captured:
    """What one analysis decided about its tracks."""

    meeting: MeetingContext
    tracks: list[TrackSummary]
    identities: dict[int, int]
    roster: Roster


class Capture:
    """Plugin keeping the last meeting's tracks, decisions and roster."""

    name = "bench-capture"

    def __init__(self) -> None:
        self.last: Captured | None = None

    @hookimpl
    def rollcall_finalize_meeting(self, meeting, tracks, identities, roster):
        self.last = Captured(meeting, list(tracks), identities, roster)
        return {}


def save_capture(captured: Captured, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meeting = captured.meeting
    data = {
        "meeting": {
            "duration_s": meeting.duration_s,
            "interval_s": meeting.interval_s,
        },
        "tracks": captured.tracks,
        "roster": captured.roster,
    }
    path.write_bytes(pickle.dumps(data))


def replay(path: Path, pm: Any) -> tuple[Captured, Any]:
    """(captured, report-like object) of saved tracks decided by the current rules."""
    data = pickle.loads(path.read_bytes())
    meeting = SimpleNamespace(**data["meeting"])
    tracks, roster = data["tracks"], data["roster"]
    recognizer = pm.get_plugin("recognizer")
    attendance = pm.get_plugin("attendance")
    identities = recognizer.rollcall_identify_tracks(tracks=tracks, roster=roster)
    rows = attendance.rollcall_finalize_meeting(
        meeting=meeting, tracks=tracks, identities=identities, roster=roster
    )["attendance"]
    students = [
        SimpleNamespace(
            student_id=roster.student_ids[r.student_index],
            minutes=list(r.minutes),
            review_minutes=[m for m, flag in enumerate(r.review) if flag],
        )
        for r in rows
    ]
    return Captured(meeting, tracks, identities, roster), SimpleNamespace(students=students)


def _why(decision) -> str:
    """The review reason in a few fixed words (the decision's reason carries numbers)."""
    reason = decision.reason
    if "weak mean-face" in reason:
        return "weak mean face, no voted track" + (" (masked)" if decision.path == "masked" else "")
    if "another student" in reason:
        return "small margin over next student"
    if "non-student" in reason:
        return "small margin over cohort"
    if "below the match threshold" in reason:
        return "below the match threshold"
    return reason or "?"


def review_breakdown(
    captured: Captured, report: Any, truth: GroundTruth
) -> tuple[Counter, list[str]]:
    """Needs-review minutes counted by (decision path, why, truly on screen), and one
    line per minute with the deciding track's numbers."""
    decisions = track_decisions(captured.identities)
    tracks = {tr.track_id: tr for tr in captured.tracks}
    index = {sid: i for i, sid in enumerate(captured.roster.student_ids)}
    out: Counter = Counter()
    lines: list[str] = []
    for row in report.students:
        student = index[row.student_id]
        try:
            seen = truth.participant(row.student_id).visible_seconds_per_minute
        except (KeyError, ValueError, StopIteration):
            seen = []
        for minute in row.review_minutes:
            on_screen = minute < len(seen) and seen[minute] > 0
            covering = [
                d
                for t, d in decisions.items()
                if d.student_index == student
                and d.state == "review"
                and any(int(x // 60) == minute for x in tracks[t].times)
            ]
            if not covering:
                out[("?", "no review track", on_screen)] += 1
                continue
            d = max(covering, key=lambda d: tracks[d.track_id].n)
            tr = tracks[d.track_id]
            share = tr.votes[student] / max(tr.n_measured, 1)
            out[(d.path, _why(d), on_screen)] += 1
            lines.append(
                f"{row.student_id} min {minute} on_screen={on_screen} {d.path}: {_why(d)} | "
                f"n={tr.n_measured} votes={share:.2f} sim={d.similarity:.3f} "
                f"ms={d.margin_student:.3f} mc={d.margin_cohort}"
            )
    return out, lines
