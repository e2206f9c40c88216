"""Throughput: rollcall against decoding alone and against a naive pipeline.

    python benchmarks/throughput.py [--tiles 25 9 4] [--minutes 10 60] [--styles zoom busy]
    python benchmarks/throughput.py --generate-only --tiles 25 --minutes 60   # render the cache
    python benchmarks/throughput.py --tiles 25 --minutes 10 60 --styles zoom --repeat-from 10

Run by hand, not in CI. Gallery-view recordings (720p, 25 fps, GOP 250, with
joins, leaves and camera-off stretches) are rendered once with the project's
meeting generator from labelled photos (``ROLLCALL_FACES_DIR``; the six faces
of insightface's group photo are added as strangers when 24 people are not
enough) and cached under ``benchmarks/cache/`` (git-ignored). Two styles:

- ``zoom``: mostly still tiles with webcam noise (``synthetic.meeting.zoom_like``),
  like Zoom's own gallery recordings (those are about 170 kbit/s for 25 tiles
  at 720p; each recording's bitrate is printed beside that figure): 188 kbit/s
  for 25 tiles, 10 minutes (2026-12-02);
- ``busy``: the generator's default webcams (more head motion), the recordings
  of issue 7: 183 kbit/s for 25 tiles, 10 minutes.

For each recording three modes run on the same file, each in its own child
process (so that peak RSS and CPU time belong to that mode alone):

1. ``decode``: decoding the frames the pipeline needs and converting the
   sampled ones exactly as ``rollcall analyze`` does, nothing else;
2. ``naive``: insightface ``FaceAnalysis.get`` on every full sampled frame (1 s),
   recognition of every face, open-set matching, per-minute matrix;
3. ``rollcall``: ``rollcall analyze`` with the default settings (enrollment is
   done before the clock starts).

It prints wall time, CPU time, CPU seconds per class-hour (what a school pays
for), class-hours analysed per core-hour, peak RSS, the growth of RSS within
the analysis (last sixth against the second sixth), per-minute F1 and
impostor-present minutes (a student marked present in a minute they were not
on screen at all) against the ground truth and the ratios rollcall/decode and
naive/rollcall as a table, with the machine's load average, and writes the
same as JSON (default ``benchmarks/cache/throughput.json``).
``--variant NAME:KEY=VALUE[,KEY=VALUE]`` adds a ``rollcall`` run under those
environment variables (e.g. ``--variant int8:ROLLCALL_MODELS_PRECISION=int8``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollcall.synthetic.meeting import (  # noqa: E402
    ZOOM_GALLERY_KBIT_S,
    GroundTruth,
    MeetingScript,
    Participant,
    bitrate_kbit_s,
    load_faces_dir,
    participants_from_faces,
    random_script,
    render_meeting,
    truth_path_for,
    zoom_like,
)

CACHE = ROOT / "benchmarks" / "cache"
FPS = 25.0
GOP = 250
CRF = 28
SEED = 2026
COURSE = "BENCH"
MODES = ("decode", "naive", "rollcall")
STYLES = ("zoom", "busy")
ENROLL_PHOTOS = 3


# ------------------------------------------------------------------ recordings


def _group_photo_strangers(n: int) -> dict[str, list[np.ndarray]]:
    """Up to six extra people (never enrolled) from insightface's bundled group photo."""
    if n <= 0:
        return {}
    from rollcall.config import load_config
    from rollcall.pipeline.plugin_manager import resolve_face_models
    from rollcall.plugins.detector import DetectorPlugin
    from rollcall.synthetic.demo import bundled_group_photo
    from rollcall.synthetic.meeting import augment_photo, faces_from_group_photo

    models = resolve_face_models(load_config(None), progress=False)
    detector = DetectorPlugin(
        models.detector_path, threshold=0.5, min_face_px=16, max_side=1920, threads=0
    )
    image = cv2.imread(str(bundled_group_photo()))
    faces = sorted(detector.detect(image), key=lambda f: float(f.bbox[0]))[:n]
    crops = faces_from_group_photo(image, [f.bbox for f in faces])
    rng = np.random.default_rng(SEED)
    return {
        f"Guest_{i + 1}": [augment_photo(c, rng, strength=0.8) for _ in range(3)]
        for i, c in enumerate(crops)
    }


