"""The README's main job: `rollcall demo` from a fresh data directory."""

from __future__ import annotations

import csv

from rollcall.cli.main import main


def test_demo_runs_and_matches_its_ground_truth(tmp_path, home, capsys, monkeypatch):
    out = tmp_path / "demo"
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal: paths still print whole
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"reports: {out / 'report'}\n" in printed
    assert f"wrote {out / 'report' / 'attendance.csv'}\n" in printed
    text = " ".join(printed.split())
    assert "per-minute precision 1.00, recall 1.00" in text
    for name in ("attendance.csv", "attendance.xlsx", "attendance.png"):
        assert (out / "report" / name).stat().st_size > 0
    with open(out / "report" / "attendance.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"S001", "S002", "S003", "S004", "S005"}  # the stranger is not a student
    assert rows["S002"]["status"] == "late"
    assert rows["S003"]["status"] == "left_early"
    assert not home.exists()  # the demo keeps its data in its own folder
