"""Plugins store their rows through hooks, in the meeting's transaction, and report them
through a hook: their rows and the attendance commit or roll back together."""

from __future__ import annotations

import pytest

from rollcall import hookimpl, write_transaction
from rollcall.cli.main import main
from rollcall.pipeline.orchestrator import analyze_recording
from rollcall.pipeline.plugin_manager import build_catalog, register_isolated, report_manager
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.store.db import open_db
from tests.test_end_to_end import short_clip  # noqa: F401  (session fixture: a 30 s clip)

COURSE = "PS"


class Keeper:
    """Stores one row per analysed meeting in a table of its own."""

    name = "keeper"

    def __init__(self, fail: bool = False):
        self.fail = fail

    @hookimpl
    def rollcall_create_tables(self, db):
        db.execute(
            "create table if not exists keeper_rows (meeting_id integer primary key, note text)"
        )

    @hookimpl
    def rollcall_save_results(self, db, meeting, results):
        with write_transaction(db):
            db.execute("delete from keeper_rows where meeting_id = ?", [meeting.meeting_id])
            db.execute(
                "insert into keeper_rows values (?, ?)",
                [meeting.meeting_id, f"{len(results['attendance'])} students"],
            )
            if self.fail:
                raise RuntimeError("keeper cannot save")

    @hookimpl
    def rollcall_report_sheets(self, db, meeting_id):
        rows = db.execute(
            "select meeting_id, note from keeper_rows where meeting_id = ?", [meeting_id]
        ).fetchall()
        return [("Keeper", ["meeting_id", "note"], rows)]


@pytest.fixture
def course(home, faces_dir):
    assert main(["course", "add", COURSE, "--title", "plugin storage"]) == 0
    photos = sorted((faces_dir / "Hu_Jintao").iterdir())[:3]
    assert main(["student", "add", COURSE, "S1", *map(str, photos)]) == 0
    return home


def _attendance(db, meeting_id):
    return list(db["attendance"].rows_where("meeting_id = ?", [meeting_id]))


def test_a_failing_save_rolls_back_the_whole_meetings_results(
    course,
    short_clip,  # noqa: F811
    face_models,
):
    from rollcall.config import load_config

    config = load_config(None)
    db = open_db(config.home)
    catalog = build_catalog(config, face_models, entry_points=False)

    pm = catalog.manager_for(())
    pm.register(Keeper(), name="keeper")
    first = analyze_recording(db, pm, face_models, config, short_clip, COURSE)
    meeting_id = first.meeting_id
    stored = _attendance(db, meeting_id)
    assert len(stored) == 1
    assert db["keeper_rows"].count == 1
    report = meeting_report(db, meeting_id, pm=pm)
    assert report.extra_sheets == (
        ("Keeper", ("meeting_id", "note"), ((meeting_id, "1 students"),)),
    )

    # the previous results, marked so that a replacement would show
    db.execute("update attendance set status = 'previous' where meeting_id = ?", [meeting_id])
    db.execute("update keeper_rows set note = 'previous'")
    analyzed_at = storage.get_meeting(db, meeting_id)["analyzed_at"]

    failing = catalog.manager_for(())
    failing.register(Keeper(fail=True), name="keeper")
    with pytest.raises(RuntimeError, match="keeper cannot save"):
        analyze_recording(db, failing, face_models, config, short_clip, COURSE)
    assert not db.conn.in_transaction
    assert [r["status"] for r in _attendance(db, meeting_id)] == ["previous"]  # not replaced
    assert [r["note"] for r in db["keeper_rows"].rows] == ["previous"]
    assert storage.get_meeting(db, meeting_id)["analyzed_at"] == analyzed_at

    # an optional plugin is isolated: its failure is recorded, its own rows are undone
    # (its savepoint), and the attendance is stored
    isolated = catalog.manager_for(())
    register_isolated(isolated, Keeper(fail=True), "keeper")
    analyze_recording(db, isolated, face_models, config, short_clip, COURSE)
    assert [r["status"] for r in _attendance(db, meeting_id)] == [stored[0]["status"]]
    assert [r["note"] for r in db["keeper_rows"].rows] == ["previous"]
    errors = list(db["plugin_errors"].rows_where("meeting_id = ?", [meeting_id]))
    assert [(e["plugin"], e["hook"]) for e in errors] == [("keeper", "rollcall_save_results")]


def test_report_sheets_come_from_the_plugins(tmp_path):
    """The built-in analyzers answer ``rollcall_report_sheets`` from their own tables;
    nothing (and no error) when they never stored anything."""
    db = open_db(tmp_path)
    pm = report_manager()
    assert {p.name for p in pm.get_plugins()} == {"emotion", "engagement"}
    assert pm.hook.rollcall_report_sheets(db=db, meeting_id=1) == [[], []]
    pm.hook.rollcall_create_tables(db=db)
    pm.hook.rollcall_create_tables(db=db)  # idempotent
    db["engagement_summary"].insert({"meeting_id": 1, "student_pk": 0, "score": 50.0})
    from rollcall.reports.results import analyzer_sheets

    sheets = analyzer_sheets(db, 1)
    assert [title for title, _, _ in sheets] == ["Engagement summary"]
    assert sheets[0][2][0][0] == "class"
