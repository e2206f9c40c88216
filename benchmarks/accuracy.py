"""Per-minute attendance accuracy by condition on generated meetings.

    python benchmarks/accuracy.py [--duration 150] [--seeds 1] [--only masks,tiles] [--json out.json]
                                  [--breakdown [--breakdown]] [--tracks DIR]

One table: per-minute precision, recall, impostor-present minutes (a
student marked present in a minute they were not on screen at all) and
needs-review minutes (counted as not present; in brackets how many the
student really was on screen, and their share of all student-minutes) for
meetings that differ from a base meeting in one condition at a time; the run
ends with how rare review is over every row:

- tiles: 4, 9, 16 (base), 25 people on screen;
- webcam: every webcam good, every webcam poor (base: 30 % poor);
- compression: x264 CRF 23, 28 (base), 33, 38;
- occlusion: everyone in a mask (surgical or cloth), hands or microphones in
  front of the mouth now and then, and masks with enrollment's masked copies
  turned off (``--no-masked-enrollment`` turns them off everywhere);
- look-alikes: each absent student's most similar face from the pool sits in
  the class;
- schedule: late joins, camera-off stretches, drops and rejoins (the base
  meeting has everyone on camera the whole time);
- target: 25 tiles, poor webcams, CRF 33 and look-alikes of absent students.

People come from the held-out half of ``ROLLCALL_LFW_DIR`` (default
../shared/faces-lfw; see ``rollcall.synthetic.evaluation.lfw_part``), never
from the half ``benchmarks/calibrate.py`` tunes on: 3 enrollment photos per
student, the others shown, unenrolled strangers and absent students in every
meeting. Videos are cached under benchmarks/results/cache. The default run
(one seed, 150 s meetings) takes about 10-15 minutes on 2 cores; ``--seeds``
and ``--duration`` measure more. ``--breakdown`` adds where the needs-review
minutes come from (by condition, decision path and why; see
``benchmarks/decisions.py``); ``--tracks DIR`` keeps every meeting's tracks and,
on the next run, only re-decides them (for changes to ``TrackDecider``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decisions import Capture, replay, review_breakdown, save_capture

from rollcall.config import load_config
from rollcall.enrollment.enroll import enroll_photos
from rollcall.pipeline.orchestrator import analyze_recording
from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.synthetic.evaluation import (
    LookalikePool,
    Score,
    build_test_meeting,
    lfw_dir,
    load_lfw,
    save_photos,
    score_report,
)
from rollcall.synthetic.meeting import GroundTruth, render_meeting, truth_path_for

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache"

STAY = {"late_join_prob": 0.0, "leave_early_prob": 0.0, "rejoin_prob": 0.0, "camera_off_prob": 0.0}
BASE: dict[str, Any] = {
    "n_students": 14,
    "n_absent": 2,
    "n_strangers": 4,
    "crf": 28,
    "hard_fraction": 0.3,
    **STAY,
}


@dataclass(frozen=True)
class Condition:
    group: str
    label: str
    changes: dict[str, Any] = field(default_factory=dict)
    lookalikes: bool = False
    masked_enrollment: bool = True

    def options(self) -> dict[str, Any]:
        return {**BASE, **self.changes}


CONDITIONS = [
    Condition("tiles", "4", {"n_students": 4, "n_absent": 1, "n_strangers": 1}),
    Condition("tiles", "9", {"n_students": 8, "n_absent": 1, "n_strangers": 2}),
    Condition("tiles", "16 (base)"),
    Condition("tiles", "25", {"n_students": 22, "n_absent": 2, "n_strangers": 5}),
    Condition("webcam", "good", {"hard_fraction": 0.0}),
    Condition("webcam", "poor", {"hard_fraction": 1.0}),
    Condition("compression", "CRF 23", {"crf": 23}),
    Condition("compression", "CRF 33", {"crf": 33}),
    Condition("compression", "CRF 38", {"crf": 38}),
    Condition("occlusion", "masks", {"mask_share": 1.0}),
    Condition("occlusion", "masks, no masked enrollment", {"mask_share": 1.0}, False, False),
    Condition("occlusion", "hand or microphone", {"hand_share": 1.0}),
    Condition("look-alikes", "of absent students", {"n_absent": 4}, lookalikes=True),
    Condition(
        "schedule",
        "late join, camera off, rejoin",
        {"late_join_prob": 0.4, "rejoin_prob": 0.4, "camera_off_prob": 0.4},
    ),
    Condition(
        "target",
        "25 tiles, poor, CRF 33, look-alikes",
        {"n_students": 22, "n_absent": 3, "n_strangers": 3, "hard_fraction": 1.0, "crf": 33},
        lookalikes=True,
    ),
]


def _video_name(cond: Condition, seed: int, duration: float, faces: Path | None = None) -> str:
    """The cached video's name: the meeting's options, and the face set when it is not
    the default one (another set's meetings must not reuse faces-lfw's videos)."""
    spec_items: list[Any] = [cond.options(), cond.lookalikes, seed, duration]
    if faces is not None and Path(faces).resolve() != lfw_dir(ROOT).resolve():
        spec_items.append(str(Path(faces).resolve()))
    spec = json.dumps(spec_items, sort_keys=True)
    return f"cond-{hashlib.sha256(spec.encode()).hexdigest()[:12]}.mp4"


def run_condition(
    cond, seed, args, people, pool, config, models, pm, capture
) -> tuple[Score, float, Counter]:
    """Render (or reuse) one meeting, enroll, analyse, score; returns the score, the
    analysis wall time and where its needs-review minutes came from. With ``--tracks``
    a meeting analysed before is only decided again from its saved tracks."""
    masked = cond.masked_enrollment and not args.no_masked_enrollment
    saved = (
        Path(args.tracks)
        / f"{_video_name(cond, seed, args.duration, args.lfw)}-{int(masked)}.tracks.pkl"
    )
    if args.tracks and saved.exists():
        video = CACHE / _video_name(cond, seed, args.duration, args.lfw)
        truth = GroundTruth.load(truth_path_for(video))
        started = time.monotonic()
        captured, report = replay(saved, pm)
        return _scored(captured, report, truth, config, args, time.monotonic() - started)
    meeting = build_test_meeting(
        people,
        seed=seed,
        duration_s=args.duration,
        pm=pm,
        lookalikes=pool if cond.lookalikes else None,
        **cond.options(),
    )
    video = CACHE / _video_name(cond, seed, args.duration, args.lfw)
    if video.exists() and truth_path_for(video).exists():
        truth = GroundTruth.load(truth_path_for(video))
    else:
        truth = render_meeting(meeting.script, video)
    settings = config.enrollment.model_copy(update={"masked_copies": masked})
    with tempfile.TemporaryDirectory() as tmp:
        db = storage.open_db(Path(tmp))
        storage.add_course(db, "BENCH", "benchmark")
        for student_id, images in meeting.enroll.items():
            paths = save_photos(images, Path(tmp) / "photos" / student_id)
            enroll_photos(db, pm, models.model_key, "BENCH", student_id, paths, settings)
        started = time.monotonic()
        outcome = analyze_recording(db, pm, models, config, video, "BENCH")
        wall = time.monotonic() - started
        report = meeting_report(db, outcome.meeting_id, rules=config.attendance)
    if args.tracks:
        save_capture(capture.last, saved)
    return _scored(capture.last, report, truth, config, args, wall)


def _scored(captured, report, truth, config, args, wall) -> tuple[Score, float, Counter]:
    score = score_report(report, truth, config.attendance.min_seconds_per_minute)
    counts, lines = review_breakdown(captured, report, truth)
    if args.breakdown > 1:
        for line in lines:
            print("   ", line)
    return score, wall, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--lfw",
        type=Path,
        default=lfw_dir(ROOT),
        help="face set laid out as faces-lfw (people/<name>/*.jpg, strangers/<name>.jpg); "
        "its held-out half is used",
    )
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--seeds", type=int, default=1, help="meetings per condition")
    ap.add_argument("--only", default="", help="comma-separated groups (e.g. masks,tiles)")
    ap.add_argument("--no-masked-enrollment", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--breakdown",
        action="count",
        default=0,
        help="print where needs-review minutes come from (by decision path and why; "
        "twice: one line per minute)",
    )
    ap.add_argument(
        "--tracks",
        default="",
        help="folder keeping each meeting's tracks: a meeting found there is not analysed "
        "again, only its track decisions are re-run (for changes to the decision rule)",
    )
    args = ap.parse_args()
    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    capture = Capture()
    pm.register(capture, name=capture.name)
    people, strangers = load_lfw(args.lfw, "test")
    wanted = {g.strip() for g in args.only.split(",") if g.strip()}
    conditions = [c for c in CONDITIONS if not wanted or c.group in wanted]
    pool = None
    if any(c.lookalikes for c in conditions):
        pool = LookalikePool.build(pm, {**strangers, **{n: v[:2] for n, v in people.items()}})
    rows = []
    why: Counter = Counter()
    for cond in conditions:
        total: dict[str, float] = {}
        for k in range(args.seeds):
            score, wall, counts = run_condition(
                cond, 1000 + k, args, people, pool, config, models, pm, capture
            )
            why.update({(cond.group, cond.label, *key): n for key, n in counts.items()})
            for name in (
                "true_present",
                "false_present",
                "missed",
                "impostor_minutes",
                "review",
                "review_truly_present",
                "student_minutes",
            ):
                total[name] = total.get(name, 0) + getattr(score, name)
            total["wall"] = total.get("wall", 0.0) + wall
        tp, fp, fn = total["true_present"], total["false_present"], total["missed"]
        rows.append(
            {
                "group": cond.group,
                "condition": cond.label,
                "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
                "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
                "student_minutes": int(tp + fn),
                "false_present": int(fp),
                "impostor_minutes": int(total["impostor_minutes"]),
                # Needs-review minutes (counted as not present above), how many of them
                # the student was really on screen, and their share of all student-minutes.
                "review_minutes": int(total["review"]),
                "review_truly_present": int(total["review_truly_present"]),
                "review_share": round(total["review"] / max(total["student_minutes"], 1), 4),
                "all_student_minutes": int(total["student_minutes"]),
                "x_realtime": round(total["wall"] / (args.seeds * args.duration), 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(
        f"\npack {models.pack_name}, threshold {models.match_threshold}; {args.seeds} meeting(s) "
        f"of {args.duration:g} s per condition, held-out faces-lfw people"
    )
    print(
        f"| {'condition':<46} | precision | recall | minutes on screen | false present "
        "| impostor minutes | review (on screen) | review share |"
    )
    print(
        f"|{'-' * 48}|-----------|--------|-------------------|---------------|------------------|"
        "--------------------|--------------|"
    )
    for r in rows:
        name = f"{r['group']}: {r['condition']}"
        print(
            f"| {name:<46} | {r['precision']:>9.3f} | {r['recall']:>6.3f} | "
            f"{r['student_minutes']:>17} | {r['false_present']:>13} | {r['impostor_minutes']:>16} | "
            f"{r['review_minutes']:>10} ({r['review_truly_present']:>3}) | "
            f"{100 * r['review_share']:>11.1f}% |"
        )
    reviewed = sum(r["review_minutes"] for r in rows)
    minutes = sum(r["all_student_minutes"] for r in rows)
    print(
        f"\nhow rare is review: {reviewed} needs-review minutes of {minutes} student-minutes "
        f"({100 * reviewed / max(minutes, 1):.1f} %), "
        f"{sum(r['review_truly_present'] for r in rows)} of them truly present"
    )
    if args.breakdown:
        print_breakdown(why)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def print_breakdown(why: Counter) -> None:
    """Needs-review minutes by condition, decision path and why, on screen or not."""
    print("\nwhere needs-review minutes come from (condition, path, why: minutes on screen / not)")
    merged: dict[tuple, list[int]] = {}
    for (group, label, path, reason, on_screen), n in why.items():
        merged.setdefault((f"{group}: {label}", path, reason), [0, 0])[0 if on_screen else 1] += n
    for (cond, path, reason), (on, off) in sorted(merged.items()):
        print(f"  {cond:<46} {path:<9} {reason:<40} {on:>3} / {off}")
    by_why: Counter = Counter()
    for (_g, _l, path, reason, _s), n in why.items():
        by_why[(path, reason)] += n
    print("over all conditions:")
    for (path, reason), n in by_why.most_common():
        print(f"  {path:<9} {reason:<40} {n:>4}")


if __name__ == "__main__":
    main()
