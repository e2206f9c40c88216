"""The web app in a real browser: Debian's Chromium driven by Playwright, against
``rollcall serve`` in a subprocess with real models and a rendered recording.

The browser, the service and the analysed recording are shared by the whole
file (module scope: Playwright's synchronous API keeps an event loop running in
this thread while it is open, so it must be closed before other files' tests
call ``asyncio.run``). With ``ROLLCALL_SCREENSHOTS=<folder>`` the pages are also
saved as PNG screenshots there (``scripts/screenshots.sh`` does this for the
README's pictures).
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rollcall.enrollment.enroll import enroll_photos
from rollcall.store import storage, users
from rollcall.synthetic.evaluation import build_test_meeting, save_photos
from rollcall.synthetic.meeting import load_faces_dir, render_meeting
from tests.browser import chromium
from tests.reportdata import add_course, add_meeting

COURSE = "CS101"
OTHER = "BIO2"
ADMIN, TEACHER = "admin@school.edu", "teach@school.edu"
PASSWORD = "correct horse battery"
SHOTS = os.environ.get("ROLLCALL_SCREENSHOTS", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_y4m(photo: np.ndarray, path: Path, frames: int = 10) -> Path:
    """A Y4M video (what Chromium's fake camera plays) of a face photo, 640x480."""
    h, w = 480, 640
    scale = h / photo.shape[0]
    face = cv2.resize(photo, (int(photo.shape[1] * scale) // 2 * 2, h))
    canvas = np.full((h, w, 3), 90, np.uint8)
    x = (w - face.shape[1]) // 2
    canvas[:, x : x + face.shape[1]] = face
    yuv = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n" + yuv)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory, faces_dir, base_env, config, face_models, plugin_manager):
    """A data folder with CS101 (enrolled students of a rendered recording, not yet
    analysed), BIO2 (one stored meeting), an admin and an instructor of CS101; and
    ``rollcall serve`` running on it."""
    work = tmp_path_factory.mktemp("web")
    home = work / "home"
    meeting = build_test_meeting(
        faces_dir, seed=5, n_students=4, n_absent=1, n_strangers=1, duration_s=120.0, crf=30
    )
    video = work / "class.mp4"
    render_meeting(meeting.script, video)
    db = storage.open_db(home)
    storage.add_course(db, COURSE, "Computer science")
    for student_id, images in meeting.enroll.items():
        paths = save_photos(images, work / "photos" / student_id)
        enroll_photos(
            db, plugin_manager, face_models.model_key, COURSE, student_id, paths, config.enrollment
        )
    add_course(db, OTHER, ["B1"])
    bio = add_meeting(db, OTHER, "bio-1", {"B1": [1, 1, 0]}, title="Biology week 1")
    first, second = sorted(meeting.enroll)[:2]
    doubtful = add_meeting(
        db,
        COURSE,
        "review-1",
        {first: [1, 1, 0], second: [0, 0, 0]},
        title="Week 0 (stored, needs review)",
        review={first: [0, 0, 1], second: [1, 1, 0]},
    )
    users.add_user(db, ADMIN, "admin", PASSWORD)
    users.add_user(db, TEACHER, "instructor", PASSWORD, [COURSE])
    db.conn.close()

    env = dict(os.environ, **base_env, ROLLCALL_HOME=str(home))
    for key in [k for k in env if k.startswith("ROLLCALL_ZOOM_")]:
        del env[key]
    port = free_port()
    log = work / "serve.log"
    out = open(log, "ab")  # noqa: SIM115 - lives as long as the service
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollcall", "serve", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    import requests

    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code in (200, 503):
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "service did not start: " + log.read_text()
        time.sleep(0.3)
    try:
        yield {
            "base": base,
            "home": home,
            "work": work,
            "meeting": meeting,
            "video": video,
            "bio": bio,
            "review": {"meeting": doubtful, "students": (first, second)},
            "log": log,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


@pytest.fixture(scope="module")
def browser(site, faces_dir):
    from playwright.sync_api import sync_playwright

    faces = load_faces_dir(faces_dir)
    person = sorted(p for p in faces if p not in site["meeting"].enroll)[0]
    camera = make_y4m(faces[person][0], site["work"] / "camera.y4m")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, site, email: str | None = None, *, width: int = 1200):
    context = browser.new_context(
        base_url=site["base"],
        viewport={"width": width, "height": 900},
        permissions=["camera"],
        accept_downloads=True,
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    if email:
        sign_in(page, email)
    return page


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def csv_matrix(text: str) -> dict[str, list[str]]:
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    header = rows[0]
    n = header.index("present_minutes")
    return {row[0]: row[2:n] for row in rows[1:]}


def page_matrix(page) -> dict[str, list[str]]:
    return page.eval_on_selector_all(
        "#matrix-table tbody tr",
        """rows => Object.fromEntries(rows.map(r => [r.dataset.student,
            Array.from(r.querySelectorAll('td.cell')).map(td => td.dataset.value)]))""",
    )


def present_minutes(page) -> dict[str, int]:
    return page.eval_on_selector_all(
        "#matrix-table tbody tr",
        """rows => Object.fromEntries(rows.map(r => [r.dataset.student,
            Number(r.querySelector('[data-col=present_minutes]').textContent)]))""",
    )


@pytest.fixture(scope="module")
def analysed(browser, site):
    """The rendered recording uploaded in the browser and analysed by the service's
    job queue; the meeting page it ends on."""
    page = new_page(browser, site, ADMIN)
    page.goto("/recordings")
    page.get_by_label("Course").select_option(COURSE)
    page.get_by_label("Title").fill("Week 1 lecture")
    page.get_by_label("Start (date and time of the first minute)").fill("2026-09-01T09:00")
    page.get_by_label("Video file").set_input_files(str(site["video"]))
    shot(page, "recordings")
    page.get_by_role("button", name="Upload and analyse").click()
    page.wait_for_url("**/jobs/*")
    link = page.locator("#job-meeting")
    deadline = time.monotonic() + 240
    while not link.count():
        state = page.locator("#job-state").get_attribute("data-state")
        assert state not in ("failed", "cancelled"), page.content()
        assert time.monotonic() < deadline, site["log"].read_text()[-3000:]
        page.wait_for_timeout(1000)
        page.reload()
    shot(page, "job")
    link.click()
    page.wait_for_url("**/meetings/*")
    meeting_id = int(page.url.rsplit("/", 1)[1].split("#")[0])
    return {"page": page, "meeting_id": meeting_id}


# ---------------------------------------------------------------- sign-in and roles


def test_sign_in_and_sign_out(browser, site):
    page = new_page(browser, site)
    page.goto("/courses")
    assert "/login" in page.url
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    shot(page, "login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/courses")  # back where the sign-in was asked for
    assert page.get_by_role("heading", name="Courses").count() == 1
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url


def test_instructor_cannot_reach_other_courses_or_admin_pages(browser, site):
    page = new_page(browser, site, TEACHER)
    assert OTHER not in page.goto("/courses").text()
    for path in (f"/meetings/{site['bio']}", f"/courses/{OTHER}", "/plugins", "/users"):
        response = page.goto(path)
        assert response.status == 403, path
    response = page.request.get(f"/api/v1/meetings/{site['bio']}")
    assert response.status == 403
    response = page.request.get(f"/api/v1/courses/{OTHER}/students")
    assert response.status == 403
    assert page.request.get(f"/api/v1/courses/{COURSE}/students").status == 200


def test_a_form_without_its_csrf_token_is_refused(browser, site):
    page = new_page(browser, site, ADMIN)
    page.goto(f"/courses/{COURSE}")
    form = page.locator("form", has=page.get_by_label("Student id"))
    form.locator("input[name=csrf_token]").evaluate("el => el.remove()")
    page.get_by_label("Student id").fill("FORGED")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Add student").click()
    assert nav.value.status == 403
    page.goto(f"/courses/{COURSE}")
    assert "FORGED" not in page.locator("#roster").inner_text()


# ---------------------------------------------------------------- photos


def test_photo_upload_shows_a_verdict_per_photo(browser, site, faces_dir):
    faces = load_faces_dir(faces_dir)
    person = sorted(p for p in faces if p not in site["meeting"].enroll)[1]
    good = save_photos([faces[person][0]], site["work"] / "upload-good")[0]
    blank = site["work"] / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 200, np.uint8))
    page = new_page(browser, site, TEACHER)
    page.goto(f"/courses/{COURSE}")
    page.get_by_label("Student id").fill("NEW1")
    page.get_by_label("Name").fill("New Student")
    page.get_by_role("button", name="Add student").click()
    page.get_by_role("link", name="NEW1").click()
    page.get_by_label("Photos").set_input_files([str(good), str(blank)])
    page.get_by_role("button", name="Upload").click()
    verdicts = page.locator("#verdicts li")
    verdicts.first.wait_for()
    texts = verdicts.all_inner_texts()
    assert len(texts) == 2
    assert any(good.name in t and "accepted" in t for t in texts), texts
    assert any("blank.png" in t and "refused" in t for t in texts), texts
    assert page.locator("#photos img").count() == 1
    shot(page, "student")


def test_webcam_capture_enrols_a_photo(browser, site):
    page = new_page(browser, site, ADMIN)
    page.goto(f"/courses/{COURSE}")
    page.get_by_label("Student id").fill("CAM1")
    page.get_by_role("button", name="Add student").click()
    page.goto(f"/courses/{COURSE}/students/CAM1")
    page.get_by_role("button", name="Start camera").click()
    capture = page.get_by_role("button", name="Take photo")
    deadline = time.monotonic() + 30
    while not page.evaluate("document.querySelector('#webcam-video').videoWidth > 0"):
        assert time.monotonic() < deadline, "the fake camera never played"
        page.wait_for_timeout(200)
    page.wait_for_timeout(500)  # a few frames in
    capture.click()
    verdict = page.locator("#webcam-verdicts li").first
    verdict.wait_for(timeout=60_000)
    assert "accepted" in verdict.inner_text(), verdict.inner_text()
    page.reload()
    assert page.locator("#photos img").count() == 1


# ---------------------------------------------------------------- recordings and meetings


def test_uploaded_recording_ends_in_a_meeting_whose_matrix_equals_the_csv(analysed, site):
    page = analysed["page"]
    shown = page_matrix(page)
    response = page.request.get(f"/meetings/{analysed['meeting_id']}/attendance.csv")
    assert response.status == 200
    assert shown == csv_matrix(response.text())
    assert set(site["meeting"].students) <= set(shown)
    assert any("1" in row for row in shown.values())
    shot(page, "meeting")


def test_a_correction_made_in_the_page_is_in_the_csv_and_xlsx(analysed, site):
    from openpyxl import load_workbook

    page = analysed["page"]
    page.goto(f"/meetings/{analysed['meeting_id']}")
    matrix = page_matrix(page)
    student = sorted(matrix)[0]
    minute = 0
    old = matrix[student][minute]
    page.locator(f'button[data-student="{student}"][data-minute="{minute}"]').click()
    assert page.get_by_label("Reason").evaluate("el => el === document.activeElement")
    assert page.locator("#c-from").input_value() == str(minute)
    page.get_by_label("Reason").fill("seen on the class photo")
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_load_state()
    new = "0" if old == "1" else "1"
    assert page_matrix(page)[student][minute] == new
    text = page.request.get(f"/meetings/{analysed['meeting_id']}/attendance.csv").text()
    assert csv_matrix(text)[student][minute] == new
    assert "seen on the class photo" in text
    body = page.request.get(f"/meetings/{analysed['meeting_id']}/attendance.xlsx").body()
    cells = [
        str(c.value or "")
        for ws in load_workbook(io.BytesIO(body)).worksheets
        for row in ws.iter_rows()
        for c in row
    ]
    assert any("seen on the class photo" in c for c in cells)


def test_an_instructor_resolves_needs_review_minutes_in_the_page(browser, site):
    meeting = site["review"]["meeting"]
    first, second = site["review"]["students"]
    page = new_page(browser, site, TEACHER)
    # The summary message's link (with review minutes) lands on the review list.
    page.goto(f"/admin/meetings/{meeting}#review")
    assert page.url.endswith(f"/meetings/{meeting}#review")
    assert page.locator("#review").is_visible()
    assert page_matrix(page)[first] == ["1", "1", "?"]
    assert page_matrix(page)[second] == ["?", "?", "0"]
    assert "3 minutes need review (2 students)" in page.locator("#review-note").inner_text()
    cell = page.locator(f'td.cell:has(button[data-student="{second}"][data-minute="0"])')
    assert cell.evaluate("td => getComputedStyle(td).backgroundColor") == "rgb(255, 152, 0)"
    assert cell.get_attribute("title").startswith("needs review: 2 of 12 samples matched")
    shot(page, "meeting-review")
    # A click on a "?" fills the form but answers nothing: saving needs present or absent.
    cell.locator("button").click()
    assert page.locator("#c-student").input_value() == second
    assert not page.locator("#c-present").is_checked()
    assert not page.locator("#c-absent").is_checked()
    page.get_by_label("Reason").fill("was in the tile, checked the recording")
    page.get_by_role("button", name="Save correction").click()
    assert page.locator("#c-present").evaluate("el => !el.validity.valid")
    assert page_matrix(page)[second][0] == "?"
    page.locator("#c-present").check()
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_load_state()
    assert page_matrix(page)[second] == ["1", "?", "0"]
    # The review list: one answer settles a run of minutes.
    run = page.locator(f'#review-table tr[data-student="{first}"]')
    run.get_by_label(f"What you checked for {first}").fill("left the room")
    run.get_by_role("button", name="Absent").click()
    page.wait_for_load_state()
    assert page_matrix(page)[first] == ["1", "1", "0"]
    assert page.locator(f'#review-table tr[data-student="{first}"]').count() == 0
    assert "1 minute needs review (1 student)" in page.locator("#review-note").inner_text()
    text = page.request.get(f"/meetings/{meeting}/attendance.csv").text()
    assert csv_matrix(text)[second] == ["1", "?", "0"] and "left the room" in text


def test_labelling_an_unknown_cluster_moves_its_minutes(analysed, site):
    page = analysed["page"]
    page.goto(f"/meetings/{analysed['meeting_id']}")
    absent = site["meeting"].students[0]  # enrolled, never in the video
    before = present_minutes(page)[absent]
    form = page.locator("form.label-form").first
    assert form.count(), "the stranger in the video should be an unknown cluster"
    form.locator("select").select_option(absent)
    form.get_by_role("button", name="Label").click()
    page.wait_for_load_state()
    assert present_minutes(page)[absent] > before
    assert f"Labelled {absent}" in page.locator("#unknowns").inner_text()


def test_enabling_a_plugin_shows_the_notice_and_writes_the_audit_log(browser, site):
    page = new_page(browser, site, ADMIN)
    page.goto("/plugins")
    row = page.locator("#plugin-emotion")
    row.get_by_label("Where").select_option(COURSE)
    row.get_by_role("button", name="Enable").click()
    notice = page.locator("#notice")
    assert "AI Act" in notice.inner_text()
    shot(page, "plugins")
    db = storage.open_db(site["home"])
    try:
        assert db["plugin_audit"].count == 0
        notice.get_by_label("I have read this notice").check()
        notice.get_by_role("button", name="Enable emotion").click()
        page.wait_for_load_state()
        assert "enable emotion for course CS101" in page.locator("#audit").inner_text()
        rows = list(db["plugin_audit"].rows)
        assert rows[-1]["who"] == ADMIN and rows[-1]["course_id"] == COURSE
    finally:
        db.conn.close()


def test_pages_work_at_phone_width(browser, site, analysed):
    page = new_page(browser, site, TEACHER, width=375)
    for path in ("/", f"/courses/{COURSE}", f"/meetings/{analysed['meeting_id']}"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at 375px"
    shot(page, "meeting-phone")
    if SHOTS:  # the README's pictures of the other main pages, at desktop width
        page = new_page(browser, site, ADMIN)
        for path, name in (
            ("/", "dashboard"),
            (f"/courses/{COURSE}", "course"),
            (f"/courses/{COURSE}/term", "term"),
            ("/jobs", "jobs"),
        ):
            page.goto(path)
            shot(page, name)
