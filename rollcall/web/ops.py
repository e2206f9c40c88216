"""Operations pages: the dashboard, recordings (upload, Zoom cloud), jobs,
notifications, plugins (admins) and accounts (admins).

An uploaded recording is streamed to ``<home>/uploads/recordings`` and queued
as a job of kind ``upload`` (``payload.local_path``); the service's workers
analyse it like a Zoom recording. Jobs, outbox, plugin switches and accounts
go through ``rollcall.store`` (``jobs``, ``outbox``, ``plugin_admin``, ``users``).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from rollcall.config import AttendanceConfig, Config
from rollcall.store import jobs, outbox, storage, users
from rollcall.web.auth import current_user, require_admin, require_course
from rollcall.web.db import db_call

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
UPLOAD_KIND = "upload"


def _visible(user: users.User, course_id: str | None) -> bool:
    return user.can_see(course_id)


def _dashboard(db, user: users.User, threshold: float, rules: AttendanceConfig) -> dict:
    from rollcall.reports.results import meeting_students, meetings_to_review

    visible = [m for m in storage.list_meetings(db) if _visible(user, m["course_id"])]
    meetings = visible[::-1][:10]
    # Students under the threshold, as the reports show them: an instructor's
    # corrections (and what they left to review) recomputed for meetings that have any.
    corrected = {r["meeting_id"] for r in db.query("select distinct meeting_id from corrections")}
    candidates = [
        r
        for r in db.query(
            "select m.id as meeting_id, m.title, m.course_id, s.student_id, s.name, "
            "a.attendance_pct, a.status, a.review_minutes from attendance a "
            "join meetings m on m.id = a.meeting_id join students s on s.id = a.student_pk "
            "where a.attendance_pct < ? or a.meeting_id in (select meeting_id from corrections) "
            "order by m.id desc, s.student_id limit 400",
            [threshold],
        )
        if _visible(user, r["course_id"])
    ]
    now = {
        meeting_id: {
            s.student_id: s
            for s in meeting_students(db, storage.get_meeting(db, meeting_id), rules)
        }
        for meeting_id in {r["meeting_id"] for r in candidates} & corrected
    }
    attention = []
    for r in candidates:
        s = now.get(r["meeting_id"], {}).get(r["student_id"])
        if s is not None:
            r = {**r, "attendance_pct": s.attendance_pct, "status": s.status,
                 "review_minutes": len(s.review_minutes)}  # fmt: skip
        if r["attendance_pct"] < threshold:
            attention.append(r)
    by_id = {m["id"]: m for m in visible}
    review = [
        {**by_id[meeting_id], "review": count}
        for meeting_id, count in sorted(meetings_to_review(db, rules=rules).items(), reverse=True)
        if meeting_id in by_id
    ]
    waiting = [
        j
        for state in (jobs.FAILED, jobs.QUEUED, jobs.DOWNLOADING, jobs.ANALYZING)
        for j in jobs.list_jobs(db, state, limit=50)
        if _visible(user, j.course_id)
    ]
    return {
        "meetings": meetings,
        "attention": attention[:20],
        "review": review[:20],
        "waiting": waiting,
    }


def _jobs(db, user: users.User, state: str | None) -> list[jobs.Job]:
    return [j for j in jobs.list_jobs(db, state, limit=200) if _visible(user, j.course_id)]


def _job(db, job_id: int) -> tuple[jobs.Job, list[jobs.JobEvent]]:
    return jobs.get(db, job_id), jobs.events(db, job_id)


def _enqueue_upload(
    db, course_id: str, path: Path, title: str, start: str | None, who: str
) -> jobs.Job:
    storage.get_course(db, course_id)
    upload_id = uuid.uuid4().hex
    job, _ = jobs.enqueue(
        db,
        key=f"{UPLOAD_KIND}:{upload_id}",
        course_id=course_id,
        meeting_uuid=f"{UPLOAD_KIND}-{upload_id}",
        file_id=UPLOAD_KIND,
        payload={
            "kind": UPLOAD_KIND,
            "local_path": str(path),
            "start_time": start,
            "uploaded_by": who,
        },
        topic=title,
        reason=f"uploaded by {who}",
    )
    return job


def _notifications(db, user: users.User) -> list[dict]:
    rows = [r for r in outbox.list_messages(db) if _visible(user, r["course_id"])]
    rows.reverse()
    return rows[:200]


def _plugins(db, config: Config) -> dict:
    from rollcall.pipeline.plugin_manager import describe_plugins
    from rollcall.store.plugin_admin import NOTICES, audit_log, plugin_statuses

    return {
        "statuses": plugin_statuses(db, describe_plugins(config)),
        "notices": NOTICES,
        "audit": audit_log(db, 50),
        "courses": storage.list_courses(db),
    }


def _set_plugin(
    db, config: Config, name: str, enabled: bool, course: str | None, yes: bool, who: str
):
    from rollcall.pipeline.plugin_manager import describe_plugins
    from rollcall.store.plugin_admin import set_plugin_enabled

    return set_plugin_enabled(
        db, describe_plugins(config), name, enabled, course_id=course, who=who, confirmed=yes
    )


def _users(db) -> dict:
    return {"users": users.list_users(db), "courses": storage.list_courses(db)}


def _zoom_recordings(config: Config, day_from: date, day_to: date) -> list:
    from rollcall.bot.zoom_client import ZoomClient

    client = ZoomClient.from_config(config.zoom)
    return [r for user in config.zoom.users for r in client.list_recordings(user, day_from, day_to)]


def _zoom_enqueue(db, config: Config, meeting_uuid: str):
    from rollcall.bot.intake import enqueue_recording
    from rollcall.bot.zoom_client import ZoomClient

    recording = ZoomClient.from_config(config.zoom).get_meeting_recordings(meeting_uuid)
    return enqueue_recording(
        db, config, recording, download_token=recording.download_access_token, source="web"
    )


def ops_routes(config: Config, render, status: Callable[[], dict[str, Any]]) -> list[web.RouteDef]:
    home = config.home

    async def dashboard(request: web.Request) -> web.Response:
        user = current_user(request)
        data = await db_call(
            home, _dashboard, user, config.reports.threshold_pct, config.attendance
        )
        service = dict(status())
        if service.get("last_poll_ok"):
            service["last_poll_ok"] = time.strftime(
                "%Y-%m-%d %H:%M UTC", time.gmtime(service["last_poll_ok"])
            )
        if not user.is_admin:  # configuration details are for admins
            service["disabled"] = {}
        return await render(request, "dashboard.html.j2", service=service, **data)

    # ------------------------------------------------------------ recordings

    def zoom_ready() -> bool:
        from rollcall.config import zoom_credentials_missing

        return not zoom_credentials_missing(config) and bool(config.zoom.users)

    async def recordings(request: web.Request) -> web.Response:
        user = current_user(request)
        courses = [
            c for c in await db_call(home, storage.list_courses) if user.can_see(c["course_id"])
        ]
        found, error = None, ""
        today = date.today()
        day_from = request.query.get("from") or (today - timedelta(days=7)).isoformat()
        day_to = request.query.get("to") or today.isoformat()
        if user.is_admin and zoom_ready() and "from" in request.query:
            try:
                found = await _in_thread(
                    _zoom_recordings,
                    config,
                    date.fromisoformat(day_from),
                    date.fromisoformat(day_to),
                )
            except Exception as exc:  # shown on the page: wrong dates, Zoom refusing
                error = str(exc)
        return await render(
            request,
            "recordings.html.j2",
            courses=courses,
            zoom=user.is_admin and zoom_ready(),
            found=found,
            day_from=day_from,
            day_to=day_to,
            error=error,
            max_bytes=config.server.max_upload_bytes,
        )

    async def upload_recording(request: web.Request) -> web.StreamResponse:
        from rollcall.web.uploads import save_parts

        user = current_user(request)
        folder = home / "uploads" / "recordings" / uuid.uuid4().hex
        files, fields = await save_parts(
            request,
            folder,
            max_bytes=config.server.max_upload_bytes,
            suffixes=VIDEO_SUFFIXES,
            max_files=1,
        )
        course_id = fields.get("course", "")
        try:
            if not files:
                raise web.HTTPBadRequest(text="400: choose a video file")
            require_course(request, course_id)
            start = fields.get("start") or None
            if start is not None:
                try:
                    start = datetime.fromisoformat(start).isoformat()
                except ValueError:
                    raise web.HTTPBadRequest(
                        text=f"400: {start!r} is not a date and time"
                    ) from None
            title = fields.get("title", "").strip() or files[0].filename
            job = await db_call(
                home, _enqueue_upload, course_id, files[0].path, title, start, user.email
            )
        except storage.NotFound as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise web.HTTPBadRequest(text=f"400: {exc}") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"job": job.id, "url": f"/jobs/{job.id}"})
        raise web.HTTPSeeOther(f"/jobs/{job.id}")

    async def zoom_analyse(request: web.Request) -> web.Response:
        require_admin(request)
        form = await request.post()
        result = await db_call(home, _zoom_enqueue, config, str(form.get("uuid") or ""))
        if result.job_id is None:
            raise web.HTTPBadRequest(text="400: the recording has no usable video file")
        raise web.HTTPSeeOther(f"/jobs/{result.job_id}")

    # ------------------------------------------------------------ jobs

    async def job_list(request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        if state is not None and state not in jobs.STATES:
            raise web.HTTPBadRequest(text="400: unknown state")
        found = await db_call(home, _jobs, current_user(request), state)
        return await render(request, "jobs.html.j2", jobs=found, state=state, states=jobs.STATES)

    async def job_of(request: web.Request) -> tuple[jobs.Job, list[jobs.JobEvent]]:
        try:
            job, events = await db_call(home, _job, int(request.match_info["id"]))
        except jobs.JobNotFound:
            if current_user(request).is_admin:
                raise web.HTTPNotFound(text="404: no such job") from None
            raise web.HTTPForbidden(text="403: not one of your jobs") from None
        require_course(request, job.course_id)
        return job, events

    async def job_page(request: web.Request) -> web.Response:
        job, events = await job_of(request)
        return await render(request, "job.html.j2", job=job, events=events)

    async def job_action(request: web.Request) -> web.Response:
        job, _ = await job_of(request)
        action = request.match_info["action"]
        try:
            if action == "retry":
                await db_call(home, jobs.retry, job.id)
            else:
                await db_call(
                    home, jobs.cancel, job.id, f"cancelled by {current_user(request).email}"
                )
        except jobs.JobError as exc:
            return await render(
                request, "job.html.j2", status=409, error=str(exc), job=job, events=[]
            )
        raise web.HTTPSeeOther(f"/jobs/{job.id}")

    # ------------------------------------------------------------ notifications

    async def notifications(request: web.Request) -> web.Response:
        rows = await db_call(home, _notifications, current_user(request))
        return await render(request, "notifications.html.j2", rows=rows)

    async def resend(request: web.Request) -> web.Response:
        from rollcall.web.meetings import meeting_course

        meeting_id = int(request.match_info["meeting"])
        try:
            course = await db_call(home, meeting_course, meeting_id)
        except storage.NotFound:
            raise web.HTTPForbidden(text="403: not one of your meetings") from None
        require_course(request, course)
        try:
            ids = await db_call(home, outbox.resend, config, meeting_id)
        except outbox.OutboxError as exc:
            rows = await db_call(home, _notifications, current_user(request))
            return await render(
                request, "notifications.html.j2", status=409, error=str(exc), rows=rows
            )
        rows = await db_call(home, _notifications, current_user(request))
        return await render(
            request,
            "notifications.html.j2",
            message=f"{len(ids)} message(s) queued again.",
            rows=rows,
        )

    # ------------------------------------------------------------ plugins (admins)

    async def plugins(request: web.Request, **extra) -> web.Response:
        require_admin(request)
        data = await db_call(home, _plugins, config)
        return await render(
            request, "plugins.html.j2", status=extra.pop("status", 200), **data, **extra
        )

    async def plugins_page(request: web.Request) -> web.Response:
        return await plugins(request)

    async def set_plugin(request: web.Request) -> web.Response:
        from rollcall.store.plugin_admin import ConfirmationRequired, PluginAdminError

        user = require_admin(request)
        name = request.match_info["name"]
        form = await request.post()
        enabled = form.get("enabled") == "1"
        course = str(form.get("course") or "") or None
        try:
            entry = await db_call(
                home,
                _set_plugin,
                config,
                name,
                enabled,
                course,
                form.get("confirm") == "1",
                user.email,
            )
        except ConfirmationRequired as exc:
            return await plugins(
                request, status=409, confirm=exc.notice, confirm_course=course or ""
            )
        except (PluginAdminError, storage.NotFound) as exc:
            return await plugins(request, status=400, error=str(exc))
        return await plugins(request, message=entry.detail)

    # ------------------------------------------------------------ accounts (admins)

    async def users_page(request: web.Request, **extra) -> web.Response:
        require_admin(request)
        data = await db_call(home, _users)
        return await render(
            request, "users.html.j2", status=extra.pop("status", 200), **data, **extra
        )

    async def user_list(request: web.Request) -> web.Response:
        return await users_page(request)

    async def add_user(request: web.Request) -> web.Response:
        require_admin(request)
        form = await request.post()
        try:
            await db_call(
                home,
                users.add_user,
                str(form.get("email") or ""),
                str(form.get("role") or ""),
                str(form.get("password") or ""),
                [str(c) for c in form.getall("course", [])],
            )
        except (users.UserError, storage.NotFound) as exc:
            return await users_page(request, status=400, error=str(exc))
        return await users_page(request, message="Account added.")

    async def remove_user(request: web.Request) -> web.Response:
        admin = require_admin(request)

        def remove(db) -> users.User:
            user = users.get_user(db, int(request.match_info["id"]))
            if user.id == admin.id:
                raise users.UserError("you cannot remove your own account")
            return users.remove_user(db, user.email)

        try:
            await db_call(home, remove)
        except (users.UserError, storage.NotFound) as exc:
            return await users_page(request, status=400, error=str(exc))
        return await users_page(request, message="Account removed.")

    async def user_courses(request: web.Request) -> web.Response:
        require_admin(request)
        form = await request.post()
        try:
            await db_call(
                home,
                users.set_courses,
                int(request.match_info["id"]),
                [str(c) for c in form.getall("course", [])],
            )
        except storage.NotFound as exc:
            return await users_page(request, status=400, error=str(exc))
        return await users_page(request, message="Courses saved.")

    return [
        web.get("/", dashboard),
        web.get("/recordings", recordings),
        web.post("/recordings", upload_recording),
        web.post("/recordings/zoom", zoom_analyse),
        web.get("/jobs", job_list),
        web.get("/jobs/{id:\\d+}", job_page),
        web.post("/jobs/{id:\\d+}/{action:retry|cancel}", job_action),
        web.get("/notifications", notifications),
        web.post("/notifications/{meeting:\\d+}/resend", resend),
        web.get("/plugins", plugins_page),
        web.post("/plugins/{name}", set_plugin),
        web.get("/users", user_list),
        web.post("/users", add_user),
        web.post("/users/{id:\\d+}/remove", remove_user),
        web.post("/users/{id:\\d+}/courses", user_courses),
    ]


async def _in_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)
