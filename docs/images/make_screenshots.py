"""Re-make the README's term and meeting report screenshots.

    python docs/images/make_screenshots.py

Stores a made-up course (eight students, six weekly 50-minute classes, one
instructor correction) in a temporary data directory through the same
storage functions the analysis uses, writes the HTML reports with the real
CLI and renders them in headless Chromium (Debian's ``chromium``). The email
summary screenshot is the one ``tests/test_notify.py`` saves under
``tests/output/test_email_html_renders_in_chromium/email.png``.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rollcall.cli.main import main  # noqa: E402
from rollcall.store import storage  # noqa: E402
from tests.browser import screenshot  # noqa: E402
from tests.reportdata import add_meeting  # noqa: E402

COURSE = "BIO101"
STUDENTS = {  # id: (name, habit)
    "S01": ("Ana Lima", "always"),
    "S02": ("Bruno Díaz", "late"),
    "S03": ("Chloé Martin", "always"),
    "S04": ("Dan O'Neil", "often_absent"),
    "S05": ("Eve Park", "always"),
    "S06": ("Farah Haddad", "leaves_early"),
    "S07": ("Goran Petrović", "always"),
    "S08": ("Hana Sato", "sometimes"),
}
MINUTES = 50
FIRST_CLASS = datetime(2026, 9, 1, 9, 0)


def minutes_for(habit: str, rng: random.Random) -> list[int]:
    row = [1] * MINUTES
    if habit == "late":
        late = rng.randint(8, 15)
        row[:late] = [0] * late
    elif habit == "often_absent" and rng.random() < 0.6:
        row = [0] * MINUTES
    elif habit == "leaves_early":
        cut = rng.randint(30, 42)
        row[cut:] = [0] * (MINUTES - cut)
    elif habit == "sometimes" and rng.random() < 0.3:
        row = [0] * MINUTES
    return row


def main_() -> None:
    out = ROOT / "docs" / "images"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ROLLCALL_HOME"] = str(Path(tmp) / "home")
        db = storage.open_db(Path(tmp) / "home")
        storage.add_course(db, COURSE, "Cell biology")
        for sid, (name, _) in STUDENTS.items():
            storage.upsert_student(db, COURSE, sid, name=name, email=f"{sid.lower()}@school.edu")
        rng = random.Random(7)
        ids = []
        for week in range(6):
            minutes = {sid: minutes_for(habit, rng) for sid, (_, habit) in STUDENTS.items()}
            if week == 2:  # the camera missed Hana for the second half; she was there
                minutes["S08"] = [1] * 25 + [0] * 25
            ids.append(
                add_meeting(
                    db,
                    COURSE,
                    f"week-{week + 1}",
                    minutes,
                    start=(FIRST_CLASS + timedelta(weeks=week)).isoformat(),
                    title=f"Week {week + 1}: " + ["Cells", "Membranes", "Enzymes", "DNA",
                                                   "Mitosis", "Review"][week],
                )
            )  # fmt: skip
        db.conn.close()
        work = Path(tmp) / "out"
        assert main(["attendance", "set", str(ids[2]), "S08", "--minutes", "25-49", "--present",
                     "--reason", "camera off, answered questions", "--by", "prof.lee"]) == 0  # fmt: skip
        assert main(["report", "course", COURSE, "--out", str(work), "--format", "html"]) == 0
        assert main(["report", "meeting", str(ids[2]), "--out", str(work), "--format", "html"]) == 0
        screenshot(work / "term.html", out / "term-report.png", 1200, 1250)
        screenshot(work / "attendance.html", out / "meeting-report.png", 1500, 1100)
    print(f"wrote {out / 'term-report.png'} and {out / 'meeting-report.png'}")


if __name__ == "__main__":
    main_()
