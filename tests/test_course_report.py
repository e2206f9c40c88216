"""The course term report: query, every format, date filtering, errors, and Chromium rendering."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import openpyxl
import pytest

from rollcall.cli.main import main
from rollcall.reports.course import course_report
from rollcall.store import corrections, storage
from tests.browser import dump_dom, screenshot
from tests.reportdata import add_course, add_meeting

COURSE = "TERM1"
OUTPUT = Path(__file__).parent / "output"
FULL, HALF, NONE = [1] * 10, [1] * 5 + [0] * 5, [0] * 10


def out_of(capsys) -> str:
    captured = capsys.readouterr()
    return " ".join((captured.out + captured.err).split())


@pytest.fixture
def term(home):
    """Four analysed meetings on four days (+ one failed); S3 is under the 75 % threshold."""
    db = storage.open_db(home)
    add_course(db, COURSE, ["S1", "S2", "S3"])
    ids = []
    for day, s3 in ((1, NONE), (8, HALF), (15, FULL), (22, HALF)):
        ids.append(
            add_meeting(
                db,
                COURSE,
                f"w{day}",
                {"S1": FULL, "S2": FULL if day != 8 else HALF, "S3": s3},
                start=f"2026-09-{day:02d}T09:00:00",
                title=f"Week of the {day}",
            )
        )
    add_meeting(db, COURSE, "failed", {"S1": FULL}, start="2026-09-10T09:00:00", status="failed")
    # S2 was wrongly seen as half-present on the 8th: an instructor corrects it.
    corrections.add_correction(
        db, ids[1], "S2", present=True, reason="sat behind S1", made_by="prof", minutes=(5, 9)
    )
    return db, ids


def test_course_report_values(term):
    db, ids = term
    report = course_report(db, COURSE, threshold_pct=75.0)
    assert [m.meeting_id for m in report.meetings] == ids  # the failed meeting is no column
    s1, s2, s3 = report.students
    assert [c.attendance_pct for c in s2.cells] == [100.0] * 4
    assert [c.corrected for c in s2.cells] == [False, True, False, False]
    assert [c.attendance_pct for c in s3.cells] == [0.0, 50.0, 100.0, 50.0]
    assert (s3.attended, s3.mean_pct, s3.below_threshold) == (3, 50.0, True)
    assert not s1.below_threshold and not s2.below_threshold
    assert report.class_pcts == (66.7, 83.3, 100.0, 83.3)


def test_term_report_cli_writes_every_format(term, tmp_path, capsys):
    db, ids = term
    out = tmp_path / "term"
    assert main(["report", "course", COURSE, "--out", str(out)]) == 0
    text = out_of(capsys)
    assert "S3" in text and "BELOW" in text and "100*" in text
    assert {p.name for p in out.iterdir()} == {
        "term.csv",
        "term.xlsx",
        "term.html",
        "term-students.png",
        "term-meetings.png",
    }
    labels = [f"2026-09-{d:02d} #{i}" for d, i in zip((1, 8, 15, 22), ids, strict=True)]

    with open(out / "term.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert [float(rows["S3"][label]) for label in labels] == [0.0, 50.0, 100.0, 50.0]
    assert rows["S3"]["below_threshold"] == "1" and rows["S1"]["below_threshold"] == "0"
    assert rows["S3"]["meetings_attended"] == "3" and rows["S3"]["mean_pct"] == "50.0"
    assert rows["S2"]["corrected_meetings"] == labels[1]

    wb = openpyxl.load_workbook(out / "term.xlsx")
    ws = wb["Term"]
    assert [c.value for c in ws[1]][:6] == ["student_id", "name", *labels]
    fills = {
        ws.cell(row=r, column=1).value: ws.cell(row=r, column=1).fill.start_color.rgb
        for r in (2, 3, 4)
    }
    assert fills == {"S1": "00000000", "S2": "00000000", "S3": "00FFC7CE"}
    assert ws.cell(row=3, column=4).fill.start_color.rgb == "00FFD966"  # S2, corrected meeting
    assert ws.cell(row=3, column=4).comment is not None
    assert [ws.cell(row=4, column=c).value for c in range(3, 9)] == [0, 50, 100, 50, 3, 50]
    assert wb["Meetings"]._charts  # native chart of class attendance per meeting

    for name in ("term-students.png", "term-meetings.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.std() > 0
    html = (out / "term.html").read_text()
    assert html.count('class="below-threshold"') == 1
    assert html.count(" corrected") >= 1 and html.count("data:image/png;base64,") == 2


def test_term_report_marks_meetings_with_minutes_to_review(term, tmp_path, capsys):
    from rollcall.reports.xlsx import REVIEW_RGB

    db, ids = term
    doubt = [0] * 7 + [1] * 3
    week = add_meeting(
        db,
        COURSE,
        "w29",
        {"S1": FULL, "S2": [1] * 7 + [0] * 3, "S3": NONE},
        start="2026-09-29T09:00:00",
        review={"S2": doubt},
    )
    label = f"2026-09-29 #{week}"
    report = course_report(db, COURSE, threshold_pct=75.0)
    s1, s2, _ = report.students
    assert [c.review_minutes for c in s2.cells] == [0, 0, 0, 0, 3]
    assert s2.cells[-1].attendance_pct == 70.0  # review minutes count as absent
    assert report.review_total == 3 and not any(c.review_minutes for c in s1.cells)
    out = tmp_path / "term"
    assert main(["report", "course", COURSE, "--out", str(out)]) == 0
    text = out_of(capsys)
    assert "70*" not in text and "70?" in text and "minutes need review (3)" in text
    with open(out / "term.csv", encoding="utf-8-sig", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert (
        rows["S2"]["review_meetings"] == f"{label}: 3 min" and rows["S1"]["review_meetings"] == ""
    )
    ws = openpyxl.load_workbook(out / "term.xlsx")["Term"]
    cell = ws.cell(row=3, column=7)  # S2 in the fifth meeting
    assert cell.fill.start_color.rgb.endswith(REVIEW_RGB) and "need review" in cell.comment.text
    assert not ws.cell(row=2, column=7).fill.start_color.rgb.endswith(REVIEW_RGB)
    legend = [str(c.value) for row in ws.iter_rows(min_row=6) for c in row if c.value]
    assert any("need review" in t for t in legend)
    html = (out / "term.html").read_text()
    assert len(re.findall(r'<td class="status-[a-z_]+ review"', html)) == 1
    assert "3 minutes need review" in html
    # Decided by an instructor: nothing left to review in the term either.
    corrections.add_correction(
        db, week, "S2", present=True, reason="checked", made_by="prof", minutes=(7, 9)
    )
    report = course_report(db, COURSE, threshold_pct=75.0)
    assert report.review_total == 0 and report.students[1].cells[-1].attendance_pct == 100.0


def test_date_filter(term, tmp_path, capsys):
    db, ids = term
    report = course_report(db, COURSE, date_from=_day("2026-09-08"), date_to=_day("2026-09-15"))
    assert [m.meeting_id for m in report.meetings] == ids[1:3]
    assert report.students[2].mean_pct == 75.0 and not report.students[2].below_threshold
    assert main(["report", "course", COURSE, "--from", "2026-09-09", "--to", "2026-09-30"]) == 0
    text = out_of(capsys)
    assert "2026-09-15" in text and "2026-09-22" in text and "2026-09-08" not in text
    assert main(["report", "course", COURSE, "--from", "2027-01-01"]) == 0
    assert "no analysed meetings" in out_of(capsys)


def _day(text: str):
    from datetime import date

    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE"], "course 'NOPE' does not exist"),
        ([COURSE, "--from", "9/1/2026"], "--from '9/1/2026' is not a date; use YYYY-MM-DD"),
        ([COURSE, "--from", "2026-10-01", "--to", "2026-09-01"], "is after --to"),
        ([COURSE, "--format", "csv"], "--format needs --out"),
    ],
)
def test_bad_input_fails_clearly(term, capsys, args, message):
    assert main(["report", "course", *args]) == 1
    text = out_of(capsys)
    assert "error:" in text and message in text


def _check_screenshot(png: Path) -> None:
    image = cv2.imread(str(png))
    assert image is not None, f"{png} is not an image"
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 5, f"{png} is blank"
    assert len({tuple(p) for p in image.reshape(-1, 3)[::97]}) > 10


def test_html_reports_render_in_chromium(term, request):
    db, ids = term
    out = OUTPUT / request.node.name
    out.mkdir(parents=True, exist_ok=True)
    assert main(["report", "course", COURSE, "--out", str(out), "--format", "html"]) == 0
    assert main(["report", "meeting", str(ids[1]), "--out", str(out), "--format", "html"]) == 0

    _check_screenshot(screenshot(out / "term.html", out / "term-screenshot.png", 1200, 1400))
    dom = dump_dom(out / "term.html")
    assert '<tr data-student="S3" class="below-threshold">' in dom
    assert dom.count("below-threshold") >= 2  # the row and the legend swatch
    assert 'class="status-present corrected"' in dom  # S2 on the 8th

    _check_screenshot(
        screenshot(out / "attendance.html", out / "meeting-screenshot.png", 1200, 1000)
    )
    dom = dump_dom(out / "attendance.html")
    assert dom.count('corrected" title="#1 09:05-09:09 present by prof') == 5
    assert "sat behind S1" in dom and 'id="corrections"' in dom
