"""Scaling out: class-hours analysed per wall-clock hour, one machine against workers.

    python benchmarks/cluster.py [--recordings 6] [--minutes 3] [--json out.json]

Run by hand, not in CI; needs ``redis-server`` on the PATH. The same batch of
gallery-view recordings (rendered once with the project's meeting generator,
cached under ``benchmarks/cache/cluster/``) is served by the test suite's fake
Zoom and announced to a fresh ``rollcall serve`` by webhook, all at once. Each
mode starts from the same enrolled data directory and is timed from the first
webhook until every job is done:

- ``local-1``: ``[analysis] workers = 1`` (today's default);
- ``local-2``: ``[analysis] workers = 2`` (two analysis processes);
- ``cluster-1``: ``[cluster]`` with one ``rollcall worker --concurrency 1``;
- ``cluster-2``: ``[cluster]`` with ``rollcall worker --concurrency 2`` (two worker
  processes, one core each, as ``local-2`` has).

Throughput is recording hours over wall hours. The broker path's overhead per
recording is (cluster-1 wall - local-1 wall) / recordings: both do the same
download and analysis one recording at a time; the difference is sending the
roster and settings, shipping the results back and the coordinator's polling.
Every worker runs on this machine (there is no second one here), so cluster-2
shows the scaling of the protocol, not of hardware: on N machines each worker
brings its own cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollcall.config import load_config  # noqa: E402
from rollcall.enrollment.enroll import enroll_photos  # noqa: E402
from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models  # noqa: E402
from rollcall.store import jobs, storage  # noqa: E402
from rollcall.synthetic.evaluation import build_test_meeting, save_photos  # noqa: E402
from rollcall.synthetic.meeting import render_meeting  # noqa: E402
from tests.fakezoom import (  # noqa: E402
    FakeFile,
    FakeMeeting,
    FakeRecordingFile,
    FakeZoomServer,
    FakeZoomState,
)
from tests.fakezoom.events import WebhookSender, recording_completed, recording_file  # noqa: E402
from tests.service_process import HOST_EMAIL, HOST_ID, fake_zoom_state  # noqa: E402
from tests.test_cluster import CLUSTER_SECRET, Redis, Worker  # noqa: E402
from tests.test_service import SECRET, Service, free_port, wait_for  # noqa: E402

CACHE = ROOT / "benchmarks" / "cache" / "cluster"


def recordings(faces_dir: Path, count: int, minutes: float) -> list[tuple[str, object, Path]]:
    """(course id, test meeting, video) for each recording, rendered once."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        meeting = build_test_meeting(
            faces_dir,
            seed=100 + i,
            n_students=8,
            n_absent=1,
            n_strangers=1,
            duration_s=minutes * 60,
            crf=30,
        )
        video = CACHE / f"class-{i}-{minutes:g}min.mp4"
        if not video.exists():
            render_meeting(meeting.script, video)
        out.append((f"BENCH{i}", meeting, video))
    return out


def enrolled_home(folder: Path, batch, config) -> Path:
    models = resolve_face_models(config, progress=False)
    pm = make_plugin_manager(config, models)
    home = folder / "template"
    db = storage.open_db(home)
    for course, meeting, _ in batch:
        storage.add_course(db, course, course)
        for student_id, images in meeting.enroll.items():
            paths = save_photos(images, folder / "photos" / course / student_id)
            enroll_photos(db, pm, models.model_key, course, student_id, paths, config.enrollment)
    db.conn.close()
    return home


def zoom_state(batch) -> FakeZoomState:
    from datetime import UTC, datetime

    state = fake_zoom_state(token_lifetime=2.0)
    for i, (course, _, video) in enumerate(batch):
        state.meetings.append(
            FakeMeeting(
                uuid=f"bench-{i}==",
                id=81234567000 + i,
                host_id=HOST_ID,
                topic=f"{course} class",
                start_time=datetime.now(UTC).replace(microsecond=0),
                duration=3,
                host_email=HOST_EMAIL,
                files=[FakeRecordingFile(f"file-{i}")],
            )
        )
        state.files[f"file-{i}"] = FakeFile(video)
    return state


