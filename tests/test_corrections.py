"""Manual attendance corrections: the CLI, the reports in every format, deletion rules,
and that re-running the real analysis never overwrites a correction."""

from __future__ import annotations

import csv

import cv2
import openpyxl
import pytest

from rollcall.cli.main import main
from rollcall.config import AttendanceConfig
from rollcall.reports.results import meeting_report
from rollcall.store import corrections, retention, storage
from rollcall.synthetic.evaluation import save_photos
from tests.reportdata import add_course, add_meeting
from tests.test_end_to_end import short_clip  # noqa: F401  (session fixture: a 30 s clip)

COURSE = "COR1"
FULL = [1] * 10
LEFT = [1] * 4 + [0] * 6  # leaves after 4 of 10 minutes


def out_of(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.fixture
def meeting(home):
    db = storage.open_db(home)
    add_course(db, COURSE, ["S1", "S2", "S3"])
    meeting_id = add_meeting(db, COURSE, "week1", {"S1": FULL, "S2": LEFT, "S3": FULL})
    return db, meeting_id


def test_set_list_remove_and_every_report_format(meeting, tmp_path, capsys):
    db, mid = meeting
    hostile = '=HYPERLINK("http://x","y") stayed on the phone'
    assert (
        main(
            [
                "attendance",
                "set",
                str(mid),
                "S2",
                "--minutes",
                "4-9",
                "--present",
                "--reason",
                hostile,
                "--by",
                "Prof. Ada",
            ]
        )
        == 0
    )
    assert "S2 present for minutes 4-9" in out_of(capsys)
    # HH:MM column headers work too; later corrections win where they overlap.
    assert (
        main(
            [
                "attendance",
                "set",
                str(mid),
                "S2",
                "--minutes",
                "09:08-09:09",
                "--absent",
                "--reason",
                "camera on an empty chair",
            ]
        )
        == 0
    )
    assert main(["attendance", "set", str(mid), "S3", "--absent", "--reason", "was not there"]) == 0
    capsys.readouterr()

    assert main(["attendance", "list", str(mid)]) == 0
    text = out_of(capsys)
    assert (
        "Prof. Ada" in text
        and "S2: present in minutes 4-9 (09:04-09:09), by Prof. Ada" in text
        and "camera on an empty" in text
    )

    report = meeting_report(db, mid)
    s1, s2, s3 = report.students
    assert s1.corrected_minutes == () and s1.status == "present"
    assert s2.minutes == (1,) * 8 + (0, 0)
    assert s2.corrected_minutes == tuple(range(4, 10))
    assert (s2.present_minutes, s2.attendance_pct, s2.status) == (8, 80.0, "left_early")
    assert [c.made_by for c in s2.corrections][0] == "Prof. Ada"
    assert (s3.present_minutes, s3.attendance_pct, s3.status) == (0, 0.0, "absent")
    # The automatic results are untouched.
    assert (
        db["attendance"].get((mid, storage.get_student(db, COURSE, "S2")["id"]))["present_minutes"]
        == 4
    )

    out = tmp_path / "report"
    assert main(["report", "meeting", str(mid), "--out", str(out)]) == 0
    text = out_of(capsys)
    assert "8/10*" in text and "corrected by an instructor" in text
    assert {p.name for p in out.iterdir()} == {
        "attendance.csv",
        "attendance.xlsx",
        "attendance.png",
        "attendance.html",
    }

    # CSV: minute cells stay numeric (corrected values), a corrections column explains them.
    with open(out / "attendance.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [f"09:{m:02d}" for m in range(10)]
    by_id = {r["student_id"]: r for r in rows}
    for s in report.students:
        row = by_id[s.student_id]
        assert [int(row[label]) for label in labels] == list(s.minutes)
        assert int(row["present_minutes"]) == s.present_minutes
        assert float(row["attendance_pct"]) == s.attendance_pct
        assert row["status"] == s.status
    assert by_id["S1"]["corrections"] == ""
    assert by_id["S2"]["corrections"].startswith("#1 09:04-09:09 present by Prof. Ada")
    assert "#2 09:08-09:09 absent" in by_id["S2"]["corrections"]
    assert not by_id["S2"]["corrections"].startswith("=")

    # XLSX: values match the database, corrected cells amber with a who/why comment, a legend.
    wb = openpyxl.load_workbook(out / "attendance.xlsx")
    ws = wb["Attendance"]
    for r, s in enumerate(report.students, start=2):
        assert [ws.cell(row=r, column=3 + j).value for j in range(10)] == list(s.minutes)
        assert ws.cell(row=r, column=13).value == s.present_minutes
        assert ws.cell(row=r, column=15).value == s.status
        for j in range(10):
            cell = ws.cell(row=r, column=3 + j)
            corrected = j in s.corrected_minutes
            assert (cell.fill.start_color.rgb == "00FFD966") == corrected
            assert (cell.comment is not None) == corrected
    note = ws.cell(row=3, column=3 + 5).comment.text
    assert "Prof. Ada" in note and hostile in note
    assert "camera on an empty chair" in ws.cell(row=3, column=3 + 9).comment.text
    legend = [c.value for row in ws.iter_rows(min_row=5) for c in row if c.value]
    assert "Legend" in legend and any("corrected by an instructor" in str(v) for v in legend)
    assert [c.value for c in wb["Corrections"]["G"]][1:] == [
        hostile,
        "camera on an empty chair",
        "was not there",
    ]

    png = cv2.imread(str(out / "attendance.png"))
    assert png is not None and png.std() > 0
    html = (out / "attendance.html").read_text()
    assert html.count('class="minute p corrected"') + html.count('class="minute a corrected"') == 16
    assert "&#34;http://x&#34;" in html or "&quot;http://x&quot;" in html  # escaped, not markup
    assert "data:image/png;base64," in html

    # Removing a correction brings back what it hid.
    assert main(["attendance", "remove", "2"]) == 0
    assert "removed correction 2" in out_of(capsys)
    assert meeting_report(db, mid).students[1].minutes == (1,) * 10
    assert main(["attendance", "remove", "2"]) == 1
    assert "correction 2 does not exist" in out_of(capsys)


def test_format_choice(meeting, tmp_path, capsys):
    _, mid = meeting
    out = tmp_path / "only"
    assert main(["report", "meeting", str(mid), "--out", str(out), "--format", "csv,html"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attendance.csv", "attendance.html"]
    assert main(["report", "meeting", str(mid), "--out", str(out), "--format", "pdf"]) == 1
    assert "unknown report format pdf" in out_of(capsys)
    assert main(["report", "meeting", str(mid), "--format", "csv"]) == 1
    assert "--format needs --out" in out_of(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["99", "S1", "--present"], "meeting 99 does not exist"),
        (["{mid}", "S9", "--present"], "student 'S9' is not enrolled in course 'COR1'"),
        (
            ["{mid}", "S1", "--absent", "--minutes", "5-10"],
            "meeting {mid} has 10 minute(s), numbered 0-9",
        ),
        (["{mid}", "S1", "--absent", "--minutes", "7-3"], "the first minute comes after the last"),
        (["{mid}", "S1", "--absent", "--minutes", "ten"], "is not a minute range"),
        (["{mid}", "S1", "--absent", "--minutes", "10:30"], "its minutes run from 09:00 to 09:09"),
        (["{failed}", "S1", "--absent"], "has no analysis results to correct (status failed)"),
    ],
)
def test_bad_input_fails_clearly(meeting, capsys, args, message):
    db, mid = meeting
    failed = add_meeting(db, COURSE, "broken", {"S1": FULL}, status="failed")
    values = {"mid": mid, "failed": failed}
    argv = ["attendance", "set", *(a.format(**values) for a in args), "--reason", "r"]
    assert main(argv) == 1
    text = out_of(capsys)
    assert "error:" in text and message.format(**values) in text
    assert db["corrections"].count == 0


def test_corrected_status_uses_the_given_rules(meeting):
    db, mid = meeting
    corrections.add_correction(
        db, mid, "S1", present=False, reason="joined late", made_by="t", minutes=(0, 2)
    )
    assert meeting_report(db, mid).students[0].status == "late"  # 30 % > 15 % default
    lenient = AttendanceConfig(late_after_pct=50.0)
    assert meeting_report(db, mid, lenient).students[0].status == "present"


def test_student_removal_and_retention_delete_corrections(meeting):
    db, mid = meeting
    for sid in ("S1", "S2"):
        corrections.add_correction(db, mid, sid, present=False, reason="x", made_by="t")
    storage.remove_student(db, COURSE, "S1")
    assert [c.student_id for c in corrections.list_corrections(db, mid)] == ["S2"]
    db["meetings"].update(mid, {"analyzed_at": "2000-01-01T00:00:00+00:00"})
    assert retention.purge_older_than(db, 30) == 1
    assert db["corrections"].count == 0


def test_reanalysis_never_overwrites_a_correction(home, faces_dir, short_clip, tmp_path, capsys):  # noqa: F811
    from rollcall.synthetic.meeting import load_faces_dir

    faces = load_faces_dir(faces_dir)
    assert main(["course", "add", COURSE]) == 0
    for name in ("Hu_Jintao", "Yao_Ming"):
        paths = save_photos(faces[name][:3], tmp_path / "photos" / name)
        assert main(["student", "add", COURSE, name, *map(str, paths)]) == 0
    analyze = ["analyze", str(short_clip), "--course", COURSE, "--out", str(tmp_path / "r")]
    assert main(analyze) == 0
    db = storage.open_db(home)
    mid = storage.list_meetings(db, COURSE)[0]["id"]
    automatic = {s.student_id: s for s in meeting_report(db, mid).students}
    assert automatic["Hu_Jintao"].present_minutes == 1  # seen in the one (30 s) minute
    assert (
        main(
            [
                "attendance",
                "set",
                str(mid),
                "Hu_Jintao",
                "--absent",
                "--reason",
                "a photo on the wall, not the student",
                "--by",
                "ta",
            ]
        )
        == 0
    )
    capsys.readouterr()

    assert main(analyze) == 0  # same file: the same meeting, results replaced
    assert [m["id"] for m in storage.list_meetings(db, COURSE)] == [mid]
    assert "0/1*" in out_of(capsys)  # the analysis' own summary shows the correction
    [kept] = corrections.list_corrections(db, mid)
    assert (kept.student_id, kept.present, kept.made_by) == ("Hu_Jintao", False, "ta")
    report = {s.student_id: s for s in meeting_report(db, mid).students}
    assert report["Hu_Jintao"].minutes == (0,) and report["Hu_Jintao"].status == "absent"
    assert report["Hu_Jintao"].corrected_minutes == (0,)
    assert report["Yao_Ming"].minutes == automatic["Yao_Ming"].minutes
    # The automatic result underneath is the fresh analysis, unchanged by the correction.
    pk = storage.get_student(db, COURSE, "Hu_Jintao")["id"]
    assert db["attendance"].get((mid, pk))["present_minutes"] == 1
    # ...and the report the analysis itself wrote shows the correction too.
    with open(tmp_path / "r" / "attendance.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert rows["Hu_Jintao"]["status"] == "absent"
    assert "a photo on the wall" in rows["Hu_Jintao"]["corrections"]
