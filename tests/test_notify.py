"""Instructor notifications: real SMTP (aiosmtpd) and HTTP (aiohttp) receivers on 127.0.0.1.

A meeting's results are written straight into the database (no video
analysis), then the outbox delivers its summary: the email must arrive with
both bodies, the inline chart and attachments that open; failures are
retried with backoff and nothing is sent twice; the HTML is rendered in
headless Chromium and a screenshot saved under tests/output/<test name>/.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import email
import email.policy
import io
import json
import os
import re
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from rollcall.config import Config, ConfigError, load_config
from rollcall.notify import delivery, messages
from rollcall.pipeline.plugin_manager import notifier_manager
from rollcall.plugins.notifiers.chat import ChatNotifier
from rollcall.plugins.notifiers.email import CHART_CID, EmailNotifier, build_email
from rollcall.store import outbox, storage
from tests.http_receiver import Receiver, free_port

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "output"
COURSE = "CS101"
T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
USER, PASSWORD = "mailer", "pa55-not-logged"
SECRET_PATH = "T000/B000/secret-token-xyz"


# ---------------------------------------------------------------- a stored meeting

STUDENTS = [  # id, name, per-minute presence (5 minutes), status, in Zoom's participants
    ("S001", "Ana Lima", [1, 1, 1, 1, 1], "present", True),
    ("S002", "Bruno Díaz", [0, 0, 1, 1, 1], "late", True),
    ("S003", "Chloé <b>Martin</b>", [1, 1, 0, 0, 0], "left_early", True),
    ("S004", "Dan O'Neil", [0, 0, 0, 0, 0], "absent", True),  # camera off
    ("S005", "Eve Park", [0, 0, 0, 0, 0], "absent", False),
]


def seed_meeting(db) -> int:
    storage.add_course(db, COURSE, "Intro to CS")
    pks = {sid: storage.upsert_student(db, COURSE, sid, name) for sid, name, *_ in STUDENTS}
    meeting_id = storage.upsert_meeting(
        db,
        {
            "course_id": COURSE,
            "source_key": "test:week1",
            "title": "Week 1 <Intro> & setup",
            "source": "test",
            "start_time": "2026-09-01T09:00:00+00:00",
            "duration_s": 300.0,
            "status": "done",
        },
    )
    presence, attendance = [], []
    for sid, _, minutes, status, _ in STUDENTS:
        for m, p in enumerate(minutes):
            presence.append(
                {
                    "meeting_id": meeting_id,
                    "student_pk": pks[sid],
                    "minute": m,
                    "seconds_seen": 60.0 * p,
                    "present": p,
                }
            )
        attendance.append(
            {
                "meeting_id": meeting_id,
                "student_pk": pks[sid],
                "present_minutes": sum(minutes),
                "attendance_pct": round(100.0 * sum(minutes) / len(minutes), 1),
                "status": status,
            }
        )
    clusters = [
        {
            "meeting_id": meeting_id,
            "cluster_no": n,
            "model": "lite",
            "centroid": b"\0" * 8,
            "n_tracks": 1,
            "n_samples": 5,
            "first_s": 0.0,
            "last_s": 100.0,
            "seconds_by_minute": [30.0, 30.0, 0, 0, 0],
        }
        for n in (1, 2)
    ]
    storage.replace_results(
        db, meeting_id, presence, attendance, clusters, {"analyzed_at": storage.now_iso()}
    )
    db["reconciliation"].insert_all(
        {
            "meeting_id": meeting_id,
            "student_pk": pks[sid],
            "connected_minutes": 5 if zoom else 0,
            "unrecognized_minutes": 5 - sum(minutes) if zoom else 0,
            "in_participants": int(zoom),
        }
        for sid, _, minutes, _, zoom in STUDENTS
    )
    return meeting_id


def make_config(home: Path, *, smtp_port=1, security="none", slack="", teams="", **notify):
    return Config.model_validate(
        {
            "storage": {"home": str(home)},
            "reports": {"threshold_pct": 75.0, "base_url": "https://rollcall.example.edu/"},
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": security,
                "username": USER,
                "password": PASSWORD,
                "from_address": "rollcall@example.edu",
                "timeout_s": 5.0,
            },
            "notify": {
                "retry_base_s": 30.0,
                "retry_max_s": 600.0,
                **notify,
                "courses": [
                    {
                        "course": COURSE,
                        "emails": ["prof@example.edu", "ta@example.edu"],
                        "slack_webhook": slack,
                        "teams_webhook": teams,
                    }
                ],
            },
        }
    )


@pytest.fixture
def db(home):
    database = storage.open_db(home)
    yield database
    database.conn.close()


# ---------------------------------------------------------------- SMTP receiver


class Sink:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def smtp_server(
    port: int, sink: Sink, tls_files: tuple[Path, Path] | None = None, *, implicit: bool = False
) -> Controller:
    kwargs = {}
    if tls_files is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
        if implicit:  # SMTPS (port 465): TLS from the first byte; aiosmtpd does not
            # count that as TLS for AUTH (it only knows STARTTLS), so allow AUTH explicitly
            kwargs = {"ssl_context": ctx, "auth_require_tls": False}
        else:
            kwargs = {"tls_context": ctx, "require_starttls": True}
    else:
        kwargs = {"auth_require_tls": False}
    controller = Controller(
        sink, hostname="127.0.0.1", port=port, authenticator=authenticator, **kwargs
    )
    controller.start()
    return controller


def manager(cafile: Path | None = None):
    def context() -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(cafile) if cafile else None)

    return notifier_manager(plugins=[EmailNotifier(ssl_context=context), ChatNotifier()])


def attachment(msg, suffix: str) -> bytes:
    for part in msg.iter_attachments():
        if (part.get_filename() or "").endswith(suffix):
            return part.get_payload(decode=True)
    raise AssertionError(f"no {suffix} attachment")


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_email_arrives_with_both_bodies_chart_and_attachments(db, home, tmp_path, security):
    meeting_id = seed_meeting(db)
    port = free_port()
    tls = self_signed(tmp_path) if security != "none" else None
    config = make_config(home, smtp_port=port, security=security)
    sink = Sink()
    controller = smtp_server(port, sink, tls, implicit=security == "tls")
    try:
        assert messages.enqueue_meeting(db, config, meeting_id, now=T0) == ["email"]
        result = delivery.deliver_due(db, config, manager(tls[0] if tls else None), now=T0)
    finally:
        controller.stop()
    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    assert len(sink.envelopes) == 1
    envelope = sink.envelopes[0]
    assert envelope.mail_from == "rollcall@example.edu"
    assert sorted(envelope.rcpt_tos) == ["prof@example.edu", "ta@example.edu"]
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert msg["To"] == "prof@example.edu, ta@example.edu"
    assert msg["Subject"] == (
        "Attendance CS101: Week 1 <Intro> & setup (2026-09-01 09:00 UTC) - 3/5 attended, "
        "4 below 75%"
    )
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    # plain text: counts, the students under the threshold first, camera off, unknown faces
    assert "Duration: 5 min" in text and "Students: 5" in text
    below = text.split("Below 75.0% attendance (4):")[1].split("All students:")[0]
    assert [ln.split()[1] for ln in below.strip().splitlines()] == [
        "S004", "S005", "S003", "S002"
    ]  # fmt: skip
    camera = text.split("Camera off or not recognized (1)")[1].split("Unknown faces")[0]
    assert "S004" in camera and "S005" not in camera
    assert "Unknown faces: 2" in text
    assert "https://rollcall.example.edu/admin/meetings/1" in text
    # HTML: escaped user text, inline chart by cid
    assert "Chloé &lt;b&gt;Martin&lt;/b&gt;" in html and "<b>Martin</b>" not in html
    assert "Week 1 &lt;Intro&gt; &amp; setup" in html
    assert f'src="cid:{CHART_CID}"' in html
    related = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(related) == 1 and related[0]["Content-ID"] == f"<{CHART_CID}>"
    assert related[0].get_payload(decode=True)[:8] == b"\x89PNG\r\n\x1a\n"
    # the XLSX opens and holds what the database holds
    wb = openpyxl.load_workbook(io.BytesIO(attachment(msg, ".xlsx")))
    stored = {
        r["student_id"]: (r["present_minutes"], r["attendance_pct"], r["status"])
        for r in db.query(
            "select s.student_id, a.present_minutes, a.attendance_pct, a.status "
            "from attendance a join students s on s.id = a.student_pk where a.meeting_id = ?",
            [meeting_id],
        )
    }
    rows = list(wb["Summary"].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[0] == "student_id")
    in_xlsx = {r[0]: (r[2], r[3], r[4]) for r in rows[header + 1 :] if r[0]}
    assert in_xlsx == stored
    # the CSV too
    table = list(csv.DictReader(io.StringIO(attachment(msg, ".csv").decode("utf-8-sig"))))
    assert {r["student_id"]: r["status"] for r in table} == {k: v[2] for k, v in stored.items()}
    rows = outbox.list_messages(db, meeting_id)
    assert [(r["channel"], r["state"], r["attempts"]) for r in rows] == [("email", "sent", 1)]


def test_smtp_down_then_up_delivers_exactly_once(db, home):
    meeting_id = seed_meeting(db)
    port = free_port()  # nothing listens yet
    config = make_config(home, smtp_port=port)
    pm = manager()
    messages.enqueue_meeting(db, config, meeting_id, now=T0)
    assert delivery.deliver_due(db, config, pm, now=T0).retried == 1
    row = outbox.list_messages(db, meeting_id)[0]
    assert row["state"] == "pending" and row["attempts"] == 1
    assert "Connection refused" in row["last_error"] or "Errno" in row["last_error"]
    assert row["next_attempt_at"] == (T0 + timedelta(seconds=30)).isoformat()
    assert PASSWORD not in row["last_error"]
    # not due yet: nothing is tried
    assert delivery.deliver_due(db, config, pm, now=T0 + timedelta(seconds=10)).retried == 0
    # a second failure doubles the wait
    assert delivery.deliver_due(db, config, pm, now=T0 + timedelta(seconds=31)).retried == 1
    row = outbox.list_messages(db, meeting_id)[0]
    assert row["next_attempt_at"] == (T0 + timedelta(seconds=91)).isoformat()
    # analysing the meeting again, or a restarted service, queues nothing new
    assert messages.enqueue_meeting(db, config, meeting_id, now=T0) == []
    sink = Sink()
    controller = smtp_server(port, sink)
    try:
        later = T0 + timedelta(seconds=100)
        assert delivery.deliver_due(db, config, pm, now=later).sent == 1
        for minutes in (5, 60, 600):
            delivery.deliver_due(db, config, pm, now=later + timedelta(minutes=minutes))
        assert len(sink.envelopes) == 1
        row = outbox.list_messages(db, meeting_id)[0]
        assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 3, "")
        # resend is deliberate: a new generation, delivered once more
        outbox.resend(db, config, meeting_id, ["email"], now=later)
        assert delivery.deliver_due(db, config, pm, now=later).sent == 1
        assert delivery.deliver_due(db, config, pm, now=later + timedelta(hours=1)).sent == 0
    finally:
        controller.stop()
    assert len(sink.envelopes) == 2
    assert [r["generation"] for r in outbox.list_messages(db, meeting_id)] == [0, 1]


def test_gives_up_after_max_attempts_and_stale_sending_is_retried(db, home):
    meeting_id = seed_meeting(db)
    config = make_config(home, smtp_port=free_port(), max_attempts=2)
    pm = manager()
    messages.enqueue_meeting(db, config, meeting_id, now=T0)
    delivery.deliver_due(db, config, pm, now=T0)
    assert delivery.deliver_due(db, config, pm, now=T0 + timedelta(hours=1)).failed == 1
    assert outbox.list_messages(db, state="failed")[0]["attempts"] == 2
    # a row left "sending" by a process that died is taken again after a while
    outbox.resend(db, config, meeting_id, ["email"], now=T0)
    claimed = outbox.claim_next(db, now=T0)
    assert claimed["state"] == "sending"
    assert outbox.claim_next(db, now=T0) is None
    assert outbox.requeue_stale(db, now=T0 + timedelta(seconds=60)) == 0
    assert outbox.requeue_stale(db, now=T0 + timedelta(hours=1)) == 1
    assert outbox.list_messages(db, state="pending")[0]["id"] == claimed["id"]


def test_a_message_left_sending_by_a_killed_process_is_sent_at_the_next_run(db, home):
    """The fault soak found it: `rollcall serve` killed (SIGKILL) while it rendered or sent
    a summary left the row "sending", and nobody sent it for STALE_SENDING_S (10 minutes).
    A row names the process that claimed it; one whose process is gone is taken again at
    the next delivery run and sent once. Rows of a live process or of another host wait."""
    import socket
    import sys

    meeting_id = seed_meeting(db)
    port = free_port()
    config = make_config(home, smtp_port=port)
    messages.enqueue_meeting(db, config, meeting_id, now=T0)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{socket.gethostname()}:{int(child.stdout)}"  # exited and reaped
    claimed = outbox.claim_next(db, now=T0, claimer=dead)
    assert claimed["state"] == "sending" and claimed["claimed_by"] == dead
    sink = Sink()
    controller = smtp_server(port, sink)
    try:
        result = delivery.deliver_due(db, config, manager(), now=T0 + timedelta(seconds=5))
        assert result.sent == 1 and len(sink.envelopes) == 1
        row = outbox.list_messages(db, meeting_id)[0]
        assert (row["state"], row["attempts"]) == ("sent", 2)
        # a live claimer (this process) or one on another host is left alone for a while
        outbox.resend(db, config, meeting_id, ["email"], now=T0)
        for claimer in (outbox.this_process(), f"other-host:{int(child.stdout)}"):
            row = outbox.claim_next(db, now=T0, claimer=claimer)
            assert outbox.requeue_stale(db, now=T0 + timedelta(seconds=60)) == 0
            db.execute("update outbox set state = 'pending' where id = ?", [row["id"]])
    finally:
        controller.stop()
    assert len(sink.envelopes) == 1


def test_webhooks_500_then_200_deliver_once(db, home, caplog):
    meeting_id = seed_meeting(db)
    with Receiver(fail=1) as hook:
        config = make_config(
            home, slack=hook.url("slack", SECRET_PATH), teams=hook.url("teams", SECRET_PATH)
        )
        pm = manager()
        config = config.model_copy(update={"smtp": config.smtp.model_copy(update={"host": ""})})
        assert messages.enqueue_meeting(db, config, meeting_id, now=T0) == ["slack", "teams"]
        assert delivery.deliver_due(db, config, pm, now=T0).retried == 2
        for r in outbox.list_messages(db, meeting_id):
            assert (
                r["last_error"] == "WebhookError: webhook answered HTTP 500 Internal Server Error"
            )
            assert "secret-token" not in r["recipient"]
        assert delivery.deliver_due(db, config, pm, now=T0 + timedelta(seconds=31)).sent == 2
        assert delivery.deliver_due(db, config, pm, now=T0 + timedelta(hours=2)).sent == 0
    paths = [p for p, _ in hook.requests]
    assert sorted(paths) == sorted([f"/slack/{SECRET_PATH}"] * 2 + [f"/teams/{SECRET_PATH}"] * 2)
    slack = hook.requests[-2][1] if paths[-2].startswith("/slack") else hook.requests[-1][1]
    teams = next(b for p, b in hook.requests if p.startswith("/teams"))
    text = slack["text"]
    assert text.startswith("*Attendance CS101: Week 1 &lt;Intro&gt; &amp; setup*")
    assert "Present 1 | Late 1 | Left early 1 | Absent 2" in text
    assert (
        "Below 75.0%: Dan O'Neil (0.0%), Eve Park (0.0%), Chloé &lt;b&gt;Martin&lt;/b&gt;" in text
    )
    assert "Camera off or not recognized: Dan O'Neil" in text
    assert "<https://rollcall.example.edu/admin/meetings/1|Open in rollcall>" in text
    card = teams["attachments"][0]["content"]
    assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["body"][0]["text"].startswith("**Attendance CS101")
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open in rollcall",
            "url": "https://rollcall.example.edu/admin/meetings/1",
        }
    ]
    assert all(SECRET_PATH not in r.getMessage() + str(r.__dict__) for r in caplog.records)


def test_email_html_renders_in_chromium(db, home, request, tmp_path):
    from rollcall.notify.summary import build_summary
    from tests.browser import dump_dom, screenshot

    meeting_id = seed_meeting(db)
    config = make_config(home)
    row = outbox.list_messages(db)  # nothing queued: build the message directly
    assert row == []
    messages.enqueue_meeting(db, config, meeting_id, now=T0)
    claimed = outbox.claim_next(db, now=T0)
    message = messages.build_message(db, config, claimed, tmp_path)
    assert message.summary == build_summary(db, config, meeting_id)
    msg = build_email(message)
    html = msg.get_body(("html",)).get_content()
    png = message.chart.read_bytes()
    # a mail client resolves cid: from the related part; a browser needs the data itself
    page_html = html.replace(
        f"cid:{CHART_CID}", "data:image/png;base64," + base64.b64encode(png).decode()
    )
    out = OUTPUT / request.node.name
    out.mkdir(parents=True, exist_ok=True)
    page = out / "email.html"
    page.write_text(page_html, encoding="utf-8")
    (out / "email.txt").write_text(msg.get_body(("plain",)).get_content(), encoding="utf-8")
    shot = screenshot(page, out / "email.png", 900, 1500)
    dom = dump_dom(page)
    names = re.findall(r'<tr style="background:#fff1f0;">\s*<td[^>]*>([^<]+)</td>', dom)
    assert names == ["Dan O'Neil", "Eve Park", "Chloé &lt;b&gt;Martin&lt;/b&gt;", "Bruno Díaz"]
    assert "Camera off or not recognized" in dom and "Open in rollcall" in dom
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1500, 900)
    assert image.std() > 10  # not a blank page


def test_config_validates_addresses_and_hides_webhook_urls(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[smtp]\nfrom_address = 'not an address'\n"
        "[[notify.courses]]\ncourse = 'CS101'\nemails = ['prof@example.edu', 'nope']\n"
        f"slack_webhook = 'ftp://hooks.example/{SECRET_PATH}'\n"
        f"teams_webhook = 'https:///{SECRET_PATH}'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    text = str(info.value)
    assert "smtp.from_address: Value error, not an email address" in text
    assert "notify.courses.0.emails: Value error, entry 1 ('nope')" in text
    assert "notify.courses.0.slack_webhook: Value error, must be an http:// or https://" in text
    assert "notify.courses.0.teams_webhook" in text
    assert SECRET_PATH not in text
    env = {"ROLLCALL_NOTIFY_COURSES": json.dumps([{"slack_webhook": f"https://h/{SECRET_PATH}"}])}
    with pytest.raises(ConfigError) as info:
        load_config(None, env)
    assert "notify.courses.0.course: Field required" in str(info.value)
    assert SECRET_PATH not in str(info.value)
    good = "[[notify.courses]]\ncourse = 'CS101'\nemails = [' prof@example.edu ']\n"
    path.write_text(good + f"slack_webhook = 'https://hooks.example/{SECRET_PATH}'\n")
    config = load_config(path, {})
    assert config.notify.courses[0].emails == ["prof@example.edu"]
    assert SECRET_PATH not in repr(config)


def test_notify_cli_list_resend_send(db, home, tmp_path, monkeypatch, capsys):
    from rollcall.cli.main import main

    meeting_id = seed_meeting(db)
    port = free_port()
    path = tmp_path / "config.toml"
    path.write_text(
        f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\n"
        f"username = '{USER}'\nfrom_address = 'rollcall@example.edu'\n"
        "[[notify.courses]]\ncourse = 'CS101'\nemails = ['prof@example.edu']\n"
    )
    monkeypatch.setenv("ROLLCALL_CONFIG", str(path))
    monkeypatch.setenv("ROLLCALL_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["notify", "resend", str(meeting_id), "--channel", "slack"]) == 1
    assert "does not use slack" in capsys.readouterr().err
    assert main(["notify", "resend", str(meeting_id)]) == 0
    assert main(["notify", "list", "--state", "pending"]) == 0
    out = capsys.readouterr().out
    assert "prof@example.edu" in out and "pending" in out
    sink = Sink()
    controller = smtp_server(port, sink)
    try:
        assert main(["notify", "send"]) == 0
    finally:
        controller.stop()
    assert "1 sent" in capsys.readouterr().out
    assert len(sink.envelopes) == 1 and sink.envelopes[0].rcpt_tos == ["prof@example.edu"]
    assert main(["notify", "list", "--meeting", str(meeting_id)]) == 0
    out = capsys.readouterr().out
    assert "sent" in out and PASSWORD not in out
    assert main(["notify", "list", "--meeting", "99"]) == 1


def _cli_config(tmp_path, monkeypatch, port: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f"[smtp]\nhost = '127.0.0.1'\nport = {port}\nsecurity = 'none'\n"
        f"username = '{USER}'\nfrom_address = 'rollcall@example.edu'\ntimeout_s = 5\n"
        "[notify]\nretry_base_s = 600\n"
        "[[notify.courses]]\ncourse = 'CS101'\nemails = ['prof@example.edu']\n"
    )
    monkeypatch.setenv("ROLLCALL_CONFIG", str(path))
    monkeypatch.setenv("ROLLCALL_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("COLUMNS", "200")


def test_notify_send_names_a_waiting_message_and_resend_makes_no_copy(
    db, home, tmp_path, monkeypatch, capsys
):
    """Mail server down, then up before the backoff ends: `notify send` must not look
    like "nothing to do", and `resend` then `send` delivers the summary exactly once."""
    from rollcall.cli.main import main

    meeting_id = seed_meeting(db)
    port = free_port()  # nothing listens yet
    _cli_config(tmp_path, monkeypatch, port)
    assert main(["notify", "resend", str(meeting_id)]) == 0
    capsys.readouterr()
    assert main(["notify", "send"]) == 1  # refused: retried later
    assert "1 to retry later" in capsys.readouterr().out
    sink = Sink()
    controller = smtp_server(port, sink)
    try:
        # the server is back, the message waits for its backoff (600 s)
        assert main(["notify", "send"]) == 1
        out = capsys.readouterr().out
        assert "0 sent, 0 to retry later, 0 failed, 1 waiting" in out
        row = outbox.list_messages(db, meeting_id)[0]
        assert f"message {row['id']} (meeting {meeting_id}, email to prof@example.edu)" in out
        assert "next attempt " + row["next_attempt_at"][:10] in out
        assert "notify send --now" in out
        assert sink.envelopes == []
        # the obvious follow-up: resend. It must not queue a second copy
        assert main(["notify", "resend", str(meeting_id)]) == 0
        out = capsys.readouterr().out
        assert "still in the queue, no copy made" in out and "made due now" in out
        assert len(outbox.list_messages(db, meeting_id)) == 1
        assert main(["notify", "send"]) == 0
        assert "1 sent, 0 to retry later, 0 failed, 0 waiting" in capsys.readouterr().out
        assert main(["notify", "send"]) == 0
        assert main(["notify", "resend", str(meeting_id)]) == 0  # sent: a deliberate new copy
        assert main(["notify", "send"]) == 0
    finally:
        controller.stop()
    assert len(sink.envelopes) == 2
    rows = outbox.list_messages(db, meeting_id)
    assert [(r["generation"], r["state"]) for r in rows] == [(0, "sent"), (1, "sent")]


def test_notify_send_now_delivers_the_waiting_messages(db, home, tmp_path, monkeypatch, capsys):
    from rollcall.cli.main import main

    meeting_id = seed_meeting(db)
    port = free_port()
    _cli_config(tmp_path, monkeypatch, port)
    config = load_config(None, dict(os.environ))
    messages.enqueue_meeting(db, config, meeting_id)
    assert main(["notify", "send"]) == 1
    sink = Sink()
    controller = smtp_server(port, sink)
    try:
        assert main(["notify", "send"]) == 1
        assert "1 waiting" in capsys.readouterr().out
        assert main(["notify", "send", "--now"]) == 0
        assert "1 sent, 0 to retry later, 0 failed, 0 waiting" in capsys.readouterr().out
        assert main(["notify", "send", "--now"]) == 0
    finally:
        controller.stop()
    assert len(sink.envelopes) == 1


def test_resend_of_a_message_being_sent_makes_no_copy(db, home):
    meeting_id = seed_meeting(db)
    config = make_config(home, smtp_port=free_port())
    messages.enqueue_meeting(db, config, meeting_id, now=T0)
    claimed = outbox.claim_next(db, now=T0)
    done = outbox.resend(db, config, meeting_id, now=T0)
    assert [(r.channel, r.row_id, r.queued, r.state) for r in done] == [
        ("email", claimed["id"], False, "sending")
    ]
    assert outbox.waiting(db, now=T0)[0]["id"] == claimed["id"]
    assert len(outbox.list_messages(db, meeting_id)) == 1


def test_plugins_list_shows_the_notifiers(config):
    from rollcall.pipeline.plugin_manager import describe_plugins

    infos = {i.name: i for i in describe_plugins(config, entry_points=False)}
    for name in ("notify_email", "notify_chat"):
        assert infos[name].core and infos[name].hooks == ("rollcall_send_notification",)


def test_worker_queues_once_and_a_broken_config_does_not_raise_into_the_job(db, home):
    from rollcall.analysis.process import queue_notifications

    meeting_id = seed_meeting(db)
    config = make_config(home, slack="https://hooks.example/x")
    assert queue_notifications(db, config, meeting_id) == ["email", "slack"]
    assert queue_notifications(db, config, meeting_id) == []  # job retried / service restarted
    no_smtp = config.model_copy(update={"smtp": config.smtp.model_copy(update={"host": ""})})
    assert outbox.channel_targets(no_smtp, COURSE) == {"slack": "CS101 slack webhook"}
    assert outbox.channel_targets(no_smtp, "OTHER") == {}
    # the message's course entry disappears before sending: failed at once, not retried
    gone = config.model_copy(update={"notify": config.notify.model_copy(update={"courses": []})})
    result = delivery.deliver_due(db, gone, manager())
    assert (result.sent, result.failed) == (0, 2)
    assert {r["last_error"] for r in outbox.list_messages(db)} == {
        "course CS101 has no [[notify.courses]] entry any more"
    }


def test_serve_scheduler_delivers_in_the_background(db, home):
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from rollcall.service.serve import _schedule_notifications

    meeting_id = seed_meeting(db)
    port = free_port()
    config = make_config(home, smtp_port=port, send_interval_s=0.2)
    messages.enqueue_meeting(db, config, meeting_id)
    sink = Sink()
    controller = smtp_server(port, sink)

    async def run() -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        _schedule_notifications(scheduler, config)
        scheduler.start()
        try:
            for _ in range(100):
                if sink.envelopes:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # more runs: nothing more is sent
        finally:
            scheduler.shutdown(wait=False)

    try:
        asyncio.run(run())
    finally:
        controller.stop()
    assert len(sink.envelopes) == 1
    assert outbox.list_messages(db)[0]["state"] == "sent"


def test_spanish_notifications_are_a_folder_and_missing_files_fall_back_to_english(
    db, home, tmp_path, monkeypatch
):
    import shutil

    import rollcall.plugins.notifiers as notifiers
    from rollcall.notify.summary import build_summary
    from rollcall.plugins.notifiers import render, summary_variables

    meeting_id = seed_meeting(db)
    port = free_port()
    with Receiver() as hook:
        config = make_config(home, smtp_port=port, slack=hook.url("slack", SECRET_PATH))
        course = config.notify.courses[0].model_copy(update={"language": "es"})
        config = config.model_copy(
            update={"notify": config.notify.model_copy(update={"courses": [course]})}
        )
        sink = Sink()
        controller = smtp_server(port, sink)
        try:
            assert messages.enqueue_meeting(db, config, meeting_id, now=T0) == ["email", "slack"]
            assert delivery.deliver_due(db, config, manager(), now=T0).sent == 2
        finally:
            controller.stop()
    msg = email.message_from_bytes(sink.envelopes[0].original_content, policy=email.policy.default)
    assert msg["Subject"] == (
        "Asistencia CS101: Week 1 <Intro> & setup (2026-09-01 09:00 UTC) - 3/5 asistieron, "
        "4 por debajo del 75%"
    )
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    slack = hook.requests[0][1]["text"]
    assert "Duración: 5 min" in text and "Estudiantes: 5" in text
    assert "Por debajo del 75.0% de asistencia (4):" in text and "Todos los estudiantes:" in text
    assert "Cámara apagada o rostro no reconocido (1)" in text
    assert "Rostros desconocidos: 2" in text and "Se adjunta la matriz de asistencia" in text
    assert "Abrir en rollcall: https://rollcall.example.edu/admin/meetings/1" in text
    assert '<html lang="es">' in html and "Chloé &lt;b&gt;Martin&lt;/b&gt;" in html
    assert "Salió antes" in html and "Ausente" in html and "min de conexión" in html
    assert 'alt="Asistencia por estudiante y minuto"' in html
    assert slack.startswith("*Asistencia CS101: Week 1 &lt;Intro&gt; &amp; setup*")
    assert "Presente 1 | Tarde 1 | Salió antes 1 | Ausente 2" in slack
    assert "Por debajo del 75.0%: Dan O'Neil (0.0%)" in slack
    assert "<https://rollcall.example.edu/admin/meetings/1|Abrir en rollcall>" in slack
    english = re.compile(
        r"\b(Attendance|attended|Below|Nobody|Students?|Present|Late|Left early|Absent|Status"
        r"|Unknown faces|Camera off|Open in|connected|attached|Duration|Date|Warnings|None)\b"
    )
    for body in (msg["Subject"], text, html, slack):
        assert english.findall(body) == []

    # a language folder lacking a file: that file is rendered from the English folder
    partial = tmp_path / "templates"
    shutil.copytree(notifiers.TEMPLATES / "en", partial / "en")
    shutil.copytree(notifiers.TEMPLATES / "es", partial / "es")
    (partial / "es" / "subject.txt.j2").unlink()
    monkeypatch.setattr(notifiers, "TEMPLATES", partial)
    notifiers.environment.cache_clear()
    try:
        variables = summary_variables(build_summary(db, config, meeting_id))
        assert render("es", "subject.txt.j2", **variables).startswith("Attendance CS101:")
        assert render("es", "email.txt.j2", **variables).startswith("Asistencia - Intro to CS")
    finally:
        monkeypatch.undo()
        notifiers.environment.cache_clear()