def build_meeting(
    faces_dir: Path, tiles: int, minutes: int, style: str = "busy"
) -> tuple[MeetingScript, dict]:
    """A ``tiles``-participant meeting and the enrollment photos of its students.

    Two enrolled students (one for small meetings) never join; about one
    participant in six is a stranger. ``style`` "zoom" makes the webcams
    :func:`zoom_like`; the schedule and the people are the same for both styles.
    """
    faces = load_faces_dir(faces_dir)
    rng = np.random.default_rng([SEED, tiles])
    people = [p for p in rng.permutation(sorted(faces)) if len(faces[p]) > ENROLL_PHOTOS]
    n_absent = 2 if tiles >= 9 else 1
    n_strangers = max(1, tiles // 6)
    n_students = tiles - n_strangers + n_absent
    extra = max(0, n_students + n_strangers - len(people))
    n_strangers_here = n_strangers - extra
    students = people[:n_students]
    strangers = people[n_students : n_students + n_strangers_here]
    enroll, shown = {}, {}
    for person in students:
        order = rng.permutation(len(faces[person]))
        enroll[person] = [faces[person][i] for i in order[:ENROLL_PHOTOS]]
        shown[person] = [faces[person][i] for i in order[ENROLL_PHOTOS:]]
    for person in strangers:
        shown[person] = list(faces[person])
    shown.update(_group_photo_strangers(extra))
    absent = set(students[:n_absent])
    in_video = {p: imgs for p, imgs in shown.items() if p not in absent}
    participants: list[Participant] = participants_from_faces(in_video, seed=SEED + tiles)
    if style == "zoom":
        participants = zoom_like(participants)
    script = random_script(
        participants,
        duration_s=60.0 * minutes,
        seed=SEED + tiles,
        fps=FPS,
        gop=GOP,
        crf=CRF,
        title=f"Throughput {tiles} tiles {minutes} min {style}",
    )
    return script, enroll


def recording_path(tiles: int, minutes: int, style: str) -> Path:
    suffix = "" if style == "busy" else f"-{style}"  # busy keeps issue 7's file names
    return CACHE / f"gallery-{tiles}t-{minutes}m{suffix}.mp4"


def recording(
    faces_dir: Path, tiles: int, minutes: int, style: str = "busy"
) -> tuple[Path, GroundTruth, dict]:
    """The case's recording: rendered, or with ``--repeat-from M`` (kept for the child
    processes in ``ROLLCALL_BENCH_REPEAT_FROM``) one of M minutes played again until it
    is ``minutes`` long."""
    base = int(os.environ.get("ROLLCALL_BENCH_REPEAT_FROM") or 0)
    if base and minutes > base:
        return repeated_recording(faces_dir, tiles, minutes, style, base)
    return rendered_recording(faces_dir, tiles, minutes, style)


def rendered_recording(
    faces_dir: Path, tiles: int, minutes: int, style: str = "busy"
) -> tuple[Path, GroundTruth, dict]:
    """The cached recording (rendered on first use), its truth and enrollment photos."""
    script, enroll = build_meeting(faces_dir, tiles, minutes, style)
    video = recording_path(tiles, minutes, style)
    if video.exists() and truth_path_for(video).exists():
        truth = GroundTruth.load(truth_path_for(video))
    else:
        started = time.monotonic()
        print(f"rendering {video.name} ...", flush=True)
        truth = render_meeting(script, video)
        print(f"rendered {video.name} in {time.monotonic() - started:.0f} s", flush=True)
    return video, truth, enroll


def repeated_recording(
    faces_dir: Path, tiles: int, minutes: int, style: str, base_minutes: int
) -> tuple[Path, GroundTruth, dict]:
    """A ``minutes``-long recording made of the ``base_minutes`` one played again and
    again (stream copy, timestamps shifted; truth shifted alike), for lengths whose
    render would take hours. The same people and schedule repeat: what it measures is
    cost and memory against length, not accuracy on new situations."""
    times, rest = divmod(minutes, base_minutes)
    if rest or times < 2:
        raise SystemExit(f"--repeat-from {base_minutes}: {minutes} is not a multiple of it")
    base, truth, enroll = rendered_recording(faces_dir, tiles, base_minutes, style)
    video = recording_path(tiles, minutes, style).with_name(
        recording_path(tiles, minutes, style).stem + f"-x{times}.mp4"
    )
    span = truth.duration_s
    if not (video.exists() and truth_path_for(video).exists()):
        import av

        with av.open(str(base)) as src, av.open(str(video), "w") as dst:
            in_stream = src.streams.video[0]
            out_stream = dst.add_stream_from_template(in_stream)
            step = int(round(span / in_stream.time_base))
            for k in range(times):
                src.seek(0)
                for packet in src.demux(in_stream):
                    if packet.dts is None:
                        continue
                    packet.pts += k * step
                    packet.dts += k * step
                    packet.stream = out_stream
                    dst.mux(packet)
        people = [
            dataclasses.replace(
                p,
                visible_seconds_per_minute=list(p.visible_seconds_per_minute) * times,
                connected_seconds_per_minute=list(p.connected_seconds_per_minute) * times,
                connected=_shifted(p.connected, span, times),
                camera_off=_shifted(p.camera_off, span, times),
                visible=_shifted(p.visible, span, times),
                occlusions=[
                    {**o, "start": o["start"] + k * span, "end": o["end"] + k * span}
                    for k in range(times)
                    for o in p.occlusions
                ],
            )
            for p in truth.participants
        ]
        dataclasses.replace(
            truth,
            duration_s=span * times,
            n_frames=truth.n_frames * times,
            participants=people,
            video=video.name,
        ).save(truth_path_for(video))
    return video, GroundTruth.load(truth_path_for(video)), enroll


def _shifted(spans, span: float, times: int) -> list:
    return [(a + k * span, b + k * span) for k in range(times) for a, b in spans]


def describe(video: Path, truth: GroundTruth) -> str:
    kbit = bitrate_kbit_s(video, truth.duration_s)
    return (
        f"{video.name}: {kbit:.0f} kbit/s "
        f"({kbit / ZOOM_GALLERY_KBIT_S:.2f}x Zoom's ~{ZOOM_GALLERY_KBIT_S:.0f} kbit/s)"
    )


# ------------------------------------------------------------------ modes (child processes)


def _usage() -> tuple[float, float]:
    """(CPU seconds used so far by this process, peak RSS in MB)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def _enroll(home: Path, enroll: dict) -> None:
    from rollcall.cli.main import main as cli
    from rollcall.synthetic.evaluation import save_photos

    assert cli(["course", "add", COURSE, "--title", "throughput"]) == 0
    for student_id, images in enroll.items():
        paths = save_photos(images, home / "photos" / student_id)
        assert cli(["student", "add", COURSE, student_id, *map(str, paths)]) == 0


class GateStatsLog(logging.Handler):
    """Keeps the fast path's counters from the orchestrator's "meeting analysed" line."""

    KEYS = ("tiles_analysed", "tiles_reused", "windowed", "faces_embedded", "faces_reused")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.stats: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "meeting analysed":
            self.stats = {k: getattr(record, k) for k in self.KEYS if hasattr(record, k)}


def _scored(wall: float, cpu: float, score) -> dict:
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "f1": score.f1,
        "impostor_minutes": score.impostor_minutes,
        "score": score.__dict__,
    }


def run_decode(
    video: Path, truth: GroundTruth, enroll: dict, home: Path, rss: RssWatch | None = None
) -> dict:
    from rollcall.config import load_config
    from rollcall.pipeline.decode import sample_frames

    interval = load_config(None).analysis.interval_s
    n = 0
    for _frame in sample_frames(video, interval):
        n += 1
    return {"samples": n}


def run_rollcall(
    video: Path, truth: GroundTruth, enroll: dict, home: Path, rss: RssWatch | None = None
) -> dict:
    """``rollcall analyze`` (the CLI, default settings); only the analysis is timed, and
    RSS growth is measured over the analysis alone (enrollment loads models too)."""
    from rollcall.cli.main import main as cli
    from rollcall.config import load_config
    from rollcall.reports.results import meeting_report
    from rollcall.store import storage
    from rollcall.synthetic.evaluation import score_report

    _enroll(home, enroll)
    gate = GateStatsLog()
    logging.getLogger("rollcall.pipeline.orchestrator").addHandler(gate)
    if rss is not None:
        rss.restart()
    started, cpu0 = time.monotonic(), _usage()[0]
    args = ["analyze", str(video), "--course", COURSE, "--out", str(home / "report")]
    assert cli(args) == 0
    wall, cpu = time.monotonic() - started, _usage()[0] - cpu0
    db = storage.open_db(home)
    meeting_id = storage.list_meetings(db, COURSE)[0]["id"]
    config = load_config(None)
    score = score_report(
        meeting_report(db, meeting_id), truth, config.attendance.min_seconds_per_minute
    )
    return {**_scored(wall, cpu, score), "gate": gate.stats}


def run_naive(
    video: Path, truth: GroundTruth, enroll: dict, home: Path, rss: RssWatch | None = None
) -> dict:
    """insightface FaceAnalysis.get on every sampled frame, every face recognised."""
    from insightface.app import FaceAnalysis

    from rollcall.config import load_config
    from rollcall.pipeline.decode import sample_frames
    from rollcall.pipeline.plugin_manager import resolve_face_models
    from rollcall.plugins.recognizer import match_open_set, normalise
    from rollcall.synthetic.evaluation import score_report
    from rollcall.types import AttendanceReport, StudentAttendance

    config = load_config(None)
    models = resolve_face_models(config, progress=False)
    started, cpu0 = time.monotonic(), _usage()[0]
    app = FaceAnalysis(
        name=str(models.detector_path.parent),
        providers=["CPUExecutionProvider"],
        allowed_modules=["detection", "recognition"],
    )
    app.prepare(ctx_id=-1, det_size=(640, 640))
    ids = sorted(enroll)
    templates = []
    for student_id in ids:
        embs = []
        for image in enroll[student_id]:
            faces = app.get(image)
            if faces:
                embs.append(max(faces, key=lambda f: f.det_score).normed_embedding)
        templates.append(normalise(np.mean(embs, axis=0)) if embs else np.zeros(128))
    templates = np.stack(templates).astype(np.float32)
    interval = config.analysis.interval_s
    n_min = max(1, int(np.ceil(truth.duration_s / 60 - 1e-9)))
    seen = np.zeros((len(ids), n_min))
    for frame in sample_frames(video, interval):
        faces = app.get(frame.image)
        if not faces:
            continue
        embeddings = np.stack([f.normed_embedding for f in faces]).astype(np.float32)
        for m in match_open_set(embeddings, templates, models.match_threshold):
            if m.student_index >= 0:
                seen[m.student_index, min(int(frame.t // 60), n_min - 1)] += interval
    wall, cpu = time.monotonic() - started, _usage()[0] - cpu0
    need = config.attendance.min_seconds_per_minute
    lengths = [min(60.0, truth.duration_s - 60 * m) for m in range(n_min)]
    students = tuple(
        StudentAttendance(
            student_id=sid,
            name=sid,
            minutes=tuple(int(seen[i, m] >= need * lengths[m] / 60.0 - 1e-6) for m in range(n_min)),
            present_minutes=0,
            attendance_pct=0.0,
            status="present",
        )
        for i, sid in enumerate(ids)
    )
    report = AttendanceReport(COURSE, "naive", None, truth.duration_s, students)
    score = score_report(report, truth, need)
    return _scored(wall, cpu, score)


class RssWatch:
    """Samples this process's current RSS every second while the measurement runs.

    ``growth_pct`` compares the largest RSS of the last sixth of the run with the
    largest of its second sixth (after models and buffers are warm): memory that
    grows with the recording's length shows here within one run, whatever the
    content of two different recordings does to their peaks.
    """

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(1.0):
            with open("/proc/self/statm") as fh:
                self.samples.append(int(fh.read().split()[1]) * page / 2**20)

    def restart(self) -> None:
        """Forget the samples so far: growth is measured from here on."""
        self.samples = []

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def growth_pct(self) -> float | None:
        n = len(self.samples)
        if n < 12:
            return None
        warm = max(self.samples[n // 6 : 2 * n // 6])
        return round(100.0 * (max(self.samples[5 * n // 6 :]) - warm) / warm, 1)


RUNNERS = {"decode": run_decode, "naive": run_naive, "rollcall": run_rollcall}


def child(mode: str, faces: Path, tiles: int, minutes: int, style: str) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    video, truth, enroll = recording(faces, tiles, minutes, style)
    runner = RUNNERS[mode.split("[")[0]]
    with tempfile.TemporaryDirectory() as tmp, RssWatch() as rss:
        home = Path(tmp)
        os.environ["ROLLCALL_HOME"] = str(home)
        started, cpu0 = time.monotonic(), _usage()[0]
        result = runner(video, truth, enroll, home, rss)
        result.setdefault("wall_s", time.monotonic() - started)
        result.setdefault("cpu_s", _usage()[0] - cpu0)
    result["peak_rss_mb"] = _usage()[1]
    result["rss_growth_pct"] = rss.growth_pct()
    result.update(
        mode=mode,
        tiles=tiles,
        minutes=minutes,
        style=style,
        duration_s=truth.duration_s,
        kbit_s=bitrate_kbit_s(video, truth.duration_s),
    )
    print("RESULT " + json.dumps(result), flush=True)


def measure(
    mode: str, faces: Path, tiles: int, minutes: int, style: str, env: dict[str, str]
) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--faces", str(faces)]
    cmd += ["--tiles", str(tiles), "--minutes", str(minutes), "--styles", style]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{mode} {tiles}t {minutes}m {style} failed:\n{proc.stderr[-3000:]}")


def per_class_hour(r: dict) -> tuple[float, float]:
    """(CPU seconds per class-hour, class-hours analysed per core-hour)."""
    hours = r["duration_s"] / 3600.0
    return r["cpu_s"] / hours, r["duration_s"] / max(r["cpu_s"], 1e-9)


def table(rows: list[dict]) -> str:
    head = (
        f"{'recording':<19} {'mode':<14} {'wall s':>7} {'cpu s':>7} {'cpu s/h':>7} "
        f"{'h/core-h':>8} {'peak MB':>7} {'F1':>6} {'imp min':>7} {'vs decode':>9} "
        f"{'naive/rc':>8} {'RSS grow':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        f1 = f"{r['f1']:.3f}" if r.get("f1") is not None else "-"
        imp = str(r["impostor_minutes"]) if r.get("impostor_minutes") is not None else "-"
        ratio = f"{r['vs_decode']:.2f}" if r.get("vs_decode") else "-"
        speed = f"{r['naive_over_rollcall']:.1f}" if r.get("naive_over_rollcall") else "-"
        grow = f"{r['rss_growth_pct']:+.1f}%" if r.get("rss_growth_pct") is not None else "-"
        cpu_h, class_h = per_class_hour(r)
        name = f"{r['tiles']}t {r['minutes']}m {r['style']} {r['kbit_s']:.0f}k"
        lines.append(
            f"{name:<19} {r['mode']:<14} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} {cpu_h:>7.0f} "
            f"{class_h:>8.1f} {r['peak_rss_mb']:>7.0f} {f1:>6} {imp:>7} {ratio:>9} "
            f"{speed:>8} {grow:>8}"
        )
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` -> (``rollcall[NAME]``, environment)."""
    name, _, assignments = text.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if a)
    return f"rollcall[{name}]", env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--faces", default=os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces")
    )
    ap.add_argument("--tiles", type=int, nargs="+", default=[25, 9, 4])
    ap.add_argument("--minutes", type=int, nargs="+", default=[10, 60])
    ap.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:KEY=VALUE,... another rollcall run under these environment variables",
    )
    ap.add_argument("--json", type=Path, default=CACHE / "throughput.json")
    ap.add_argument(
        "--naive-max-minutes",
        type=int,
        default=10,
        help="run the (slow) naive mode only on recordings up to this long",
    )
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument(
        "--repeat-from",
        type=int,
        default=0,
        metavar="M",
        help="make longer recordings from the M-minute one played again (stream copy) "
        "instead of rendering them (a 60-minute render takes over an hour)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    faces = Path(args.faces)
    if args.repeat_from:
        os.environ["ROLLCALL_BENCH_REPEAT_FROM"] = str(args.repeat_from)
    if args.child:
        child(args.child, faces, args.tiles[0], args.minutes[0], args.styles[0])
        return
    cases = [(m, t, s) for m in args.minutes for s in args.styles for t in args.tiles]
    for minutes, tiles, style in cases:
        video, truth, _ = recording(faces, tiles, minutes, style)
        print(describe(video, truth), flush=True)
    if args.generate_only:
        return
    runs = [(mode, {}) for mode in args.modes] + [parse_variant(v) for v in args.variant]
    rows = []
    for minutes, tiles, style in cases:
        got = {}
        for mode, env in runs:
            if mode == "naive" and minutes > args.naive_max_minutes:
                continue
            got[mode] = measure(mode, faces, tiles, minutes, style, env)
            print(json.dumps(got[mode]), flush=True)
        for mode, r in got.items():
            if not mode.startswith("rollcall"):
                continue
            if "decode" in got:
                r["vs_decode"] = r["wall_s"] / got["decode"]["wall_s"]
            if "naive" in got:
                r["naive_over_rollcall"] = got["naive"]["wall_s"] / r["wall_s"]
        rows.extend(got.values())
    print()
    print(table(rows))
    for r in rows:
        if r.get("gate"):
            g = r["gate"]
            print(
                f"{r['tiles']}t {r['minutes']}m {r['style']} {r['mode']}: tiles analysed "
                f"{g.get('tiles_analysed')} ({g.get('windowed')} in a window around the face), "
                f"reused {g.get('tiles_reused')}; faces embedded "
                f"{g.get('faces_embedded')}, reused {g.get('faces_reused')}"
            )
    load = os.getloadavg()
    print(
        f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} cores (cpu s/h: CPU seconds per class-hour; "
        "h/core-h: class-hours per core-hour; imp min: impostor-present minutes)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
