"""Look-alikes of absent students sit in the class: nobody absent may be marked present.

A short meeting is built from the large labelled set (``ROLLCALL_LFW_DIR``,
default ../shared/faces-lfw): six students are enrolled from three photos each;
three of them never come, and for each of those the most similar person of a
pool of non-enrolled people (the pairs the set's README names as the closest by
the lite recognizer, plus others) joins instead. The real CLI analyses it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rollcall.cli.main import main
from rollcall.reports.results import meeting_report
from rollcall.store import storage
from rollcall.synthetic.evaluation import save_photos
from rollcall.synthetic.meeting import (
    MeetingScript,
    Presence,
    load_faces_dir,
    participants_from_faces,
    render_meeting,
)
from tests.conftest import SHARED, running_in_ci

COURSE = "LOOK"
#: Enrolled students who never come: each has a close look-alike in the set.
ABSENT = ("George_W_Bush", "James_Kelly", "Bernard_Law")
#: Enrolled students who attend.
PRESENT = ("Colin_Powell", "Angela_Merkel", "Gerhard_Schroeder")
#: Non-enrolled people the look-alikes are picked from (the README's closest pairs first).
POOL = (
    "Jeb_Bush",
    "George_HW_Bush",
    "Richard_Myers",
    "Enrique_Bolanos",
    "Mike_Myers",
    "Donald_Rumsfeld",
    "Dick_Cheney",
    "John_Ashcroft",
    "Tom_Ridge",
    "Paul_Wolfowitz",
    "Jean_Chretien",
    "Tony_Blair",
    "Ari_Fleischer",
    "Bill_Clinton",
    "Jacques_Chirac",
)
DURATION = 90.0


@pytest.fixture(scope="session")
def lfw_dir():
    path = os.environ.get("ROLLCALL_LFW_DIR") or str(SHARED / "faces-lfw")
    if not os.path.isdir(os.path.join(path, "people")):
        if running_in_ci():
            pytest.fail(f"{path} is missing (ROLLCALL_LFW_DIR)")
        pytest.skip(f"{path} is missing; set ROLLCALL_LFW_DIR")
    return path


def photo_embedding(pm, image) -> np.ndarray | None:
    from rollcall.enrollment.enroll import enrollment_embedding
    from rollcall.types import SampledFrame

    found = pm.hook.rollcall_detect_faces(frame=SampledFrame(0, 0.0, image)) or []
    if not found:
        return None
    return enrollment_embedding(pm, image, max(found, key=lambda f: f.score))


def lookalikes(pm, people: dict) -> dict[str, str]:
    """Absent student -> the person of POOL most similar to their enrollment template."""
    pool = [p for p in POOL if p in people]
    means = {}
    for name in [*ABSENT, *pool]:
        vecs = [v for v in (photo_embedding(pm, img) for img in people[name][:3]) if v is not None]
        mean = np.mean(vecs, axis=0)
        means[name] = mean / np.linalg.norm(mean)
    return {a: max(pool, key=lambda p: float(means[a] @ means[p])) for a in ABSENT}


@pytest.fixture(scope="session")
def lookalike_meeting(tmp_path_factory, lfw_dir, base_env, plugin_manager):
    work = tmp_path_factory.mktemp("lookalikes")
    people = load_faces_dir(os.path.join(lfw_dir, "people"))
    chosen = lookalikes(plugin_manager, people)
    shown = {p: people[p][3:] for p in PRESENT}
    shown.update({chosen[a]: people[chosen[a]] for a in ABSENT})
    participants = participants_from_faces(shown, seed=5, hard_fraction=0.34)
    script = MeetingScript(
        duration_s=DURATION,
        participants=tuple(participants),
        presence={p.key: Presence.always(DURATION) for p in participants},
        fps=5,
        crf=30,
        seed=5,
    )
    video = work / "class.mp4"
    render_meeting(script, video)
    env = dict(base_env, ROLLCALL_HOME=str(work / "home"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["course", "add", COURSE, "--title", "Look-alikes"]) == 0
        for student in (*ABSENT, *PRESENT):
            paths = save_photos(people[student][:3], work / "photos" / student)
            assert main(["student", "add", COURSE, student, *map(str, paths)]) == 0
        assert main(["analyze", str(video), "--course", COURSE, "--out", str(work / "out")]) == 0
    db = storage.open_db(work / "home")
    meeting_id = storage.list_meetings(db, COURSE)[0]["id"]
    return {"db": db, "meeting_id": meeting_id, "chosen": chosen, "env": env}


def test_no_absent_student_is_present_when_their_look_alike_attends(lookalike_meeting):
    report = meeting_report(lookalike_meeting["db"], lookalike_meeting["meeting_id"])
    rows = {s.student_id: s for s in report.students}
    print("look-alikes:", lookalike_meeting["chosen"])
    for s in report.students:
        print(s.student_id, s.minutes, "review", s.review_minutes)
    wrongly = {a: rows[a].minutes for a in ABSENT if any(rows[a].minutes)}
    assert not wrongly, f"absent students marked present: {wrongly}"
    assert all(rows[a].status == "absent" for a in ABSENT)
    # The students who came are still recognised.
    assert sum(rows[p].present_minutes for p in PRESENT) >= 2


def test_explain_says_why_a_present_student_is_present(lookalike_meeting, monkeypatch, capsys):
    for key, value in lookalike_meeting["env"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "200")
    report = meeting_report(lookalike_meeting["db"], lookalike_meeting["meeting_id"])
    present = next(s for s in report.students if s.present_minutes)
    assert main(["explain", str(lookalike_meeting["meeting_id"]), present.student_id]) == 0
    out = capsys.readouterr().out
    assert f"{present.present_minutes} of 2 minute(s) present" in out
    assert "vote" in out or "centroid" in out
    stored = storage.minute_evidence(
        lookalike_meeting["db"],
        lookalike_meeting["meeting_id"],
        storage.get_student(lookalike_meeting["db"], COURSE, present.student_id)["id"],
    )
    first = next(e for e in stored if e["state"] == "present")
    assert first["samples"] >= first["matched"] > 0
    assert first["best_similarity"] >= first["median_similarity"] > 0.3
    assert first["margin_student"] >= 0.12
