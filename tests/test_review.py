"""The third answer: "needs review" minutes, their evidence, and how every format shows them.

No video here: the decision rule is exercised on hand-made tracks, and the
reports read a meeting stored through the same storage functions the analysis
uses (``replace_results`` with review rows and evidence rows).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from rollcall.config import Config
from rollcall.notify.summary import build_summary
from rollcall.plugins.attendance import AttendancePlugin
from rollcall.plugins.notifiers import render, summary_variables
from rollcall.plugins.recognizer import DecisionMargins, TrackDecider
from rollcall.reports.common import REVIEW_COLOUR
from rollcall.reports.csv_report import write_csv
from rollcall.reports.html import render_meeting_html
from rollcall.reports.png import png_bytes
from rollcall.reports.results import meeting_report
from rollcall.reports.terminal import summary_table
from rollcall.reports.xlsx import REVIEW_RGB, write_xlsx
from rollcall.store import storage
from rollcall.store.corrections import add_correction
from rollcall.types import MeetingContext, Roster, TrackIdentities, TrackSummary
from tests.reportdata import add_course, add_meeting

# ---------------------------------------------------------------- the decision rule

E = np.eye(4, dtype=np.float32)


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def track(track_id: int, emb: np.ndarray, votes: dict[int, int], n: int = 6, t0: float = 0.0):
    tr = TrackSummary(track_id=track_id)
    tr.times = [t0 + i for i in range(n)]
    tr.votes = Counter(votes)
    tr.similarity_sum = Counter({k: 0.6 * v for k, v in votes.items()})
    tr.embedding_sum = emb * n
    tr.samples = [(t0 + i, 0, 0, 0.6) for i in range(n)]
    return tr


def decider(margins: DecisionMargins, cohort=None, rule="margins") -> TrackDecider:
    templates = np.stack([E[0], E[1]])
    photos = [E[0][None], E[1][None]]
    return TrackDecider(
        templates,
        photos,
        cohort,
        threshold=0.4,
        min_samples=3,
        vote_share=0.5,
        margins=margins,
        rule=rule,
    )


def test_a_track_close_to_two_students_needs_review_not_presence():
    clear = track(1, unit([0.9, 0.2, 0.3, 0.0]), {0: 6})
    torn = track(2, unit([0.6, 0.55, 0.5, 0.0]), {0: 6}, t0=100)
    margins = DecisionMargins(student=0.08, cohort=0.0, review_slack=0.03, review=True)
    out = decider(margins).decide([clear, torn])
    assert out[1].state == "accepted" and out[1].path == "vote"
    assert out[2].state == "review" and "another student" in out[2].reason
    # The rule before margins accepted both: the review state is new.
    legacy = decider(margins, rule="legacy").decide([clear, torn])
    assert legacy[2].state == "accepted"
    # Review off: the borderline track is simply unknown.
    off = DecisionMargins(student=0.08, review_slack=0.03, review=False)
    assert 2 not in decider(off).decide([clear, torn])


def test_a_track_closer_to_a_non_student_than_to_the_student_needs_review():
    face = unit([0.6, 0.0, 0.0, 0.8])
    cohort = E[3][None]  # a non-student whom this face resembles more than the student
    margins = DecisionMargins(student=0.05, cohort=0.0, review_slack=0.03)
    assert decider(margins).decide([track(1, face, {0: 6})])[1].state == "accepted"
    decided = decider(margins, cohort=cohort).decide([track(1, face, {0: 6})])[1]
    assert decided.state == "review" and decided.margin_cohort < 0
    # Another student's enrollment photo is a non-student face for this student.
    other = TrackDecider(
        np.stack([E[0], E[1]]),
        [E[0][None], np.stack([E[1], E[3]])],
        None,
        threshold=0.4,
        min_samples=3,
        vote_share=0.5,
        margins=margins,
    )
    assert other.decide([track(1, face, {0: 6})])[1].state == "review"
    # The recording's own unmatched faces are not (they may be the student's fragments).
    fragment = track(2, unit([0.0, 0.0, 0.0, 1.0]), {}, t0=2)
    assert decider(margins).decide([track(1, face, {0: 6}), fragment])[1].state == "accepted"
    # A stored unknown face that could be the student themself is no evidence against them.
    themself = unit([0.5, 0.0, 0.0, 0.87])[None]
    assert decider(margins, cohort=themself).decide([track(1, face, {0: 6})])[1].state == (
        "accepted"
    )


def test_just_below_the_threshold_is_review_and_far_below_is_unknown():
    margins = DecisionMargins(student=0.0, cohort=-1.0, review_slack=0.03)
    near = track(1, unit([0.385, 0.0, 0.0, np.sqrt(1 - 0.385**2)]), {0: 6})
    far = track(2, unit([0.3, 0.0, 0.0, np.sqrt(1 - 0.09)]), {0: 6}, t0=100)
    out = decider(margins).decide([near, far])
    assert out[1].state == "review" and out[1].reason == "below the match threshold"
    assert 2 not in out


def test_minutes_present_only_with_review_tracks_need_review():
    plugin = AttendancePlugin(
        min_seconds_per_minute=30,
        absent_below_pct=25,
        late_after_pct=15,
        left_early_pct=15,
        max_gap_s=3,
    )
    accepted = track(1, E[0], {0: 50}, n=50)  # minute 0
    doubt = track(2, E[0], {0: 50}, n=50, t0=60)  # minute 1
    d = decider(DecisionMargins())
    decisions = d.decide([accepted])
    decisions[2] = decisions[1].__class__(2, 0, "review", "centroid", 0.41, 0.02, -0.01, "x")
    roster = Roster((1, 2), ("S1", "S2"), ("A", "B"), np.stack([E[0], E[1]]), (E[:1], E[1:2]))
    meeting = MeetingContext(1, "C", "t", duration_s=180.0, interval_s=1.0)
    rows = plugin.rollcall_finalize_meeting(
        meeting=meeting,
        tracks=[accepted, doubt],
        identities=TrackIdentities(decisions),
        roster=roster,
    )["attendance"]
    first = rows[0]
    assert first.minutes == (1, 0, 0) and first.review == (0, 1, 0)
    assert first.present_minutes == 1 and first.review_minutes == 1
    states = {e.minute: e for e in first.evidence}
    assert states[0].state == "present" and states[0].path == "vote"
    assert states[0].samples == 50 and states[0].matched == 50
    assert states[1].state == "review" and states[1].margin_cohort == -0.01
    # A plain dict from a third-party recognizer: accepted tracks only, no review.
    plain = plugin.rollcall_finalize_meeting(
        meeting=meeting, tracks=[accepted, doubt], identities={1: 0}, roster=roster
    )["attendance"][0]
    assert plain.minutes == (1, 0, 0) and plain.review == (0, 0, 0)


# ---------------------------------------------------------------- stored meeting, every format


@pytest.fixture
def db(tmp_path):
    return storage.open_db(tmp_path / "home")


def store_meeting(db) -> int:
    """S1 present in minutes 0-1 and needs review in minute 2; S2 needs review in 0-3."""
    add_course(db, "C1", ["S1", "S2"])
    return add_meeting(
        db,
        "C1",
        "k",
        {"S1": [1, 1, 0, 0], "S2": [0, 0, 0, 0]},
        title="Week 1",
        review={"S1": [0, 0, 1, 0], "S2": [1, 1, 1, 1]},
    )


def test_review_minutes_are_read_back_apart_from_present_ones(db):
    report = meeting_report(db, store_meeting(db))
    s1, s2 = report.students
    assert s1.minutes == (1, 1, 0, 0) and s1.review_minutes == (2,)
    assert s1.present_minutes == 2  # review minutes are not counted as present
    assert s2.review_minutes == (0, 1, 2, 3) and s2.present_minutes == 0
    assert [s1.minute_state(m) for m in range(4)] == ["present", "present", "review", "absent"]
    assert [e.minute for e in s1.evidence] == [0, 1, 2]


def test_every_format_shows_review_minutes_distinctly(db, tmp_path):
    report = meeting_report(db, store_meeting(db))
    # CSV: "?" cells and a review_minutes column.
    with open(write_csv(report, tmp_path / "a.csv"), encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][-1] == "review_minutes"
    assert rows[1][2:6] == ["1", "1", "?", "0"] and rows[1][-1] == "1"
    assert rows[2][2:6] == ["?", "?", "?", "?"] and rows[2][-1] == "4"
    # XLSX: the review fill on exactly the review cells, and a legend naming it.
    ws = openpyxl.load_workbook(write_xlsx(report, tmp_path / "a.xlsx"))["Attendance"]
    fills = {
        (c.row, c.column)
        for row in ws.iter_rows(min_row=2, max_row=3)
        for c in row
        if c.fill.start_color.rgb and c.fill.start_color.rgb.endswith(REVIEW_RGB)
    }
    assert fills == {(2, 5), (3, 3), (3, 4), (3, 5), (3, 6)}
    assert ws.cell(row=2, column=5).value == "?"
    texts = [str(c.value) for row in ws.iter_rows(min_row=5) for c in row if c.value]
    assert any("needs review" in t for t in texts)
    summary = openpyxl.load_workbook(tmp_path / "a.xlsx")["Summary"]
    facts = {r[0].value: r[1].value for r in summary.iter_rows(min_row=3, max_row=12)}
    assert facts["Minutes needing review"] == 5
    # PNG: the heatmap has the review colour.
    import cv2

    image = cv2.imdecode(np.frombuffer(png_bytes(report), np.uint8), cv2.IMREAD_COLOR)
    r, g, b = (int(REVIEW_COLOUR[i : i + 2], 16) for i in (1, 3, 5))
    assert (np.abs(image.astype(int) - [b, g, r]).sum(axis=2) < 10).sum() > 100
    # HTML: review cells with "?", the count, the evidence on hover and in a table.
    html = render_meeting_html(report)
    assert html.count('class="minute review"') == 5
    assert "5 minutes need review" in html
    assert 'id="evidence"' in html and "needs review: 2 of 12 samples matched" in html
    assert "present: 11 of 12 samples matched" in html
    # Terminal: "?" in the strip, the count in the caption.
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(summary_table(report))
    out = console.export_text()
    assert "██?·" in out and "????" in out and "5 minutes need review" in out


def test_email_and_chat_summaries_say_how_many_minutes_need_review(db):
    meeting_id = store_meeting(db)
    summary = build_summary(db, Config(), meeting_id)
    assert summary.review_minutes == 5
    for language in ("en", "es"):
        variables = summary_variables(summary, flavor="slack", chart_cid="")
        chat = render(language, "chat.txt.j2", **variables)
        text = render(language, "email.txt.j2", **variables)
        html = render(language, "email.html.j2", **variables)
        word = "need review" if language == "en" else "por revisar"
        assert all("5 minut" in t and word in t for t in (chat, text, html))
    assert "? S2  Name of S2  4 min" in render("en", "email.txt.j2", **variables)


def test_the_summary_link_opens_the_review_list_while_minutes_need_review(db):
    meeting_id = store_meeting(db)
    config = Config.model_validate({"reports": {"base_url": "https://rollcall.example.edu/"}})
    link = f"https://rollcall.example.edu/admin/meetings/{meeting_id}"
    assert build_summary(db, config, meeting_id).admin_url == link + "#review"
    add_correction(db, meeting_id, "S2", present=True, reason="seen", made_by="t", minutes="0-3")
    add_correction(db, meeting_id, "S1", present=False, reason="no", made_by="t", minutes="2")
    assert build_summary(db, config, meeting_id).admin_url == link


def test_a_correction_resolves_review_minutes(db):
    meeting_id = store_meeting(db)
    add_correction(db, meeting_id, "S2", present=True, reason="seen", made_by="t", minutes="0-1")
    add_correction(db, meeting_id, "S1", present=False, reason="no", made_by="t", minutes="2")
    s1, s2 = meeting_report(db, meeting_id).students
    assert s1.review_minutes == () and s1.minutes == (1, 1, 0, 0)
    assert s2.review_minutes == (2, 3) and s2.minutes == (1, 1, 0, 0)
    assert build_summary(db, Config(), meeting_id).review_minutes == 2


def test_explain_prints_the_evidence_of_each_minute(db, tmp_path, monkeypatch, capsys):
    from rollcall.cli.main import main

    meeting_id = store_meeting(db)
    monkeypatch.setenv("ROLLCALL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["explain", str(meeting_id), "S1"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 minute(s) present, 1 need review" in out
    assert "09:00" in out and "0.61" in out and "0.21" in out and "vote" in out
    assert "needs review" in out and "-0.02" in out and "centroid" in out
    assert "only 0.03 closer than to another student" in out
    add_correction(db, meeting_id, "S1", present=True, reason="ok", made_by="t", minutes="2")
    assert main(["explain", str(meeting_id), "S1"]) == 0
    assert "corrected: present" in capsys.readouterr().out
    assert main(["explain", str(meeting_id), "S9"]) == 1


def test_evidence_goes_with_the_student_and_the_meeting(db):
    meeting_id = store_meeting(db)
    assert db["minute_evidence"].count == 7
    storage.remove_student(db, "C1", "S2")
    assert db["minute_evidence"].count == 3
    from rollcall.store.retention import erase_meetings

    erase_meetings(db, [meeting_id])
    assert db["minute_evidence"].count == 0


def test_explain_lists_the_crops_of_the_deciding_tracks(db, tmp_path, monkeypatch, capsys):
    from rollcall.cli.main import main

    meeting_id = store_meeting(db)
    folder: Path = tmp_path / "home" / "evidence" / str(meeting_id)
    folder.mkdir(parents=True)
    (folder / "track-3.jpg").write_bytes(b"jpeg")
    monkeypatch.setenv("ROLLCALL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "40")  # a path is printed whole even on a narrow terminal
    assert main(["explain", str(meeting_id), "S1"]) == 0
    assert str(folder / "track-3.jpg") in capsys.readouterr().out


def test_a_version_7_database_gets_review_columns_and_the_evidence_table(tmp_path):
    import sqlite3

    import sqlite_utils

    from rollcall.store import db as store_db
    from rollcall.store import schema

    conn = sqlite3.connect(tmp_path / store_db.DB_NAME)
    old = sqlite_utils.Database(conn)
    for migration in schema.MIGRATIONS[:7]:
        migration(old)
    old["presence"].insert({"meeting_id": 1, "student_pk": 1, "minute": 0, "present": 1})
    old["attendance"].insert({"meeting_id": 1, "student_pk": 1, "present_minutes": 1})
    conn.execute("pragma user_version = 7")
    conn.commit()
    conn.close()
    db = storage.open_db(tmp_path)
    assert next(db.query("select review from presence"))["review"] == 0
    assert next(db.query("select review_minutes from attendance"))["review_minutes"] == 0
    assert "minute_evidence" in storage.tables_with_column(db, "student_pk")


def test_a_weak_mean_face_match_counts_only_with_a_clear_match_of_the_same_student():
    weak = unit([0.42, 0.0, 0.0, np.sqrt(1 - 0.42**2)])  # clears the centroid rule only
    margins = DecisionMargins(student=0.08, centroid_above=0.05)
    alone = decider(margins).decide([track(1, weak, {}, n=12)])[1]
    assert alone.path == "centroid" and alone.state == "review"
    assert "weak mean-face" in alone.reason
    clear = track(2, unit([0.9, 0.1, 0.0, 0.4]), {0: 6}, t0=100)
    both = decider(margins).decide([track(1, weak, {}, n=12), clear])
    assert both[1].state == "accepted" and both[2].path == "vote"
    # centroid_above -0.05 is the rule before (no corroboration needed).
    legacy = DecisionMargins(student=0.08, centroid_above=-0.05)
    assert decider(legacy).decide([track(1, weak, {}, n=12)])[1].state == "accepted"


def test_attendance_review_lists_what_is_left_and_how_to_resolve_it(home, capsys):
    from rollcall.cli.main import main

    db = storage.open_db(home)
    meeting_id = store_meeting(db)
    db.conn.close()

    def run(*argv: str) -> str:
        assert main(list(argv)) == 0
        return " ".join(capsys.readouterr().out.split())

    assert f"meeting {meeting_id} (C1, Week 1, " in run("attendance", "review")
    assert "5 minutes of 2 students" in run("attendance", "review", "--course", "C1")
    out = run("attendance", "review", str(meeting_id))
    assert "S1 Name of S1: minutes 09:02 why: needs review: 2 of 12 samples matched" in out
    assert "S2 Name of S2: minutes 09:00-09:03" in out
    assert f"rollcall attendance set {meeting_id} S2 --minutes 0-3 --present|--absent" in out
    run("attendance", "set", str(meeting_id), "S2", "--minutes", "0-3", "--absent",
        "--reason", "checked")  # fmt: skip
    run("attendance", "set", str(meeting_id), "S1", "--minutes", "2", "--present",
        "--reason", "checked")  # fmt: skip
    assert run("attendance", "review", str(meeting_id)).endswith("nothing to review")
    assert run("attendance", "review") == "nothing to review"
    assert main(["attendance", "review", "--course", "NOPE"]) != 0
