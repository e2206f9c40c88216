"""Tests for the meeting report: CSV, XLSX, PNG writers, write_reports and the terminal summary."""

from __future__ import annotations

import csv
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from rich.console import Console

from rollcall.reports import csv_report, png, terminal, xlsx
from rollcall.reports.common import TOTAL_HEADERS, minute_labels
from rollcall.reports.csv_report import write_csv
from rollcall.reports.meeting import write_reports
from rollcall.reports.png import write_png
from rollcall.reports.terminal import summary_table
from rollcall.reports.xlsx import write_xlsx
from rollcall.types import AttendanceReport, StudentAttendance

HOSTILE = '=HYPERLINK("http://x","y")'
NAMES = [HOSTILE, "+1", "-2+3", "@SUM(A1)", "Zoë Ñúñez", "Plain Name", "#N/A", "\tTabbed"]
STATUSES_CYCLE = ["present", "late", "left_early", "absent"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def student(sid: str, name: str, minutes: list[int], status: str) -> StudentAttendance:
    present = sum(minutes)
    return StudentAttendance(
        student_id=sid,
        name=name,
        minutes=tuple(minutes),
        present_minutes=present,
        attendance_pct=round(100.0 * present / len(minutes), 1),
        status=status,
    )


def make_report(
    n_minutes: int = 5,
    start: datetime | None = datetime(2024, 5, 6, 9, 58),
    names: list[str] | None = None,
    unknown: int = 2,
    warnings: tuple[str, ...] = ("low light in minutes 3-4",),
) -> AttendanceReport:
    names = NAMES if names is None else names
    students = []
    for i, name in enumerate(names):
        minutes = [1 if (m + i) % 3 else 0 for m in range(n_minutes)]
        students.append(student(f"S{i:03d}", name, minutes, STATUSES_CYCLE[i % 4]))
    return AttendanceReport(
        course_id="CS101",
        meeting_title="Lecture 7 — Pointers",
        start_time=start,
        duration_s=n_minutes * 60.0 - 12.0,
        students=tuple(students),
        unknown_clusters=unknown,
        warnings=warnings,
    )


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --------------------------------------------------------------------------- labels


def test_minute_labels_clock_time_crosses_the_hour() -> None:
    rep = make_report(n_minutes=5, start=datetime(2024, 5, 6, 9, 58, 30))
    assert minute_labels(rep) == ["09:58", "09:59", "10:00", "10:01", "10:02"]


def test_minute_labels_offsets_without_start_time() -> None:
    rep = make_report(n_minutes=65, start=None)
    labels = minute_labels(rep)
    assert len(labels) == 65
    assert labels[:3] == ["00:00", "00:01", "00:02"]
    assert labels[59:61] == ["00:59", "01:00"]
    assert labels[-1] == "01:04"


def test_minute_labels_minute_65_is_01_05() -> None:
    assert minute_labels(make_report(n_minutes=66, start=None))[65] == "01:05"


def test_minute_labels_use_the_start_times_own_timezone() -> None:
    tz = timezone(timedelta(hours=-5))
    rep = make_report(n_minutes=2, start=datetime(2024, 1, 1, 23, 59, tzinfo=tz))
    assert minute_labels(rep) == ["23:59", "00:00"]


def test_minute_labels_without_students_follow_duration() -> None:
    rep = AttendanceReport("C", "T", None, 125.0, ())
    assert minute_labels(rep) == ["00:00", "00:01", "00:02"]


# --------------------------------------------------------------------------- CSV


def test_csv_header_and_rows(tmp_path: Path) -> None:
    rep = make_report(n_minutes=5)
    path = write_csv(rep, tmp_path / "a.csv")
    assert path == tmp_path / "a.csv"
    rows = read_csv(path)
    assert rows[0] == [
        "student_id",
        "name",
        "09:58",
        "09:59",
        "10:00",
        "10:01",
        "10:02",
        "present_minutes",
        "attendance_pct",
        "status",
    ]
    assert len(rows) == 1 + len(NAMES)
    for row, s in zip(rows[1:], rep.students, strict=True):
        assert row[0] == s.student_id
        assert [int(v) for v in row[2:7]] == list(s.minutes)
        assert int(row[7]) == s.present_minutes
        assert float(row[8]) == s.attendance_pct
        assert row[9] == s.status


def test_csv_offset_header_for_65_minutes(tmp_path: Path) -> None:
    rows = read_csv(write_csv(make_report(n_minutes=65, start=None), tmp_path / "a.csv"))
    header = rows[0]
    assert header[2] == "00:00"
    assert header[-4] == "01:04"
    assert len(header) == 2 + 65 + 3


def test_csv_is_utf8_with_bom_and_keeps_non_ascii(tmp_path: Path) -> None:
    path = write_csv(make_report(), tmp_path / "a.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfstudent_id,")
    assert "Zoë Ñúñez".encode() in raw


def test_csv_neutralises_formula_injection(tmp_path: Path) -> None:
    rows = read_csv(write_csv(make_report(), tmp_path / "a.csv"))
    names = [row[1] for row in rows[1:]]
    assert names == [
        "'" + HOSTILE,
        "'+1",
        "'-2+3",
        "'@SUM(A1)",
        "Zoë Ñúñez",
        "Plain Name",
        "#N/A",
        "'\tTabbed",
    ]
    # No text cell anywhere starts with a formula trigger.
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_csv_injection_in_ids_and_carriage_return(tmp_path: Path) -> None:
    s = student("=1+1", "\rname", [1, 0], "present")
    rep = AttendanceReport("C", "T", None, 120.0, (s,))
    row = read_csv(write_csv(rep, tmp_path / "a.csv"))[1]
    assert row[0] == "'=1+1"
    assert row[1] == "'\rname"


def test_csv_numbers_are_unquoted(tmp_path: Path) -> None:
    path = write_csv(make_report(n_minutes=3, names=["Ann"]), tmp_path / "a.csv")
    line = path.read_text(encoding="utf-8-sig").splitlines()[1]
    assert line == "S000,Ann,0,1,1,2,66.7,present"


# --------------------------------------------------------------------------- XLSX


def test_xlsx_matrix_matches_report(tmp_path: Path) -> None:
    rep = make_report(n_minutes=5)
    wb = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "a.xlsx"))
    assert wb.sheetnames == ["Attendance", "Summary"]
    ws = wb["Attendance"]
    header = [c.value for c in ws[1]]
    assert header == ["student_id", "name", *minute_labels(rep), *TOTAL_HEADERS]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "C2"
    assert ws.max_row == 1 + len(rep.students)
    for r, s in enumerate(rep.students, start=2):
        values = [c.value for c in ws[r]]
        assert values[0] == s.student_id
        assert values[2:7] == list(s.minutes)
        assert values[7] == s.present_minutes
        assert values[8] == pytest.approx(s.attendance_pct)
        assert values[9] == s.status
        for j, m in enumerate(s.minutes):
            cell = ws.cell(row=r, column=3 + j)
            assert cell.data_type == "n"
            expected = xlsx.PRESENT_RGB if m else xlsx.ABSENT_RGB
            assert cell.fill.fgColor.rgb.endswith(expected)


