"""The short form of the fault soak (benchmarks/soak.py), with a fixed seed.

Five recordings through the fake Zoom with every kind of fault the soak knows,
`rollcall serve` killed with SIGKILL three times (in the middle of a slow
download, of sending a summary and of an analysis) and restarted, the mail
server and the chat webhook down and up again. The numbers must be exactly
these: a recording lost, a meeting or message duplicated, a job or message
left waiting, wrong attendance or a broken database each change them.
"""

from __future__ import annotations

import pytest

from benchmarks.soak import format_table, make_plan, render_clip, run_soak

RECORDINGS, KILLS, SEED = 5, 3, 152


@pytest.fixture(scope="session")
def soak_clip(tmp_path_factory, faces_dir):
    """One minute of class with three enrolled students, one of them absent."""
    return render_clip(tmp_path_factory.mktemp("soak-clip"), faces_dir, duration_s=60.0)


def test_the_plan_is_the_seed_s():
    """The same seed draws the same faults, kills and outages."""
    plan = make_plan(RECORDINGS, KILLS, SEED)
    assert plan == make_plan(RECORDINGS, KILLS, SEED)
    assert plan != make_plan(RECORDINGS, KILLS, SEED + 1)
    assert [k.moment for k in plan.kills] == ["mid_download", "mid_sending", "mid_analysis"]
    assert [r.fate for r in plan.recordings].count("trashed") == 1
    assert len(plan.faults()) == 12  # every kind of fault is drawn at least once


def test_fault_soak_loses_nothing_and_duplicates_nothing(tmp_path, soak_clip, base_env):
    plan = make_plan(RECORDINGS, KILLS, SEED)
    result = run_soak(plan, soak_clip, tmp_path / "soak", base_env)
    print(format_table(result))
    assert result.summary() == {
        "recordings": 5,
        "done": 4,
        "cancelled": 1,  # trashed in Zoom: nothing stored, nothing sent
        "failed": 0,
        "correct_attendance": 4,
        "faults": {
            "download_429": 1,
            "download_500": 1,
            "download_html": 1,
            "download_token_expired": 3,
            "download_truncated": 1,
            "oauth_token_revoked": 1,
            "participants_not_ready": 3,
            "recording_trashed": 1,
            "recording_trashed_recovered": 1,
            "rest_429": 1,
            "rest_500": 2,
            "webhook_redelivered": 2,
        },
        "kills": {"mid_analysis": 1, "mid_download": 1, "mid_sending": 1},
        "outages": {"chat": 1, "mail": 1},
        "messages_sent": 12,  # 4 meetings x (2 instructors' emails + 1 chat message)
        "messages_expected": 12,
        "lost": [],
        "duplicated": [],
        "stuck": [],
        "wrong": [],
        "integrity": "ok",
        "exit_code": 0,
    }
