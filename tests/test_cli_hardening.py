"""The CLI under everyday mistakes and hostile input: every --help, files that are not
videos, removing meetings and courses, markup and escape sequences in names, text log
injection, unexpected failures, full disks and read-only places, unfinished meetings."""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from rollcall.cli.main import build_parser, main
from rollcall.store import jobs, storage


def out_of(capsys) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def course(home, capsys):
    assert main(["course", "add", "CS101", "--title", "Intro"]) == 0
    capsys.readouterr()
    return "CS101"


# ---------------------------------------------------------------- 6: every --help


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _command_paths(child, (*path, name))


def test_help_of_every_command_and_subcommand(home, capsys):
    paths = list(_command_paths(build_parser()))
    assert ("report",) in paths and ("report", "course") in paths and len(paths) > 40
    for path in paths:
        with pytest.raises(SystemExit) as exc:
            main([*path, "--help"])
        assert exc.value.code == 0, path
        text = capsys.readouterr().out
        assert text.startswith("usage: rollcall"), path
    main_help = build_parser().format_help()
    assert "meeting" in main_help and "course" in main_help


ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "config.toml"]


def _documented_commands():
    """Every ``rollcall ...`` a user may copy from the docs: lines of code blocks that
    start with it and inline code spans that hold it, cut at a ``#`` comment."""
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            spans = re.findall(r"`([^`]*)`", line)
            for span in [*spans, line] if line.startswith("rollcall ") else spans:
                for command in re.findall(r"(?:^|\s)rollcall( [^#]*)", span.split("#")[0]):
                    yield f"{doc.name}:{number}", command.split()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_flag_the_docs_name_exists():
    """A school admin types what the README says: each documented (sub)command and each
    option written after it must be one the parser has (rollcall import X is Python)."""
    checked = 0
    for where, words in _documented_commands():
        parser, path = build_parser(), []
        global_flags = {"-v", "--verbose", "--config"}
        while words and words[0] in global_flags:
            words = words[2:] if words[0] == "--config" else words[1:]
        while words and (subs := _subcommands(parser)):
            word = words[0].strip("[].,;:")
            if word not in subs:
                break
            parser, path, words = subs[word], [*path, word], words[1:]
        if not path:
            assert words[:1] in ([], ["import"], ["takes"], ["..."]), (where, words)  # prose
            continue
        if _subcommands(parser):  # "rollcall unknown list/label": each part a subcommand
            assert words, (where, path)
            assert set(words[0].split("/")) <= set(_subcommands(parser)), (where, words)
        options = {o for action in parser._actions for o in action.option_strings}
        for flag in re.findall(r"(?<![\w-])--?[a-z][\w-]*", " ".join(words)):
            assert flag in options | global_flags, (where, path, flag)
        checked += 1
    assert checked > 60


# ---------------------------------------------------------------- 10: not a video; remove


def _ogg_header_only(path: Path) -> Path:
    """The first bytes of an Ogg page and nothing else (FFmpeg: "End of file")."""
    path.write_bytes(b"OggS" + bytes(30))
    return path


@pytest.mark.parametrize("kind", ["ogg-header", "text"])
def test_a_file_that_is_not_a_video_fails_in_one_clear_line(
    tmp_path, course, home, capsys, monkeypatch, kind
):
    monkeypatch.setenv("COLUMNS", "200")
    if kind == "text":  # FFmpeg renders a long .txt file as an ANSI "video"
        bad = tmp_path / "notes.txt"
        bad.write_text("Meeting notes, week 1.\n" * 80)
    else:
        bad = _ogg_header_only(tmp_path / "lecture.mp4")
    assert main(["analyze", str(bad), "--course", course, "--out", str(tmp_path / "r")]) == 1
    text = flat(out_of(capsys))
    assert "not a video file" in text
    assert "End of file" not in text and "Traceback" not in text
    assert not (tmp_path / "r").exists()
    db = storage.open_db(home)
    [meeting] = storage.list_meetings(db, course)
    assert meeting["status"] == "failed" and "not a video file" in meeting["error"]
    assert main(["meeting", "list"]) == 0
    listing = out_of(capsys)
    row = next(line for line in listing.splitlines() if "failed" in line)
    assert "not a video" in row  # the error is on the meeting's one line, not 20


