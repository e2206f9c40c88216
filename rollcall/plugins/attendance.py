"""Attendance plugin: per-minute presence and a status per enrolled student.

A student is present in a minute when the tracks attributed to them cover at
least ``[attendance] min_seconds_per_minute`` seconds of it (see
``rollcall.presence``). Gaps of up to ``[recognition] max_gap_s`` inside a track
are bridged: the face was on screen, the detector blinked.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollcall import (
    MeetingContext,
    Roster,
    TrackSummary,
    attendance_status,
    hookimpl,
    present_minutes,
    seconds_per_minute,
)


@dataclass(frozen=True, slots=True)
class StudentPresence:
    student_index: int  # roster index
    seconds_seen: tuple[float, ...]  # per minute
    minutes: tuple[int, ...]  # 0/1 per minute
    present_minutes: int
    attendance_pct: float
    status: str


class AttendancePlugin:
    name = "attendance"

    def __init__(
        self,
        *,
        min_seconds_per_minute: float,
        absent_below_pct: float,
        late_after_pct: float,
        left_early_pct: float,
        max_gap_s: float,
    ):
        self.min_seconds_per_minute = min_seconds_per_minute
        self.absent_below_pct = absent_below_pct
        self.late_after_pct = late_after_pct
        self.left_early_pct = left_early_pct
        self.max_gap_s = max_gap_s

    def presence_for(self, seconds: list[float], duration_s: float, index: int) -> StudentPresence:
        minutes = present_minutes(seconds, duration_s, self.min_seconds_per_minute)
        count = sum(minutes)
        return StudentPresence(
            student_index=index,
            seconds_seen=tuple(round(s, 2) for s in seconds),
            minutes=tuple(minutes),
            present_minutes=count,
            attendance_pct=round(100.0 * count / len(minutes), 1) if minutes else 0.0,
            status=attendance_status(
                minutes,
                absent_below_pct=self.absent_below_pct,
                late_after_pct=self.late_after_pct,
                left_early_pct=self.left_early_pct,
            ),
        )

    @hookimpl
    def rollcall_finalize_meeting(
        self,
        meeting: MeetingContext,
        tracks: list[TrackSummary],
        identities: dict[int, int],
        roster: Roster,
    ) -> dict[str, list[StudentPresence]]:
        times_by_student: dict[int, list[list[float]]] = {}
        for tr in tracks:
            if tr.track_id in identities:
                times_by_student.setdefault(identities[tr.track_id], []).append(tr.times)
        rows = []
        for index in range(len(roster)):
            seconds = seconds_per_minute(
                times_by_student.get(index, []),
                meeting.duration_s,
                meeting.interval_s,
                self.max_gap_s,
            )
            rows.append(self.presence_for(seconds, meeting.duration_s, index))
        return {"attendance": rows}