def test_xlsx_names_are_strings_never_formulas(tmp_path: Path) -> None:
    rep = make_report()
    path = write_xlsx(rep, tmp_path / "a.xlsx")
    wb = openpyxl.load_workbook(path)
    for sheet, col, first_row in (("Attendance", 2, 2), ("Summary", 2, None)):
        ws = wb[sheet]
        if first_row is None:
            first_row = _summary_table_row(ws) + 1
        for i, name in enumerate(NAMES):
            cell = ws.cell(row=first_row + i, column=col)
            assert cell.data_type == "s", (sheet, name)
            assert cell.value == name
    # And the raw XML holds no formula element at all.
    import zipfile

    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if member.startswith("xl/worksheets/"):
                assert b"<f>" not in zf.read(member) and b"<f " not in zf.read(member)


def test_xlsx_drops_xml_illegal_control_characters(tmp_path: Path) -> None:
    rep = make_report(names=["Bad\x00\x07Name"])
    wb = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "a.xlsx"))
    assert wb["Attendance"]["B2"].value == "BadName"


def _summary_table_row(ws) -> int:
    for row in ws.iter_rows(min_col=1, max_col=2):
        if row[0].value == "student_id" and row[1].value == "name":
            return row[0].row
    raise AssertionError("per-student table not found")


def _summary_value(ws, label: str):
    for row in ws.iter_rows(min_col=1, max_col=3):
        if row[0].value == label:
            return row[1].value
    raise AssertionError(f"{label!r} not in summary")


