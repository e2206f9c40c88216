"""Attendance plugin: per-minute presence and a status per enrolled student.

A student is present in a minute when the tracks attributed to them cover at
least ``[attendance] min_seconds_per_minute`` seconds of it (see
``rollcall.presence``). Gaps of up to ``[recognition] max_gap_s`` inside a track
are bridged: the face was on screen, the detector blinked.

Only *accepted* tracks make a minute present. A minute that would be present
only when the recognizer's borderline (*review*) tracks are counted too "needs
review": it is absent in the totals and shown apart in every report. Each
minute with any evidence gets a ``MinuteEvidence`` (samples, similarities,
margins, decision path) so an instructor can see why.
"""

from __future__ import annotations

import statistics

from rollcall import (
    MeetingContext,
    MinuteEvidence,
    Roster,
    StudentPresence,
    TrackDecision,
    TrackSummary,
    attendance_totals,
    hookimpl,
    present_minutes,
    seconds_per_minute,
    track_decisions,
)


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

    def presence_for(
        self,
        seconds: list[float],
        duration_s: float,
        index: int,
        loose_seconds: list[float] | None = None,
        evidence: tuple[MinuteEvidence, ...] = (),
    ) -> StudentPresence:
        minutes = present_minutes(seconds, duration_s, self.min_seconds_per_minute)
        loose = (
            present_minutes(loose_seconds, duration_s, self.min_seconds_per_minute)
            if loose_seconds is not None
            else minutes
        )
        review = tuple(int(b and not a) for a, b in zip(minutes, loose, strict=True))
        count, pct, status = attendance_totals(
            minutes,
            absent_below_pct=self.absent_below_pct,
            late_after_pct=self.late_after_pct,
            left_early_pct=self.left_early_pct,
        )
        return StudentPresence(
            review=review,
            evidence=evidence,
            student_index=index,
            seconds_seen=tuple(round(s, 2) for s in seconds),
            minutes=tuple(minutes),
            present_minutes=count,
            attendance_pct=pct,
            status=status,
        )

    @hookimpl
    def rollcall_finalize_meeting(
        self,
        meeting: MeetingContext,
        tracks: list[TrackSummary],
        identities: dict[int, int],
        roster: Roster,
    ) -> dict[str, list[StudentPresence]]:
        decisions = track_decisions(identities)
        by_student: dict[int, list[tuple[TrackSummary, TrackDecision]]] = {}
        for tr in tracks:
            if tr.track_id in decisions:
                d = decisions[tr.track_id]
                by_student.setdefault(d.student_index, []).append((tr, d))
        rows = []
        for index in range(len(roster)):
            mine = by_student.get(index, [])
            accepted = [tr.times for tr, d in mine if d.state == "accepted"]
            args = (meeting.duration_s, meeting.interval_s, self.max_gap_s)
            seconds = seconds_per_minute(accepted, *args)
            loose = seconds_per_minute([tr.times for tr, _ in mine], *args)
            row = self.presence_for(seconds, meeting.duration_s, index, loose)
            evidence = minute_evidence(mine, index, row.minutes, row.review)
            rows.append(self.presence_for(seconds, meeting.duration_s, index, loose, evidence))
        return {"attendance": rows}


def minute_evidence(
    mine: list[tuple[TrackSummary, TrackDecision]],
    student: int,
    minutes: tuple[int, ...],
    review: tuple[int, ...],
) -> tuple[MinuteEvidence, ...]:
    """Evidence for each present or needs-review minute of one student.

    A present minute is explained by its accepted tracks only; a needs-review
    minute by all of them. Similarities are the single samples' similarities to
    the student (samples that matched them, or whose nearest student they were).
    """
    out = []
    for minute, (present, doubt) in enumerate(zip(minutes, review, strict=True)):
        if not (present or doubt):
            continue
        lo, hi = 60.0 * minute, 60.0 * (minute + 1)
        deciding = [
            (tr, d)
            for tr, d in mine
            if (d.state == "accepted" or not present) and tr.first_t < hi and tr.last_t >= lo
        ]
        samples = [s for tr, _ in deciding for s in tr.samples if lo <= s[0] < hi]
        sims = [sim for _, matched, nearest, sim in samples if student in (matched, nearest)]
        cohort = [d.margin_cohort for _, d in deciding if d.margin_cohort is not None]
        out.append(
            MinuteEvidence(
                minute=minute,
                state="present" if present else "review",
                samples=len(samples),
                matched=sum(1 for s in samples if s[1] == student),
                best_similarity=round(max(sims), 4) if sims else None,
                median_similarity=round(statistics.median(sims), 4) if sims else None,
                margin_student=min((d.margin_student for _, d in deciding), default=0.0),
                margin_cohort=min(cohort) if cohort else None,
                path="+".join(sorted({d.path for _, d in deciding}, reverse=True)),
                tracks=tuple(tr.track_id for tr, _ in deciding),
                reason="; ".join(sorted({d.reason for _, d in deciding if d.reason})),
            )
        )
    return tuple(out)