async def announce(url: str, state: FakeZoomState, zoom: FakeZoomServer) -> None:
    async with WebhookSender(url, SECRET) as sender:
        for i, m in enumerate(state.meetings):
            size = Path(state.files[f"file-{i}"].path).stat().st_size
            files = [
                recording_file(
                    f"file-{i}", m.uuid, download_url=zoom.download_url(f"file-{i}"), file_size=size
                )
            ]
            body = recording_completed(
                m.uuid,
                m.id,
                topic=m.topic,
                host_email=m.host_email,
                files=files,
                download_token=m.download_access_token,
                start_time=m.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            for _ in range(30):  # as Zoom does, again after a 500 (database busy)
                statuses = [d.status for d in await sender.deliver(body, times=1)]
                if statuses == [200]:
                    break
                await asyncio.sleep(1.0)
            else:
                raise RuntimeError(f"webhook not accepted: {statuses}")


def done_count(home: Path) -> tuple[int, int]:
    db = storage.open_db(home)
    try:
        rows = jobs.list_jobs(db, limit=1000)
        return sum(j.state == jobs.DONE for j in rows), sum(j.state == jobs.FAILED for j in rows)
    finally:
        db.conn.close()


def run_mode(mode: str, batch, template: Path, work: Path, base_env: dict[str, str]) -> dict:
    home = work / mode / "home"
    shutil.copytree(template, home)
    state = zoom_state(batch)
    broker = workers = None
    with FakeZoomServer(state) as zoom:
        env = dict(
            os.environ,
            **base_env,
            ROLLCALL_HOME=str(home),
            ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN=SECRET,
            ROLLCALL_ZOOM_DOWNLOAD_HOSTS="127.0.0.1,localhost",
            ROLLCALL_ZOOM_COURSE_MAP=json.dumps(
                [{"course": c, "topics": [f"{c} class"]} for c, _, _ in batch]
            ),
            ROLLCALL_LOGGING_FORMAT="json",
        )
        if mode.startswith("local"):
            env["ROLLCALL_ANALYSIS_WORKERS"] = mode.split("-")[1]
        else:
            broker = Redis(work / mode / "redis").start()
            env.update(
                ROLLCALL_CLUSTER_BROKER_URL=broker.url,
                ROLLCALL_CLUSTER_SECRET=CLUSTER_SECRET,
                ROLLCALL_CLUSTER_MAX_IN_FLIGHT="4",
            )
            worker_env = {
                k: v
                for k, v in env.items()
                if not k.startswith(("ROLLCALL_ZOOM_", "ROLLCALL_HOME"))
            }
            # one `rollcall worker --concurrency N`: N processes, the cores shared out
            n = int(mode.split("-")[1])
            workers = [Worker(worker_env, "w", work / mode, concurrency=n)]
        service = Service(env, free_port(), work / mode / "service.log")
        try:
            for w in workers or []:
                w.start()
            service.start()
            started = time.monotonic()
            asyncio.run(announce(service.url("/zoom/webhook"), state, zoom))
            wait_for(
                lambda: sum(done_count(home)) == len(batch),
                3600,
                f"{mode}: every job done",
                work / mode / "service.log",
            )
            wall = time.monotonic() - started
        finally:
            service.stop()
            for w in workers or []:
                w.stop()
            if broker is not None:
                broker.stop()
    done, failed = done_count(home)
    hours = sum(_duration_s(video) for _, _, video in batch) / 3600
    return {
        "mode": mode,
        "recordings": len(batch),
        "done": done,
        "failed": failed,
        "wall_s": round(wall, 1),
        "class_hours_per_hour": round(hours / (wall / 3600), 1),
    }


def _duration_s(video: Path) -> float:
    from rollcall.pipeline.decode import probe

    return probe(video).duration_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument(
        "--modes", nargs="+", default=["local-1", "local-2", "cluster-1", "cluster-2"]
    )
    parser.add_argument("--json", type=Path, default=CACHE / "cluster.json")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed (apt-get install redis-server)")
    base_env = {
        "ROLLCALL_MODELS_DIR": os.environ.get(
            "ROLLCALL_MODELS_DIR", str(ROOT.parent / "shared" / "models")
        ),
        "ROLLCALL_MODELS_PACK": os.environ.get("ROLLCALL_MODELS_PACK", "lite"),
        "ROLLCALL_MODELS_ALLOW_DOWNLOAD": "false",
    }
    faces = Path(os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces"))
    config = load_config(None, base_env)
    batch = recordings(faces, args.recordings, args.minutes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rollcall-cluster-bench-") as tmp:
        work = Path(tmp)
        template = enrolled_home(work, batch, config)
        for mode in args.modes:
            rows.append(run_mode(mode, batch, template, work, base_env))
            print(json.dumps(rows[-1]), flush=True)
    by_mode = {r["mode"]: r for r in rows}
    overhead = None
    if "local-1" in by_mode and "cluster-1" in by_mode:
        overhead = round(
            (by_mode["cluster-1"]["wall_s"] - by_mode["local-1"]["wall_s"]) / len(batch), 2
        )
    print(f"\n{len(batch)} recordings of {args.minutes:g} min, {os.cpu_count()} cores")
    print(f"{'mode':<10} {'wall s':>8} {'class-h/h':>10} {'done':>5}")
    for r in rows:
        print(f"{r['mode']:<10} {r['wall_s']:>8} {r['class_hours_per_hour']:>10} {r['done']:>5}")
    if overhead is not None:
        print(f"broker path overhead per recording: {overhead} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "overhead_s_per_recording": overhead}, indent=2))


if __name__ == "__main__":
    main()