def test_xlsx_summary_sheet(tmp_path: Path) -> None:
    rep = make_report(n_minutes=5)
    ws = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "a.xlsx"))["Summary"]
    assert _summary_value(ws, "Meeting title") == rep.meeting_title
    assert _summary_value(ws, "Course") == "CS101"
    assert _summary_value(ws, "Start time") == datetime(2024, 5, 6, 9, 58)
    assert _summary_value(ws, "Duration") == "0:04:48"
    # 8 students cycling through 4 statuses: 2 each.
    for status in ("present", "late", "left_early", "absent"):
        assert _summary_value(ws, status) == 2
    assert _summary_value(ws, "unknown faces") == 2
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    assert "low light in minutes 3-4" in texts

    top = _summary_table_row(ws)
    assert [c.value for c in ws[top]][:5] == [
        "student_id",
        "name",
        "present_minutes",
        "attendance_pct",
        "status",
    ]
    for i, s in enumerate(rep.students, start=1):
        values = [c.value for c in ws[top + i]][:5]
        assert values == [
            s.student_id,
            s.name,
            s.present_minutes,
            pytest.approx(s.attendance_pct),
            s.status,
        ]


def test_xlsx_chart_on_summary_references_table(tmp_path: Path) -> None:
    rep = make_report()
    path = tmp_path / "a.xlsx"
    write_xlsx(rep, path)
    wb = openpyxl.load_workbook(path)
    ws = wb["Summary"]
    assert len(ws._charts) == 1
    assert wb["Attendance"]._charts == []
    chart = ws._charts[0]
    top = _summary_table_row(ws)
    n = len(rep.students)
    values = chart.series[0].val.numRef.f.replace("'", "")
    categories = chart.series[0].cat.strRef.f.replace("'", "")
    assert values == f"Summary!$D${top + 1}:$D${top + n}"
    assert categories == f"Summary!$B${top + 1}:$B${top + n}"
    assert chart.series[0].tx.strRef.f.replace("'", "").replace("$", "") == f"Summary!D{top}"
    assert chart.type == "bar"


def test_xlsx_timezone_aware_start_and_unknown_start(tmp_path: Path) -> None:
    rep = make_report(start=datetime(2024, 5, 6, 9, 0, tzinfo=UTC))
    ws = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "a.xlsx"))["Summary"]
    assert _summary_value(ws, "Start time") == datetime(2024, 5, 6, 9, 0)
    rep = make_report(start=None)
    ws = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "b.xlsx"))["Summary"]
    assert _summary_value(ws, "Start time") == "unknown"


def test_xlsx_without_students(tmp_path: Path) -> None:
    rep = AttendanceReport("C", "Empty", None, 90.0, ())
    wb = openpyxl.load_workbook(write_xlsx(rep, tmp_path / "a.xlsx"))
    assert [c.value for c in wb["Attendance"][1]][2:4] == ["00:00", "00:01"]
    assert wb["Summary"]._charts == []


# --------------------------------------------------------------------------- PNG


def test_png_is_valid_and_sized_to_content(tmp_path: Path) -> None:
    small = png_size(write_png(make_report(n_minutes=5), tmp_path / "small.png"))
    big_rep = make_report(n_minutes=120, names=[f"Student {i}" for i in range(40)])
    big = png_size(write_png(big_rep, tmp_path / "big.png"))
    assert 400 <= small[0] <= 3000 and 300 <= small[1] <= 3000
    assert big[0] > small[0] and big[1] > small[1]
    assert big[1] >= 40 * 20  # at least ~20 px per student row