def _meeting_with_everything(db, course_id: str, student_pk: int, title: str) -> int:
    meeting_id = storage.upsert_meeting(
        db,
        {
            "course_id": course_id,
            "source_key": f"test:{course_id}:{title}",
            "title": title,
            "source": "zoom",
            "status": "done",
            "error": "",
            "duration_s": 120.0,
        },
    )
    storage.replace_results(
        db,
        meeting_id,
        [
            {"meeting_id": meeting_id, "student_pk": student_pk, "minute": m, "seconds_seen": 40.0}
            | {"present": 1}
            for m in range(2)
        ],
        [
            {
                "meeting_id": meeting_id,
                "student_pk": student_pk,
                "present_minutes": 2,
                "attendance_pct": 100.0,
                "status": "present",
            }
        ],
        [],
        {"status": "done"},
    )
    db["corrections"].insert(
        {
            "meeting_id": meeting_id,
            "student_pk": student_pk,
            "minute_from": 0,
            "minute_to": 1,
            "present": 0,
            "reason": "left the room",
            "made_by": "t",
            "made_at": storage.now_iso(),
        }
    )
    job, _ = jobs.enqueue(
        db,
        course_id=course_id,
        meeting_uuid=f"uuid-{title}",
        file_id="f1",
        payload={},
        topic=title,
        host_email="host@example.edu",
    )
    jobs.cancel(db, job.id, "test")
    db.execute("update jobs set result_meeting_id = ? where id = ?", [meeting_id, job.id])
    db.conn.commit()
    return meeting_id


def _student(db, course_id: str, student_id: str) -> int:
    pk = storage.upsert_student(db, course_id, student_id, name=student_id)
    photo = storage.add_photo(db, pk, {"filename": "1.jpg", "sha256": student_id, "image": b"x"})
    import numpy as np

    storage.save_embedding(db, photo, pk, "m", np.ones(4, np.float32))
    return pk


def _counts(db) -> dict[str, int]:
    tables = ("meetings", "presence", "attendance", "corrections", "jobs", "job_events")
    return {t: db[t].count for t in tables}


def test_meeting_remove_asks_shows_what_goes_and_deletes_every_row(
    course, home, capsys, monkeypatch
):
    db = storage.open_db(home)
    pk = _student(db, course, "ada")
    gone = _meeting_with_everything(db, course, pk, "week 1")
    kept = _meeting_with_everything(db, course, pk, "week 2")
    (home / "evidence" / str(gone)).mkdir(parents=True)
    before = _counts(db)

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    assert main(["meeting", "remove", str(gone)]) == 1
    text = flat(out_of(capsys))
    assert f"this deletes meeting {gone}: 1 meetings" in text
    assert "2 presence" in text and "1 corrections" in text and "1 jobs" in text
    assert "nothing deleted" in text
    assert _counts(db) == before

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no answer is a no
    assert main(["meeting", "remove", str(gone)]) == 1
    assert _counts(db) == before
    capsys.readouterr()

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    assert main(["meeting", "remove", str(gone)]) == 0
    assert f"deleted meeting {gone}" in flat(out_of(capsys))
    for table in storage.tables_with_column(db, "meeting_id"):
        assert not db[table].count_where("meeting_id = ?", [gone]), table
    assert not db["jobs"].count_where("result_meeting_id = ?", [gone])
    assert not (home / "evidence" / str(gone)).exists()
    assert storage.get_meeting(db, kept)["status"] == "done"
    assert db["presence"].count_where("meeting_id = ?", [kept]) == 2

    assert main(["meeting", "remove", str(gone), "--yes"]) == 1
    assert f"meeting {gone} does not exist" in flat(out_of(capsys))


def test_meeting_remove_refuses_while_a_job_may_still_write_it(course, home, capsys):
    db = storage.open_db(home)
    pk = _student(db, course, "ada")
    meeting_id = _meeting_with_everything(db, course, pk, "week 1")
    db.execute("update jobs set state = 'analyzing' where result_meeting_id = ?", [meeting_id])
    db.conn.commit()
    assert main(["meeting", "remove", str(meeting_id), "--yes"]) == 1
    assert "active job" in flat(out_of(capsys))
    assert storage.get_meeting(db, meeting_id)


