"""Ids and counts on the command line are bounded before they reach SQLite: a number too
large for a 64-bit INTEGER is a usage error (exit 2, one line), never a traceback."""

from __future__ import annotations

import pytest

from rollcall.cli.main import main
from rollcall.store import jobs, storage

HUGE = "9" * 20  # above 2**63 - 1


def err_of(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "meeting", HUGE],
        ["attendance", "list", HUGE],
        ["attendance", "remove", HUGE],
        ["unknown", "list", HUGE],
        ["unknown", "label", "1", HUGE, "S1"],
        ["notify", "resend", HUGE],
        ["jobs", "retry", HUGE],
        ["jobs", "show", HUGE],
        ["jobs", "cancel", HUGE],
        ["jobs", "list", "--limit", HUGE],
        ["plugins", "audit", "--limit", "-5"],
        ["serve", "--port", "70000"],
    ],
)
def test_numbers_too_large_are_usage_errors(home, capsys, argv):
    storage.open_db(home)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    text = err_of(capsys)
    assert "Traceback" not in text and "must be" in text, text


def test_ids_in_range_still_work(home, capsys):
    db = storage.open_db(home)
    job, _ = jobs.enqueue(
        db, course_id="C", meeting_uuid="uuid-1", file_id="f1", payload={}, topic="Week 1"
    )
    assert main(["jobs", "show", str(job.id)]) == 0
    assert main(["jobs", "show", job.key]) == 0  # a key, not an id
    assert main(["jobs", "show", str(2**63 - 1)]) == 1  # largest id: not found, no traceback
    assert "error:" in err_of(capsys)
    assert main(["report", "meeting", str(2**63 - 1)]) == 1
    assert "Traceback" not in err_of(capsys)
