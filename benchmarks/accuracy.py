"""Per-minute attendance accuracy on generated meetings, and the realtime ratio.

    python benchmarks/accuracy.py [--quick] [--json out.json]

For several meetings (different seeds, 9 to 25 tiles, normal and heavy
compression) built from labelled photos (``ROLLCALL_FACES_DIR``, default
../shared/faces; enroll 3 photos per student, show the others, strangers
and absent students included) it renders the video (cached under
benchmarks/results/cache), enrolls, analyses with the configured pack, and
prints precision, recall, false-present minutes, absent students wrongly marked
and the realtime ratio (analysis wall time / recording length).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rollcall.config import load_config
from rollcall.enrollment.enroll import enroll_photos
from rollcall.pipeline.orchestrator import analyze_recording
from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.synthetic.evaluation import build_test_meeting, save_photos, score_report
from rollcall.synthetic.meeting import GroundTruth, render_meeting, truth_path_for

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache"
# (seed, students, absent, strangers, crf): tiles in the video = students - absent + strangers
MEETINGS = [
    (101, 8, 1, 2, 28),
    (102, 12, 2, 4, 28),
    (103, 16, 2, 6, 36),
    (104, 18, 2, 6, 28),  # 22 tiles
    (105, 19, 1, 5, 40),  # 23 tiles, heavy compression
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--faces", default=os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces")
    )
    ap.add_argument("--duration", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="only the first two meetings")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    rows = []
    for seed, n_students, n_absent, n_strangers, crf in MEETINGS[: 2 if args.quick else None]:
        meeting = build_test_meeting(
            Path(args.faces),
            seed=seed,
            n_students=n_students,
            n_absent=n_absent,
            n_strangers=n_strangers,
            duration_s=args.duration,
            crf=crf,
        )
        video = CACHE / f"meeting-{seed}-{n_students}-{n_strangers}-{crf}-{int(args.duration)}.mp4"
        if video.exists() and truth_path_for(video).exists():
            truth = GroundTruth.load(truth_path_for(video))
        else:
            truth = render_meeting(meeting.script, video)
        with tempfile.TemporaryDirectory() as tmp:
            db = storage.open_db(Path(tmp))
            storage.add_course(db, "BENCH", "benchmark")
            for student_id, images in meeting.enroll.items():
                paths = save_photos(images, Path(tmp) / student_id)
                enroll_photos(
                    db, pm, models.model_key, "BENCH", student_id, paths, config.enrollment
                )
            started = time.monotonic()
            outcome = analyze_recording(db, pm, models, config, video, "BENCH")
            wall = time.monotonic() - started
        report = meeting_report(db, outcome.meeting_id, rules=config.attendance)
        score = score_report(report, truth, config.attendance.min_seconds_per_minute)
        tiles = n_students - n_absent + n_strangers
        expected = truth.presence_matrix(config.attendance.min_seconds_per_minute)
        review = [
            (m in s.review_minutes, bool(expected.get(s.student_id, [0] * (m + 1))[m]))
            for s in report.students
            for m in range(len(s.minutes))
        ]
        rows.append(
            {
                "seed": seed,
                "tiles": tiles,
                "crf": crf,
                "precision": round(score.precision, 4),
                "recall": round(score.recall, 4),
                "f1": round(score.f1, 4),
                "false_present_minutes": score.false_present,
                "missed_minutes": score.missed,
                "absent_students_marked": score.absent_marked,
                # Needs-review minutes (counted as absent above) and how many were present.
                "review_minutes": sum(r for r, _ in review),
                "review_share": round(sum(r for r, _ in review) / max(len(review), 1), 4),
                "review_truly_present": sum(r and p for r, p in review),
                "realtime_ratio": round(wall / truth.duration_s, 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(f"\npack {models.pack_name}, threshold {models.match_threshold}")
    print(
        f"{'seed':>5} {'tiles':>5} {'crf':>4} {'precision':>9} {'recall':>7} {'F1':>6} "
        f"{'false+':>6} {'missed':>6} {'absent+':>7} {'review':>6} {'x realtime':>10}"
    )
    for r in rows:
        print(
            f"{r['seed']:>5} {r['tiles']:>5} {r['crf']:>4} {r['precision']:>9.3f} {r['recall']:>7.3f} "
            f"{r['f1']:>6.3f} {r['false_present_minutes']:>6} {r['missed_minutes']:>6} "
            f"{r['absent_students_marked']:>7} {r['review_minutes']:>6} {r['realtime_ratio']:>10.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