def test_course_remove_deletes_the_course_and_everything_of_it_only(course, home, capsys):
    db = storage.open_db(home)
    storage.add_course(db, "OTHER", "Other")
    pk = _student(db, course, "ada")
    _student(db, course, "bob")
    other_pk = _student(db, "OTHER", "cyd")
    _meeting_with_everything(db, course, pk, "week 1")
    other_meeting = _meeting_with_everything(db, "OTHER", other_pk, "other week")
    db["plugin_settings"].insert(
        {"plugin": "emotion", "course_id": course, "enabled": 1, "updated_at": "x"}
    )
    db["plugin_audit"].insert(
        {"at": "x", "who": "t", "action": "enable", "plugin": "emotion", "course_id": course}
    )
    db.conn.commit()

    assert main(["course", "remove", course, "--yes"]) == 0
    text = flat(out_of(capsys))
    assert f"deleted course {course}:" in text
    assert "1 courses" in text and "2 students" in text and "2 photos" in text
    assert "2 embeddings" in text and "1 meetings" in text and "1 plugin_settings" in text
    for table in ("courses", "students", "meetings", "plugin_settings"):
        assert not db[table].count_where("course_id = ?", [course]), table
    assert db["photos"].count == 1 and db["embeddings"].count == 1  # cyd's
    assert db["jobs"].count == 1  # the other course's
    assert db["plugin_audit"].count == 1  # the audit log stays
    assert storage.get_meeting(db, other_meeting)
    assert main(["course", "list"]) == 0
    listing = out_of(capsys)
    assert "OTHER" in listing and course not in listing


# ---------------------------------------------------------------- 18: terminal and log injection

HOSTILE = "[/]\x1b[2J\x1b]8;;http://evil\x07[link=http://evil]click[/link][bold]"