def test_png_decodes_with_matplotlib(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    path = write_png(make_report(n_minutes=30, start=None), tmp_path / "a.png")
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_png_handles_dollar_signs_and_no_students(tmp_path: Path) -> None:
    rep = make_report(names=["$x", "a $b$ c", "unbalanced $", "under_score ^hat"])
    png_size(write_png(rep, tmp_path / "a.png"))
    png_size(write_png(AttendanceReport("C", "T", None, 60.0, ()), tmp_path / "b.png"))


def test_png_does_not_use_pyplot_state(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    write_png(make_report(), tmp_path / "a.png")
    assert plt.get_fignums() == before


def test_minute_tick_step_keeps_labels_sparse() -> None:
    for n in (1, 5, 16, 17, 60, 90, 120, 240, 600, 5000):
        step = png.minute_tick_step(n)
        assert len(range(0, n, step)) <= 16


# --------------------------------------------------------------------------- write_reports / atomicity


def test_write_reports_writes_all_formats(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "out"
    paths = write_reports(make_report(), out)
    assert set(paths) == {"csv", "xlsx", "png"}
    assert paths["csv"] == out / "attendance.csv"
    assert paths["xlsx"] == out / "attendance.xlsx"
    assert paths["png"] == out / "attendance.png"
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == [
        "attendance.csv",
        "attendance.png",
        "attendance.xlsx",
    ]
    png_size(paths["png"])
    openpyxl.load_workbook(paths["xlsx"])


def test_write_reports_failure_keeps_old_files_and_leaves_no_temps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_reports(make_report(names=["Old"]), tmp_path)
    old = {k: p.read_bytes() for k, p in paths.items()}

    def boom(report: AttendanceReport, path: Path) -> None:
        path.write_bytes(b"half a png")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(png, "write_png_to", boom)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_reports(make_report(names=["New"]), tmp_path)
    assert {k: p.read_bytes() for k, p in paths.items()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_single_writer_failure_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(report: AttendanceReport, path: Path) -> None:
        path.write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(csv_report, "write_csv_to", boom)
    with pytest.raises(OSError, match="disk full"):
        write_csv(make_report(), tmp_path / "a.csv")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("stale")
    write_csv(make_report(names=["Fresh"]), path)
    assert "Fresh" in path.read_text(encoding="utf-8-sig")
    assert list(tmp_path.iterdir()) == [path]


# --------------------------------------------------------------------------- terminal


def render(table) -> str:
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_summary_table_renders_names_statuses_and_caption() -> None:
    rep = make_report(n_minutes=5)
    text = render(summary_table(rep))
    for name in ("Zoë Ñúñez", "Plain Name", "@SUM(A1)", HOSTILE):
        assert name in text
    for status in ("present", "late", "left early", "absent"):
        assert status in text
    assert "present: 2" in text and "absent: 2" in text
    assert "unknown faces: 2" in text
    # Per-minute strip for S001: minutes (m+1) % 3 -> 1,0,1,1,0
    assert "█·██·" in text
    assert "/5" in text


def test_summary_table_does_not_parse_markup_in_names() -> None:
    rep = make_report(names=["[bold]Mallory[/bold]", "[red]x"])
    text = render(summary_table(rep))
    assert "[bold]Mallory[/bold]" in text
    assert "[red]x" in text


def test_summary_strip_is_compressed_for_long_meetings() -> None:
    assert len(terminal.minute_strip([1] * 45)) == 45
    # 180 minutes -> 3 minutes per character -> 60 characters.
    strip = terminal.minute_strip([1] * 60 + [0] * 60 + [1, 1, 0] * 10 + [1, 0, 0] * 10)
    assert len(strip) == 60
    assert strip == "█" * 20 + "·" * 20 + "▓" * 10 + "░" * 10
    assert len(terminal.minute_strip([1] * 1000)) <= 60
    text = render(summary_table(make_report(n_minutes=180, names=["Ann"])))
    assert "3 per char" in text


def test_analyzer_summary_sheets_get_a_chart(tmp_path):
    from openpyxl import load_workbook

    report = AttendanceReport(
        course_id="C",
        meeting_title="m",
        start_time=None,
        duration_s=120.0,
        students=(StudentAttendance("S1", "=evil()", (1, 1), 2, 100.0, "present"),),
        extra_sheets=(
            (
                "Engagement summary",
                ("student_id", "name", "minutes", "visible", "score"),
                (("S1", "=evil()", 2, 1.0, 87.5), ("class", None, 2, 1.0, 87.5)),
            ),
            ("Engagement per minute", ("student_id", "minute", "score"), (("S1", 1, 80.0),)),
        ),
    )
    path = write_xlsx(report, tmp_path / "a.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Attendance", "Summary", "Engagement summary", "Engagement per minute"]
    summary = wb["Engagement summary"]
    assert summary["B2"].value == "=evil()" and summary["B2"].data_type == "s"
    assert len(summary._charts) == 1 and not wb["Engagement per minute"]._charts
    assert len(summary._charts[0].series) == 2  # visible and score; minutes is not charted
