"""The presence rule: when is a student present in a minute, and what is their status.

The same functions decide presence for real analysis and for the synthetic
meeting generator's ground truth, so both speak exactly the same language.
"""

from __future__ import annotations

from collections.abc import Sequence

from rollcall.types import minutes_in


def minute_lengths(duration_s: float) -> list[float]:
    """Length in seconds of each minute of a recording (the last may be partial)."""
    n = minutes_in(duration_s)
    return [min(60.0, duration_s - 60.0 * i) for i in range(n)]


def present_minutes(
    seconds_seen: Sequence[float], duration_s: float, min_seconds_per_minute: float
) -> list[int]:
    """1 for each minute in which the student was seen long enough, else 0.

    A full minute needs ``min_seconds_per_minute`` seconds. A partial last minute
    needs the same share of its own length (30 s of 60 becomes 10 s of 20), so a
    short tail neither always counts nor never counts.
    """
    out = []
    for seen, length in zip(seconds_seen, minute_lengths(duration_s), strict=False):
        need = min_seconds_per_minute * (length / 60.0)
        out.append(1 if length > 0 and seen >= need - 1e-6 else 0)
    return out


def attendance_status(
    minutes: Sequence[int],
    *,
    absent_below_pct: float,
    late_after_pct: float,
    left_early_pct: float,
) -> str:
    """Classify a per-minute presence row.

    - ``absent``: attended less than ``absent_below_pct`` % of the minutes;
    - ``late``: first present minute starts more than ``late_after_pct`` % into the meeting;
    - ``left_early``: last present minute ends more than ``left_early_pct`` % before the end;
    - ``present`` otherwise. Late wins over left early.
    """
    n = len(minutes)
    if n == 0:
        return "absent"
    pct = 100.0 * sum(minutes) / n
    if sum(minutes) == 0 or pct < absent_below_pct:
        return "absent"
    first = minutes.index(1)
    last = n - 1 - list(reversed(minutes)).index(1)
    if 100.0 * first / n > late_after_pct:
        return "late"
    if 100.0 * (n - 1 - last) / n > left_early_pct:
        return "left_early"
    return "present"


def attendance_totals(
    minutes: Sequence[int],
    *,
    absent_below_pct: float,
    late_after_pct: float,
    left_early_pct: float,
) -> tuple[int, float, str]:
    """A per-minute presence row's totals: present minutes, attendance % (one decimal)
    and :func:`attendance_status` — what is stored beside the row and must follow it."""
    count = sum(minutes)
    pct = round(100.0 * count / len(minutes), 1) if len(minutes) else 0.0
    status = attendance_status(
        minutes,
        absent_below_pct=absent_below_pct,
        late_after_pct=late_after_pct,
        left_early_pct=left_early_pct,
    )
    return count, pct, status


def seconds_per_minute(
    times_list: list[list[float]], duration_s: float, interval_s: float, max_gap_s: float
) -> list[float]:
    """Seconds of each minute covered by observations at the given times.

    Each observation at time t covers [t, t + interval_s); a gap of at most
    ``max_gap_s`` between two observations of the same track is bridged (the
    face was there, the detector blinked). Overlapping coverage from several
    tracks counts once.
    """
    spans: list[tuple[float, float]] = []
    for times in times_list:
        if not times:
            continue
        start = prev = times[0]
        for t in times[1:]:
            if t - prev > max_gap_s + interval_s + 1e-6:
                spans.append((start, prev + interval_s))
                start = t
            prev = t
        spans.append((start, prev + interval_s))
    spans.sort()
    merged: list[list[float]] = []
    for s, e in spans:
        e = min(e, duration_s)
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        elif e > s:
            merged.append([s, e])
    n = minutes_in(duration_s)
    out = [0.0] * n
    for s, e in merged:
        m = int(s // 60)
        while m < n and s < e:
            end = min(e, 60.0 * (m + 1))
            out[m] += end - s
            s = end
            m += 1
    return out