def test_markup_and_escape_sequences_are_shown_as_text_in_every_list(home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # whole cells, no wrapping
    assert main(["course", "add", HOSTILE, "--title", HOSTILE]) == 0
    db = storage.open_db(home)
    storage.upsert_student(db, HOSTILE, "[/]", name=HOSTILE, email="[red]x@y[/]")
    storage.upsert_meeting(
        db,
        {
            "course_id": HOSTILE,
            "source_key": "k",
            "title": HOSTILE,
            "status": "failed",
            "error": HOSTILE,
        },
    )
    jobs.enqueue(db, course_id=HOSTILE, meeting_uuid="u", file_id="f", payload={}, topic=HOSTILE)
    db.conn.commit()
    capsys.readouterr()
    for argv in (
        ["course", "list"],
        ["student", "list", HOSTILE],
        ["meeting", "list"],
        ["jobs", "list"],
        ["jobs", "show", "1"],
    ):
        assert main(argv) == 0, argv
        text = out_of(capsys)
        assert "\x1b" not in text and "\x07" not in text, argv
        assert "\\x1b" in text, argv  # shown, escaped
        assert "[/]\\x1b[2J\\x1b]8;;http://evil\\x07[link=http://evil]click[/link]" in text, argv
    assert main(["student", "remove", HOSTILE, "[/]"]) == 0
    assert "\x1b" not in out_of(capsys)


def test_text_log_escapes_control_characters_in_messages_and_extras():
    from rollcall.logs import JsonFormatter, TextFormatter

    forged = "/admin/x\n12:00:00 INFO    admin token accepted\x1b[2K"
    record = logging.LogRecord("rollcall", logging.WARNING, "f", 1, "denied %s", (forged,), None)
    record.path = forged
    text = TextFormatter().format(record)
    assert "\n" not in text and "\x1b" not in text
    assert "\\n12:00:00 INFO" in text and "path=/admin/x\\n" in text
    assert "\\x1b[2K" in text
    assert "\\n" in JsonFormatter().format(record)  # JSON escapes on its own


def test_an_unauthenticated_path_cannot_forge_log_lines(tmp_path, base_env):
    """The admin API logs a refused request's path: %0a and ESC in it stay on one line."""
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.config import load_config
    from rollcall.logs import TextFormatter
    from rollcall.web.admin_api import admin_routes

    config = load_config(
        None, {**base_env, "ROLLCALL_HOME": str(tmp_path), "ROLLCALL_SERVER_ADMIN_TOKEN": "s3cret"}
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("rollcall")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    async def run() -> None:
        app = web.Application()
        app.add_routes(admin_routes(config))
        async with TestClient(TestServer(app)) as client:
            resp = await client.put(
                "/api/plugins/x%0a12:00:00%20INFO%20%20%20%20admin%20login%20ok%1b%5b2K",
                json={"enabled": True},
            )
            assert resp.status == 401

    try:
        asyncio.run(run())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "unauthorized" in lines[0] and "x\\n12:00:00 INFO" in lines[0]
    assert "\x1b" not in lines[0] and "\\x1b[2K" in lines[0]


# ---------------------------------------------------------------- closing rule: one line, -v


def test_an_unexpected_exception_is_one_line_and_the_traceback_only_with_v(
    course, capsys, monkeypatch
):
    from rollcall.cli import enrollment

    def broken(db):
        raise RuntimeError("the index is \x1b[31mbroken")

    monkeypatch.setattr(enrollment.storage, "list_courses", broken)
    assert main(["course", "list"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    line = flat(captured.err)
    assert line.startswith("error: unexpected RuntimeError: the index is \\x1b[31mbroken")
    assert line.endswith("(run with -v for the traceback)")
    assert main(["-v", "course", "list"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "raise RuntimeError" in captured.err
    assert "error: unexpected RuntimeError" in flat(captured.err)


# ---------------------------------------------------------------- 21: full disks, read-only places


def test_a_data_folder_that_is_a_file_is_one_line(tmp_path, home, monkeypatch, capsys):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("ROLLCALL_HOME", str(a_file))
    for argv in (["course", "list"], ["report", "meeting", "1"], ["notify", "list"]):
        assert main(argv) == 1, argv
        text = flat(out_of(capsys))
        assert "Traceback" not in text and "FileExistsError" not in text, argv
        assert str(a_file) in text and "is a file" in text, argv


def test_out_naming_a_file_fails_before_the_analysis(tmp_path, course, home, capsys, monkeypatch):
    from rollcall.cli import analyze

    def no_analysis(*args, **kwargs):
        raise AssertionError("the analysis must not start")

    monkeypatch.setattr(analyze, "models_and_pm", no_analysis)
    video = _ogg_header_only(tmp_path / "class.mp4")
    taken = tmp_path / "report"
    taken.write_text("an existing file")
    for out in (taken, taken / "sub"):
        assert main(["analyze", str(video), "--course", course, "--out", str(out)]) == 1
        text = flat(out_of(capsys))
        assert "FileExistsError" not in text and "Traceback" not in text
        assert f"{taken} is a file, not a folder" in text
    assert storage.list_meetings(storage.open_db(home)) == []
    assert main(["report", "course", course, "--out", str(taken / "x")]) == 1
    text = flat(out_of(capsys))
    assert "Traceback" not in text and "is a file" in text


def _unshare_works() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(
    not _unshare_works(),
    reason="needs root and unshare -m to mount a tiny or read-only tmpfs",
)


def _in_namespace(script: str, env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run a shell script in a private mount namespace (its mounts vanish with it)."""
    done = subprocess.run(
        ["unshare", "-m", "sh", "-ec", script],
        capture_output=True,
        text=True,
        env=dict(env, COLUMNS="1000"),  # error lines unwrapped
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def _rollcall() -> str:
    return f"{sys.executable} -m rollcall.cli.main"


@needs_mount_namespace
def test_analyze_on_a_full_disk_is_one_line(tmp_path, faces_dir, course, home, capsys):
    """Data and report folders on a 1 MB tmpfs with 48 KB left: the analysis starts, then
    cannot store its results or write its reports."""
    from rollcall.synthetic.meeting import MeetingScript, load_faces_dir, participants_from_faces

    db = storage.open_db(home)
    db.conn.close()
    faces = load_faces_dir(faces_dir)
    people = {n: faces[n][3:] for n in ("Hu_Jintao", "Yao_Ming")}
    script = MeetingScript(
        duration_s=20.0, participants=tuple(participants_from_faces(people, seed=3)), fps=5, seed=3
    )
    from rollcall.synthetic.meeting import render_meeting

    video = tmp_path / "class.mp4"
    render_meeting(script, video)
    small = tmp_path / "small"
    small.mkdir()
    env = dict(os.environ, ROLLCALL_HOME=str(small / "home"))
    code, text = _in_namespace(
        f"""
        mount -t tmpfs -o size=1m tmpfs {small}
        cp -r {home} {small}/home
        head -c 2000000 /dev/zero > {small}/filler 2>/dev/null || true
        truncate -s -48K {small}/filler
        {_rollcall()} analyze {video} --course {course} --out {small}/report
        """,
        env,
    )
    assert code == 1, text
    assert "Traceback" not in text, text
    assert "OperationalError" not in text
    error = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error) == 1, text
    assert "full" in error[0] or "no space left" in error[0], text


@needs_mount_namespace
def test_student_import_on_a_full_disk_is_one_line(tmp_path, faces_dir, course, home):
    db = storage.open_db(home)
    db.conn.close()
    root = tmp_path / "photos"
    for person in ("Tony_Blair", "Colin_Powell", "Hugo_Chavez"):
        (root / person).mkdir(parents=True)
        for n in (1, 2, 3, 4, 5):
            shutil.copy(faces_dir / person / f"{n}.jpg", root / person / f"{n}.jpg")
    small = tmp_path / "small"
    small.mkdir()
    env = dict(os.environ, ROLLCALL_HOME=str(small / "home"))
    code, text = _in_namespace(
        f"""
        mount -t tmpfs -o size=1m tmpfs {small}
        cp -r {home} {small}/home
        head -c 2000000 /dev/zero > {small}/filler 2>/dev/null || true
        {_rollcall()} student import {course} {root}
        """,
        env,
    )
    assert code == 1, text
    assert "Traceback" not in text and "OperationalError" not in text, text
    error = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and ("full" in error[0] or "no space" in error[0]), text


@needs_mount_namespace
def test_read_only_places_are_one_line(tmp_path, course, home):
    """A read-only tmpfs as the data folder's parent and as the report folder."""
    ro = tmp_path / "ro"
    ro.mkdir()
    video = _ogg_header_only(tmp_path / "class.mp4")
    env = dict(os.environ)
    code, text = _in_namespace(
        f"""
        mount -t tmpfs -o size=1m,ro tmpfs {ro}
        set +e
        ROLLCALL_HOME={ro}/home {_rollcall()} course list
        echo "exit=$?"
        {_rollcall()} analyze {video} --course {course} --out {ro}/report
        echo "exit=$?"
        """,
        env,
    )
    assert "Traceback" not in text, text
    assert text.count("exit=1") == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, text
    assert "read-only file system" in errors[0].lower(), text
    assert f"report folder {ro}/report cannot be written: Read-only file system" in errors[1]
    # the --out check came first: the recording (not a video) was never opened
    assert storage.list_meetings(storage.open_db(home)) == []


# ---------------------------------------------------------------- 22: unfinished meetings


def _interrupted(db, course_id: str, pk: int) -> int:
    """The state a kill -9 during a first analysis leaves: the meeting row, 'analyzing'."""
    meeting_id = storage.upsert_meeting(
        db,
        {
            "course_id": course_id,
            "source_key": "file:interrupted",
            "title": "week 3",
            "source": "file",
            "status": "analyzing",
            "error": "",
            "duration_s": 120.0,
        },
    )
    db.conn.commit()
    return meeting_id


def test_an_unfinished_meeting_says_so_in_every_report_and_exits_non_zero(
    tmp_path, course, home, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")
    db = storage.open_db(home)
    pk = _student(db, course, "ada")
    done = _meeting_with_everything(db, course, pk, "week 1")
    unfinished = _interrupted(db, course, pk)

    out = tmp_path / "report"
    assert main(["report", "meeting", str(unfinished), "--out", str(out)]) == 1
    text = flat(out_of(capsys))
    assert "INCOMPLETE: the analysis of this meeting did not finish" in text
    assert f"error: meeting {unfinished}: INCOMPLETE" in text
    csv_text = (out / "attendance.csv").read_text(encoding="utf-8-sig")
    header, row = csv_text.splitlines()[:2]
    assert header.endswith(",meeting_status") and "INCOMPLETE" in row
    summary = openpyxl.load_workbook(out / "attendance.xlsx")["Summary"]
    assert "INCOMPLETE" in summary["A2"].value
    assert "INCOMPLETE" in (out / "attendance.html").read_text()

    from rollcall.reports.html import render_meeting_html
    from rollcall.reports.png import _png_title
    from rollcall.reports.results import meeting_report

    report = meeting_report(db, unfinished)
    assert not report.complete and "INCOMPLETE" in _png_title(report)
    assert 'class="incomplete"' in render_meeting_html(report)  # the admin meeting page

    assert main(["report", "course", course]) == 0
    assert f"left out: meeting(s) {unfinished} of {course}" in flat(out_of(capsys))

    done_out = tmp_path / "done"
    assert main(["report", "meeting", str(done), "--out", str(done_out)]) == 0
    assert "INCOMPLETE" not in out_of(capsys)
    assert "meeting_status" not in (done_out / "attendance.csv").read_text(encoding="utf-8-sig")
    assert "INCOMPLETE" not in (done_out / "attendance.html").read_text()
    assert meeting_report(db, done).complete


def test_meeting_list_error_column_is_one_line(course, home, capsys):
    db = storage.open_db(home)
    storage.upsert_meeting(
        db,
        {
            "course_id": course,
            "source_key": "k",
            "title": "t",
            "status": "failed",
            "error": "Traceback (most recent call last):\n" + "  File x\n" * 20 + "boom",
        },
    )
    db.conn.commit()
    assert main(["meeting", "list"]) == 0
    rows = [line for line in out_of(capsys).splitlines() if "│" in line]
    assert len(rows) <= 2, rows


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
