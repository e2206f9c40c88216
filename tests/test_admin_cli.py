"""Admin commands: `rollcall jobs ...` on a real database, `rollcall zoom check` on the fake Zoom."""

from __future__ import annotations

from rollcall.cli.main import main
from rollcall.store import jobs, storage
from tests.fakezoom import FakeAccount, FakeZoomServer, FakeZoomState


def out_of(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


def test_jobs_list_show_cancel_retry(home, capsys):
    db = storage.open_db(home)
    job, _ = jobs.enqueue(
        db,
        course_id="C",
        meeting_uuid="uuid-1",
        file_id="f1",
        payload={"download_url": "https://zoom.us/rec/1"},
        topic="Week 1",
    )
    assert main(["jobs", "list"]) == 0
    text = out_of(capsys)
    assert "Week 1" in text and "queued" in text
    assert main(["jobs", "cancel", str(job.id), "--reason", "wrong meeting"]) == 0
    assert jobs.get(db, job.id).state == jobs.CANCELLED
    assert main(["jobs", "show", str(job.id)]) == 0
    assert "wrong meeting" in out_of(capsys)
    assert main(["jobs", "retry", str(job.id)]) == 0
    assert jobs.get(db, job.id).state == jobs.QUEUED
    assert main(["jobs", "show", "999"]) == 1
    assert "error:" in out_of(capsys)


def test_zoom_check_reports_credentials_and_scopes(home, monkeypatch, capsys):
    assert main(["zoom", "check"]) == 1
    assert "Zoom credentials missing" in out_of(capsys)
    state = FakeZoomState(
        accounts=[FakeAccount("acc", "cid", "sec", scopes=["recording:read:admin"])]
    )
    with FakeZoomServer(state) as zoom:
        for key, value in {
            "ACCOUNT_ID": "acc",
            "CLIENT_ID": "cid",
            "CLIENT_SECRET": "sec",
            "OAUTH_URL": zoom.oauth_url,
            "API_BASE_URL": zoom.api_base_url,
        }.items():
            monkeypatch.setenv(f"ROLLCALL_ZOOM_{key}", value)
        assert main(["zoom", "check"]) == 1
        text = out_of(capsys)
        assert "MISSING" in text and "report" in text
        state.accounts[0].scopes.append("report:read:admin")
        assert main(["zoom", "check"]) == 0
        assert "scopes are fine" in out_of(capsys)
        monkeypatch.setenv("ROLLCALL_ZOOM_CLIENT_SECRET", "wrong")
        assert main(["zoom", "check"]) == 1
        text = out_of(capsys)
        assert "rejected" in text and "wrong" not in text.replace("wrong meeting", "")
