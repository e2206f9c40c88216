"""Needs-review minutes in the web app: the meeting page shows them apart (``?`` cells
in the review colour, a count, why on hover, a list of runs to resolve, the evidence
table), resolving one is a correction, and the JSON API lists them.

Real HTTP over 127.0.0.1 (aiohttp's test server) and a real database; the meeting is
stored through the analysis's storage functions (``tests.reportdata``). The browser
flow (click a ``?`` cell, answer, see the matrix change) is in ``test_web_browser.py``.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser

import pytest

from rollcall.config import load_config
from rollcall.store import storage
from tests.reportdata import add_course, add_meeting
from tests.test_web_auth import add_users, csrf_of, run, sign_in

TEACHER = "teach@school.edu"


@pytest.fixture
def site(tmp_path, base_env):
    """CS101 with a meeting: S1 present in minutes 0-1 and needs review in 2; S2 needs
    review in 0-3; S3 absent throughout."""
    config = load_config(None, {**base_env, "ROLLCALL_HOME": str(tmp_path)})
    db = storage.open_db(tmp_path)
    add_course(db, "CS101", ["S1", "S2", "S3"])
    meeting = add_meeting(
        db,
        "CS101",
        "m1",
        {"S1": [1, 1, 0, 0], "S2": [0, 0, 0, 0], "S3": [0, 0, 0, 0]},
        title="Week 1",
        review={"S1": [0, 0, 1, 0], "S2": [1, 1, 1, 1]},
    )
    db.conn.close()
    add_users(tmp_path, admin=False)
    return {"config": config, "home": tmp_path, "meeting": meeting}


class Cells(HTMLParser):
    """The matrix cells (student, minute) -> attributes of the ``td``, and the rows of
    the review table."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, int], dict[str, str]] = {}
        self.runs: list[dict[str, str]] = []
        self._td: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "td" and "cell" in a.get("class", "").split():
            self._td = a
        elif tag == "button" and self._td is not None and "data-minute" in a:
            self.cells[(a["data-student"], int(a["data-minute"]))] = {**self._td, **a}
            self._td = None
        elif tag == "tr" and "data-from" in a:
            self.runs.append(a)


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    return cells


def states(cells: Cells, student: str) -> list[str]:
    return [cells.cells[(student, m)]["data-value"] for m in range(4)]


async def answer(client, meeting: int, student: str, minutes: str, present: str, reason: str):
    """Post a correction as the meeting page's forms do (``minutes``: "0-3" or "2");
    ``present`` "" leaves the answer out."""
    first, _, last = minutes.partition("-")
    data = {
        "csrf_token": await csrf_of(client, f"/meetings/{meeting}"),
        "student_id": student,
        "minute_from": first,
        "minute_to": last or first,
        "reason": reason,
    }
    if present:
        data["present"] = present
    return await client.post(f"/meetings/{meeting}/corrections", data=data, allow_redirects=False)


def test_the_meeting_page_shows_review_minutes_apart_with_why(site):
    async def scenario(client) -> None:
        assert (await sign_in(client, TEACHER)).status == 303
        page = await (await client.get(f"/meetings/{site['meeting']}")).text()
        cells = parse(page)
        assert states(cells, "S1") == ["1", "1", "?", "0"]
        assert states(cells, "S2") == ["?", "?", "?", "?"]
        assert states(cells, "S3") == ["0", "0", "0", "0"]
        review = [k for k, a in cells.cells.items() if "r" in a["class"].split()]
        assert sorted(review) == [("S1", 2), ("S2", 0), ("S2", 1), ("S2", 2), ("S2", 3)]
        # Why, on hover: the stored evidence of present and needs-review minutes alike.
        assert cells.cells[("S1", 0)]["title"].startswith("present: 11 of 12 samples matched")
        why = cells.cells[("S2", 1)]["title"]
        assert why.startswith("needs review: 2 of 12") and "0.03 closer" in why
        assert "title" not in cells.cells[("S3", 0)]
        assert cells.cells[("S2", 0)]["aria-label"].endswith("needs review")
        # A needs-review cell suggests no answer; present and absent ones the opposite.
        assert cells.cells[("S2", 0)]["data-present"] == ""
        assert cells.cells[("S1", 0)]["data-present"] == "0"
        # The count, the legend, one run per student to resolve, the evidence table.
        assert "5 minutes need review (2 students)" in page
        assert "needs review (counted as absent until you decide)" in page
        runs = [(r["data-student"], r["data-from"], r["data-to"]) for r in cells.runs]
        assert runs == [("S1", "2", "2"), ("S2", "0", "3")]
        assert 'id="evidence-table"' in page and page.count('<tr class="review">') == 5

    run(site["config"], scenario)


