"""End to end: a meeting rendered from ../shared/faces, analysed by the real CLI.

Students are enrolled from some of their photos and shown in the video with
*other* photos through cheap-webcam filters and x264 compression; strangers who
are not enrolled join too, and two enrolled students never come. The stored
per-minute matrix is compared with the generator's ground truth.
"""

from __future__ import annotations

import csv
import os

import pytest

from rollcall.cli.main import main
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.synthetic.evaluation import build_test_meeting, save_photos, score_report
from rollcall.synthetic.meeting import render_meeting

COURSE = "E2E"
SEED = 11
START = "2026-09-01T09:00"


@pytest.fixture(scope="session")
def e2e(tmp_path_factory, faces_dir, base_env):
    work = tmp_path_factory.mktemp("e2e")
    meeting = build_test_meeting(
        faces_dir, seed=SEED, n_students=12, n_absent=2, n_strangers=4, duration_s=240.0, crf=30
    )
    video = work / "class.mp4"
    truth = render_meeting(meeting.script, video)
    env = dict(base_env, ROLLCALL_HOME=str(work / "home"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["course", "add", COURSE, "--title", "End to end"]) == 0
        for student_id, images in meeting.enroll.items():
            paths = save_photos(images, work / "photos" / student_id)
            assert main(["student", "add", COURSE, student_id, *map(str, paths)]) == 0
        out = work / "report"
        assert (
            main(["analyze", str(video), "--course", COURSE, "--out", str(out), "--start", START])
            == 0
        )
    db = storage.open_db(work / "home")
    meeting_id = storage.list_meetings(db, COURSE)[0]["id"]
    return {
        "work": work,
        "env": env,
        "video": video,
        "truth": truth,
        "meeting": meeting,
        "db": db,
        "meeting_id": meeting_id,
        "out": out,
    }


@pytest.fixture
def e2e_env(e2e, monkeypatch):
    for key, value in e2e["env"].items():
        monkeypatch.setenv(key, value)
    return e2e


def test_per_minute_accuracy_against_ground_truth(e2e, config):
    report = meeting_report(e2e["db"], e2e["meeting_id"])
    score = score_report(report, e2e["truth"], config.attendance.min_seconds_per_minute)
    print(f"per-minute precision {score.precision:.3f} recall {score.recall:.3f} {score}")
    assert score.precision >= 0.99
    assert score.recall >= 0.95
    assert score.absent_marked == 0
    ids = {row.student_id for row in report.students}
    assert not ids & set(e2e["meeting"].strangers)  # strangers are never students
    assert report.unknown_clusters >= 1  # the strangers were seen, as unknown faces


def test_csv_and_xlsx_reports(e2e):
    with open(e2e["out"] / "attendance.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[:2] == ["student_id", "name"]
    assert header[2:6] == ["09:00", "09:01", "09:02", "09:03"]
    assert header[6:] == ["present_minutes", "attendance_pct", "status"]
    assert len(rows) == 1 + 12
    for row in rows[1:]:
        assert set(row[2:6]) <= {"0", "1"}
        assert int(row[6]) == sum(int(v) for v in row[2:6])
    assert (e2e["out"] / "attendance.xlsx").stat().st_size > 5000
    assert (e2e["out"] / "attendance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory, faces_dir):
    """A 30-second, four-person meeting: cheap to analyse twice."""
    from rollcall.synthetic.meeting import MeetingScript, load_faces_dir, participants_from_faces

    faces = load_faces_dir(faces_dir)
    people = {n: faces[n][3:] for n in ("Hu_Jintao", "Yao_Ming", "Norah_Jones", "Tony_Blair")}
    script = MeetingScript(
        duration_s=30.0, participants=tuple(participants_from_faces(people, seed=3)), fps=5, seed=3
    )
    video = tmp_path_factory.mktemp("short") / "short.mp4"
    render_meeting(script, video)
    return video


def test_reanalysis_replaces_results_without_duplicates(e2e_env, short_clip, capsys):
    db = e2e_env["db"]
    counts = []
    for _ in range(2):
        assert (
            main(
                [
                    "analyze",
                    str(short_clip),
                    "--course",
                    COURSE,
                    "--out",
                    str(e2e_env["work"] / "short"),
                ]
            )
            == 0
        )
        counts.append(
            (
                db["presence"].count,
                db["attendance"].count,
                db["unknown_clusters"].count,
                db["meetings"].count,
            )
        )
    assert counts[0] == counts[1]
    assert "present" in capsys.readouterr().out


def test_reanalysis_keeps_title_start_and_unknown_face_labels(e2e_env, short_clip, capsys):
    """Analysing a recording again without --title/--start keeps what was given the
    first time, says which meeting is replaced, and keeps the unknown-face labels on
    the matching clusters (with the minutes they credit). Its own course, so the
    short clip's meeting of the other tests is not touched."""
    db, work = e2e_env["db"], e2e_env["work"]
    course = "REAN"
    clip_people = {"Hu_Jintao", "Yao_Ming", "Norah_Jones", "Tony_Blair"}
    student = next(s for s in e2e_env["meeting"].enroll if s not in clip_people)
    photos = sorted((work / "photos" / student).iterdir())
    assert main(["course", "add", course, "--title", "Re-analysis"]) == 0
    assert main(["student", "add", course, student, *map(str, photos)]) == 0
    out = str(work / "rean")
    args = ["analyze", str(short_clip), "--course", course, "--out", out]
    assert main([*args, "--title", "Week 3", "--start", "2026-09-03T10:00"]) == 0
    first = storage.list_meetings(db, course)[0]
    meeting_id = first["id"]
    clusters = storage.unknown_clusters(db, meeting_id)
    assert clusters  # the four people of the clip are strangers to this course
    biggest = max(clusters, key=lambda c: sum(c["seconds_by_minute"]))
    cluster = str(biggest["cluster_no"])
    assert main(["unknown", "label", str(meeting_id), cluster, student, "--by", "prof"]) == 0
    credited = {r.student_id: r for r in meeting_report(db, meeting_id).students}[student]
    assert credited.present_minutes >= 1
    capsys.readouterr()

    assert main(args) == 0  # again, without --title and --start
    text = " ".join(capsys.readouterr().out.split())
    assert f"meeting {meeting_id} (Week 3) was analysed from this recording before" in text
    assert "results are being replaced" in text
    assert "unknown-face labels: 1 kept" in text
    again = storage.get_meeting(db, meeting_id)
    assert again["title"] == "Week 3"
    assert again["start_time"] == first["start_time"] == "2026-09-03T10:00:00"
    assert [m["id"] for m in storage.list_meetings(db, course)] == [meeting_id]
    labelled = [c for c in storage.unknown_clusters(db, meeting_id) if c["label_student_pk"]]
    assert len(labelled) == 1 and labelled[0]["labeled_by"] == "prof"
    assert sum(labelled[0]["seconds_by_minute"]) == pytest.approx(
        sum(biggest["seconds_by_minute"]), rel=0.05
    )
    row = {r.student_id: r for r in meeting_report(db, meeting_id).students}[student]
    assert row.present_minutes == credited.present_minutes
    # a title given anew wins
    assert main([*args, "--title", "Week 3 (repeat)"]) == 0
    assert storage.get_meeting(db, meeting_id)["title"] == "Week 3 (repeat)"


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_bad_recording_fails_clearly_and_keeps_stored_data(e2e_env, capsys, kind):
    db = e2e_env["db"]
    bad = e2e_env["work"] / f"bad-{kind}.mp4"
    if kind == "text":
        bad.write_text("<html>Zoom says: access denied</html>")
    else:
        data = e2e_env["video"].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    before = db["presence"].count
    assert main(["analyze", str(bad), "--course", COURSE]) == 1
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert "error:" in text and str(bad.name) in text
    assert "Traceback" not in text
    assert db["presence"].count == before
    failed = [m for m in storage.list_meetings(db, COURSE) if m["status"] == "failed"]
    assert failed and failed[-1]["error"]


def test_unknown_clusters_can_be_listed_and_labelled(e2e_env, capsys):
    db, meeting_id = e2e_env["db"], e2e_env["meeting_id"]
    assert main(["unknown", "list", str(meeting_id)]) == 0
    clusters = storage.unknown_clusters(db, meeting_id)
    assert clusters and all(len(c["centroid"]) % 4 == 0 for c in clusters)
    assert "image" not in clusters[0]  # embeddings only, never pixels
    biggest = max(clusters, key=lambda c: sum(c["seconds_by_minute"]))
    absent = e2e_env["meeting"].students[0]  # one of the enrolled students who never came
    assert (
        main(["unknown", "label", str(meeting_id), str(biggest["cluster_no"]), absent, "--enroll"])
        == 0
    )
    assert "labelled" in capsys.readouterr().out
    row = {r.student_id: r for r in meeting_report(db, meeting_id).students}[absent]
    assert row.present_minutes >= 1
    pk = storage.get_student(db, COURSE, absent)["id"]
    assert db["embeddings"].count_where("student_pk = ? and photo_id is null", [pk]) == 1


def test_no_pixels_are_kept_unless_an_admin_asks(e2e_env, short_clip, monkeypatch, capsys):
    home = e2e_env["work"] / "home"
    assert not (home / "evidence").exists()  # default: nothing but numbers and embeddings
    monkeypatch.setenv("ROLLCALL_PRIVACY_STORE_FRAMES", "true")
    monkeypatch.setenv("ROLLCALL_PRIVACY_STORE_FACE_CROPS", "yes")
    assert (
        main(["analyze", str(short_clip), "--course", COURSE, "--out", str(e2e_env["work"] / "ev")])
        == 0
    )
    db = e2e_env["db"]
    meeting = [m for m in storage.list_meetings(db, COURSE) if m["title"] == "short"][0]
    folder = home / "evidence" / str(meeting["id"])
    assert sorted(p.name for p in folder.glob("frame-*.jpg")) == ["frame-0000.jpg"]
    clusters = storage.unknown_clusters(db, meeting["id"])
    assert len(list(folder.glob("unknown-*.jpg"))) == len(clusters)


def test_analyzer_sheets_appear_only_when_enabled(e2e_env, short_clip, capsys):
    from openpyxl import load_workbook

    sheets = load_workbook(e2e_env["out"] / "attendance.xlsx").sheetnames
    assert sheets == ["Attendance", "Summary"]  # analyzers are off by default
    assert main(["plugins", "enable", "engagement", "--course", COURSE]) != 0  # needs --yes
    assert "--yes" in out_of_text(capsys)
    assert main(["plugins", "enable", "engagement", "--course", COURSE, "--yes"]) == 0
    assert main(["plugins", "enable", "emotion", "--course", COURSE, "--yes"]) == 0
    out = e2e_env["work"] / "with-analyzers"
    try:
        assert main(["analyze", str(short_clip), "--course", COURSE, "--out", str(out)]) == 0
    finally:
        for name in ("engagement", "emotion"):
            assert main(["plugins", "disable", name, "--course", COURSE]) == 0
    sheets = load_workbook(out / "attendance.xlsx").sheetnames
    assert "Engagement per minute" in sheets and "Emotion per minute" in sheets


def out_of_text(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_worker_processes_analyse_recordings_in_parallel(e2e_env, short_clip):
    """[analysis] workers = 2: two recordings go to two processes, each with its own models."""
    import asyncio

    from rollcall.config import load_config
    from rollcall.service.pool import AnalysisPool, config_for_workers
    from rollcall.store import jobs

    config = load_config()
    assert config_for_workers(config, 2, cpus=8).models.threads == 4
    assert config_for_workers(config, 1, cpus=8).models.threads == config.models.threads
    db = e2e_env["db"]
    queued = [
        jobs.enqueue(
            db,
            course_id=COURSE,
            meeting_uuid=f"pool-{i}",
            file_id="f",
            payload={"download_url": "https://zoom.us/x"},
            topic=f"pool {i}",
        )[0]
        for i in range(2)
    ]
    # as the service's workers do: a job is analysed by the worker that claimed it
    # (its results are stored only while that worker holds it)
    queued = [jobs.claim(db, f"worker-{i}", lease_s=600) for i in range(2)]
    assert sorted(j.topic for j in queued) == ["pool 0", "pool 1"]

    async def run_both() -> list[tuple[int, int]]:
        pool = AnalysisPool(config, workers=2)
        try:
            return await asyncio.gather(*(pool.run(short_clip, job) for job in queued))
        finally:
            pool.shutdown()

    done = asyncio.run(run_both())
    meeting_ids = [meeting_id for meeting_id, _ in done]
    assert len(set(meeting_ids)) == 2
    for meeting_id, job in zip(meeting_ids, queued, strict=True):
        meeting = storage.get_meeting(db, meeting_id)
        assert meeting["status"] == "done" and meeting["title"] == job.topic
        assert meeting_report(db, meeting_id).students  # results stored by the child process
    pids = {pid for _, pid in done}
    assert os.getpid() not in pids
    assert len(pids) == 2  # both processes were busy at once


def test_analyze_with_notify_posts_the_summary(e2e_env, short_clip, tmp_path, monkeypatch, capsys):
    from tests.http_receiver import Receiver

    with Receiver() as hook:
        config_file = tmp_path / "config.toml"
        config_file.write_text(
            f'[[notify.courses]]\ncourse = "{COURSE}"\nslack_webhook = "{hook.url("slack")}"\n'
        )
        monkeypatch.setenv("ROLLCALL_CONFIG", str(config_file))
        out = tmp_path / "report"
        args = ["analyze", str(short_clip), "--course", COURSE, "--out", str(out)]
        assert main(args) == 0  # without --notify nothing is queued
        assert main(["notify", "list"]) == 0
        assert "no notifications" in out_of_text(capsys)
        assert main([*args, "--title", "notified", "--notify"]) == 0
        assert "notifications: 1 sent" in out_of_text(capsys)
        ((path, body),) = hook.requests
    assert path.startswith("/slack/")
    assert f"Attendance {COURSE}: notified" in body["text"]
    assert main(["notify", "list"]) == 0
    assert "sent" in out_of_text(capsys)


def test_process_recording_purges_warns_writes_and_queues(short_clip, tmp_path, base_env):
    """The one path from a recording to results that both ``rollcall analyze`` and the
    service's workers take: retention purge first, then the stored analysis with the
    caller's warning, report files only where asked, notifications only when asked."""
    import json

    from rollcall.analysis.process import process_recording
    from rollcall.config import load_config
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
    from rollcall.store import outbox

    env = dict(
        base_env,
        ROLLCALL_HOME=str(tmp_path / "home"),
        ROLLCALL_PRIVACY_RETENTION_DAYS="30",
        ROLLCALL_NOTIFY_COURSES=json.dumps(
            [{"course": COURSE, "slack_webhook": "https://hooks.example/x"}]
        ),
    )
    config = load_config(None, env)
    db = storage.open_db(config.home)
    storage.add_course(db, COURSE, "Process")
    old = storage.upsert_meeting(
        db, {"course_id": COURSE, "source_key": "file:old", "title": "last term"}
    )
    db["meetings"].update(old, {"analyzed_at": "2020-01-01T00:00:00+00:00"})
    models = resolve_face_models(config, progress=False)
    pm = make_plugin_manager(config, models, db=db, course_id=COURSE)
    seen: list[float] = []

    result = process_recording(
        db,
        pm,
        models,
        config,
        short_clip,
        COURSE,
        title="zoom class",
        source="zoom",
        source_key="zoom:uuid==:file-1",
        warning="no gallery view; speaker view analysed",
        notify=False,
        progress=lambda done, total: seen.append(done),
    )
    assert result.purged == 1 and [m["id"] for m in storage.list_meetings(db)] == [
        result.meeting_id
    ]
    meeting = storage.get_meeting(db, result.meeting_id)
    assert meeting["title"] == "zoom class" and meeting["source_key"] == "zoom:uuid==:file-1"
    assert "speaker view analysed" in meeting["warnings"]
    assert result.report_paths == () and result.notifications == ()
    assert outbox.list_messages(db, meeting_id=result.meeting_id) == []
    assert seen and result.report.students is not None

    out = tmp_path / "report"
    again = process_recording(
        db, pm, models, config, short_clip, COURSE, source_key="zoom:uuid==:file-1", report_dir=out
    )
    assert again.meeting_id == result.meeting_id and again.purged == 0
    assert again.notifications == ("slack",) and not again.notify_error
    assert again.report_paths and all(p.parent == out and p.exists() for p in again.report_paths)
