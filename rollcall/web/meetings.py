"""Meeting pages: the per-minute matrix as a heatmap, the minutes that need review
with why and a form each to resolve them, the evidence per minute, the
participants-report reconciliation, corrections (click a cell), unknown-face
clusters to label, and the downloads (CSV, XLSX, PNG, HTML).

A needs-review minute is shown as ``?`` in the review colour, its cell's
``data-value`` is ``?`` as in the CSV, and its hover text is the stored evidence;
resolving it is an ordinary correction (present or absent, with a reason).

The report shown and downloaded is ``rollcall.reports.results.meeting_report``
with the configured attendance rules, written by the same report writers as
``rollcall report``; corrections go through ``rollcall.store.corrections`` and
labels through ``rollcall.pipeline.unknowns.label_cluster``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiohttp import web

from rollcall.config import Config
from rollcall.reports.common import (
    evidence_rows,
    minute_labels,
    minute_why,
    review_runs,
    review_text,
)
from rollcall.store import storage
from rollcall.store.corrections import CorrectionError, add_correction, list_corrections
from rollcall.web.auth import current_user, require_course
from rollcall.web.courses import DOWNLOAD_TYPES
from rollcall.web.db import db_call


def meeting_course(db, meeting_id: int) -> str:
    return storage.get_meeting(db, meeting_id)["course_id"]


def _reconciliation(db, meeting_id: int) -> list[dict]:
    return list(
        db.query(
            "select s.student_id, s.name, r.connected_minutes, r.unrecognized_minutes, "
            "r.in_participants from reconciliation r join students s on s.id = r.student_pk "
            "where r.meeting_id = ? order by s.student_id",
            [meeting_id],
        )
    )


def _clusters(db, meeting_id: int) -> list[dict]:
    out = []
    for c in storage.unknown_clusters(db, meeting_id):
        label = ""
        if c["label_student_pk"]:
            label = db["students"].get(c["label_student_pk"])["student_id"]
        out.append(
            {
                "cluster_no": c["cluster_no"],
                "n_tracks": c["n_tracks"],
                "seconds": round(sum(c["seconds_by_minute"])),
                "minutes": [round(s) for s in c["seconds_by_minute"]],
                "first_s": c["first_s"],
                "last_s": c["last_s"],
                "label": label,
            }
        )
    return out


def meeting_page_data(db, config: Config, meeting_id: int) -> dict:
    from rollcall.reports.results import meeting_report

    meeting = storage.get_meeting(db, meeting_id)
    data: dict = {
        "meeting": meeting,
        "report": None,
        "labels": [],
        "corrections": [],
        "clusters": [],
        "reconciliation": [],
        "review": "",
        "review_runs": [],
        "why": {},
        "evidence": [],
        "students": storage.list_students(db, meeting["course_id"]),
    }
    if meeting["status"] == "done":
        report = meeting_report(db, meeting_id, rules=config.attendance)
        labels = minute_labels(report)
        data.update(
            report=report,
            labels=labels,
            review=review_text(report),
            review_runs=review_runs(report),
            # student id -> minute -> why it is present or needs review (hover text)
            why={s.student_id: minute_why(s) for s in report.students},
            evidence=evidence_rows(report, labels),
            corrections=list_corrections(db, meeting_id),
            clusters=_clusters(db, meeting_id),
            reconciliation=_reconciliation(db, meeting_id),
        )
    return data


def _download(db, config: Config, meeting_id: int, fmt: str) -> bytes:
    from rollcall.reports.csv_report import write_csv_to
    from rollcall.reports.html import render_meeting_html
    from rollcall.reports.png import png_bytes
    from rollcall.reports.results import meeting_report
    from rollcall.reports.xlsx import write_xlsx_to

    report = meeting_report(db, meeting_id, rules=config.attendance)
    if fmt == "html":
        return render_meeting_html(report).encode()
    if fmt == "png":
        return png_bytes(report)
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / f"attendance.{fmt}"
        (write_csv_to if fmt == "csv" else write_xlsx_to)(report, path)
        return path.read_bytes()


def _minute(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise CorrectionError(f"{text!r} is not a minute number")
    return int(text)


def meeting_routes(config: Config, render) -> list[web.RouteDef]:
    home = config.home

    async def check(request: web.Request) -> int:
        """The meeting id, once the user may see its course (403) and it exists (404)."""
        try:
            meeting_id = int(request.match_info["meeting"])
        except ValueError:
            raise web.HTTPNotFound() from None
        try:
            course = await db_call(home, meeting_course, meeting_id)
        except storage.NotFound:
            if current_user(request).is_admin:
                raise web.HTTPNotFound(text=f"404: no meeting {meeting_id}") from None
            raise web.HTTPForbidden(text="403: this meeting is not one of yours") from None
        require_course(request, course)
        return meeting_id

    async def page(request: web.Request, *, status: int = 200, **extra) -> web.Response:
        meeting_id = await check(request)
        data = await db_call(home, meeting_page_data, config, meeting_id)
        return await render(request, "meeting.html.j2", status=status, **data, **extra)

    async def meeting(request: web.Request) -> web.Response:
        return await page(request)

    async def correct(request: web.Request) -> web.Response:
        meeting_id = await check(request)
        user = current_user(request)
        form = await request.post()
        try:
            if form.get("present") not in ("0", "1"):
                raise CorrectionError("say whether the student was present or absent")
            first = _minute(str(form.get("minute_from") or ""))
            last = _minute(str(form.get("minute_to") or ""))
            minutes = None if first is None else (first, first if last is None else last)
            await db_call(
                home,
                add_correction,
                meeting_id,
                str(form.get("student_id") or ""),
                present=form.get("present") == "1",
                reason=str(form.get("reason") or ""),
                made_by=user.email,
                minutes=minutes,
            )
        except (CorrectionError, storage.NotFound) as exc:
            return await page(request, status=400, error=str(exc))
        raise web.HTTPSeeOther(f"/meetings/{meeting_id}#matrix")

    async def label(request: web.Request) -> web.Response:
        from rollcall.pipeline.unknowns import label_cluster

        meeting_id = await check(request)
        form = await request.post()
        try:
            await db_call(
                home,
                label_cluster,
                meeting_id,
                int(request.match_info["cluster"]),
                str(form.get("student_id") or ""),
                attendance_settings=config.attendance,
                enroll=form.get("enroll") == "1",
            )
        except storage.NotFound as exc:
            return await page(request, status=400, error=str(exc))
        raise web.HTTPSeeOther(f"/meetings/{meeting_id}#unknowns")

    async def download(request: web.Request) -> web.Response:
        meeting_id = await check(request)
        fmt = request.match_info["fmt"]
        try:
            body = await db_call(home, _download, config, meeting_id, fmt)
        except storage.NotFound as exc:
            raise web.HTTPNotFound(text=f"404: {exc}") from None
        return web.Response(
            body=body,
            content_type=DOWNLOAD_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="meeting-{meeting_id}.{fmt}"'},
        )

    m = "/meetings/{meeting}"
    return [
        web.get(m, meeting),
        web.post(m + "/corrections", correct),
        web.post(m + "/unknowns/{cluster:\\d+}/label", label),
        web.get(m + "/attendance.{fmt:csv|xlsx|png|html}", download),
    ]