def test_resolving_a_review_run_is_a_correction_in_every_download(site):
    meeting = site["meeting"]

    async def scenario(client) -> None:
        assert (await sign_in(client, TEACHER)).status == 303
        why = "checked the recording: camera angle"
        # The form must say present or absent: no silent default.
        r = await answer(client, meeting, "S2", "0-3", "", why)
        assert r.status == 400 and "present or absent" in await r.text()
        r = await answer(client, meeting, "S2", "0-3", "1", why)
        assert r.status == 303
        page = await (await client.get(f"/meetings/{meeting}")).text()
        cells = parse(page)
        assert states(cells, "S2") == ["1", "1", "1", "1"]
        assert all("c" in cells.cells[("S2", m)]["class"].split() for m in range(4))
        assert [r["data-student"] for r in cells.runs] == ["S1"]
        assert "1 minute needs review (1 student)" in page
        text = (await (await client.get(f"/meetings/{meeting}/attendance.csv")).read()).decode(
            "utf-8-sig"
        )
        rows = {row[0]: row for row in csv.reader(io.StringIO(text))}
        assert rows["S2"][2:6] == ["1", "1", "1", "1"] and rows["S1"][2:6] == ["1", "1", "?", "0"]
        assert "camera angle" in text
        # The last one, answered absent: nothing is left to review.
        r = await answer(client, meeting, "S1", "2", "0", why)
        assert r.status == 303
        page = await (await client.get(f"/meetings/{meeting}")).text()
        cells = parse(page)
        assert cells.runs == [] and 'id="review-note"' not in page and 'id="review"' not in page
        assert not [k for k, a in cells.cells.items() if "r" in a["class"].split()]
        assert states(cells, "S1") == ["1", "1", "0", "0"]

    run(site["config"], scenario)


def test_the_json_api_lists_review_minutes(site):
    db = storage.open_db(site["home"])
    from rollcall.store import users

    token = users.create_api_token(db, users.user_by_email(db, TEACHER).id)
    db.conn.close()

    async def scenario(client) -> None:
        r = await client.get(
            f"/api/v1/meetings/{site['meeting']}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status == 200
        students = {s["student_id"]: s for s in (await r.json())["students"]}
        assert students["S1"]["review_minutes"] == [2] and students["S1"]["minutes"] == [1, 1, 0, 0]
        assert students["S2"]["review_minutes"] == [0, 1, 2, 3]
        assert students["S3"]["review_minutes"] == []

    run(site["config"], scenario)


def test_dashboard_and_course_page_say_what_is_left_to_review(site):
    meeting = site["meeting"]

    def section(page: str, anchor: str) -> str:
        start = page.index(f'id="{anchor}"')
        return page[start : page.index("</section>", start)]

    async def scenario(client) -> None:
        assert (await sign_in(client, TEACHER)).status == 303
        home = await (await client.get("/")).text()
        assert f'href="/meetings/{meeting}#review">Week 1</a> (CS101): 5 minutes of 2 students' in (
            section(home, "to-review")
        )
        attention = section(home, "attention")
        assert "Name of S2</a> — 0.0% (absent, 4 min to review)" in attention
        course = await (await client.get("/courses/CS101")).text()
        assert "5 min (2 students)" in course
        term = await (await client.get("/courses/CS101/term")).text()
        assert 'title="4 min to review"' in term and 'title="1 min to review"' in term
        # S2's minutes answered present: the dashboard shows the corrected meeting.
        r = await answer(client, meeting, "S2", "0-3", "1", "was there")
        assert r.status == 303
        home = await (await client.get("/")).text()
        assert "1 minute of 1 student" in section(home, "to-review")
        attention = section(home, "attention")
        assert "Name of S2" not in attention and "Name of S1</a> — 50.0%" in attention
        course = await (await client.get("/courses/CS101")).text()
        assert "1 min (1 student)" in course

    run(site["config"], scenario)
