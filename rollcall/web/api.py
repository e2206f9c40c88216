"""The JSON API under the web app's rules: ``/api/v1/...``.

Authenticated by a session or a personal API token (``Authorization: Bearer
rc_...``); an instructor gets only their courses and 403 for any other.

* ``GET /api/v1/me`` - who the token or session belongs to;
* ``GET /api/v1/courses`` - the courses the user may see;
* ``GET /api/v1/courses/{course}/students`` - a course's roster;
* ``GET /api/v1/meetings[?course=C]`` - analysed meetings;
* ``GET /api/v1/meetings/{id}`` - a meeting's corrected per-minute matrix.

Every route, with its authentication and errors, is in ``docs/openapi.yaml``
(``tests/test_web_api_spec.py`` keeps the two equal).
"""

from __future__ import annotations

from aiohttp import web

from rollcall.config import Config
from rollcall.reports.common import minute_labels
from rollcall.store import storage
from rollcall.web.auth import current_user, require_course
from rollcall.web.db import db_call


def _meeting(db, config: Config, meeting_id: int) -> tuple[str, dict]:
    from rollcall.reports.results import meeting_report

    meeting = storage.get_meeting(db, meeting_id)
    body: dict = {"meeting": meeting}
    if meeting["status"] == "done":
        report = meeting_report(db, meeting_id, rules=config.attendance)
        body["minutes"] = minute_labels(report)
        body["students"] = [
            {
                "student_id": s.student_id,
                "name": s.name,
                "minutes": list(s.minutes),
                "present_minutes": s.present_minutes,
                "attendance_pct": s.attendance_pct,
                "status": s.status,
                "corrected_minutes": list(s.corrected_minutes),
                "review_minutes": list(s.review_minutes),
            }
            for s in report.students
        ]
    return meeting["course_id"], body


def api_routes(config: Config) -> list[web.RouteDef]:
    home = config.home

    def forbidden() -> web.Response:
        return web.json_response({"error": "forbidden: not one of your courses"}, status=403)

    async def me(request: web.Request) -> web.Response:
        user = current_user(request)
        return web.json_response(
            {"email": user.email, "role": user.role, "courses": list(user.courses)}
        )

    async def courses(request: web.Request) -> web.Response:
        user = current_user(request)
        rows = await db_call(home, storage.list_courses)
        return web.json_response({"courses": [c for c in rows if user.can_see(c["course_id"])]})

    async def students(request: web.Request) -> web.Response:
        course = request.match_info["course"]
        if not current_user(request).can_see(course):
            return forbidden()
        try:
            rows = await db_call(home, storage.list_students, course)
        except storage.NotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({"students": rows})

    async def meetings(request: web.Request) -> web.Response:
        user = current_user(request)
        course = request.query.get("course") or None
        if course is not None and not user.can_see(course):
            return forbidden()
        rows = await db_call(home, storage.list_meetings, course)
        return web.json_response({"meetings": [m for m in rows if user.can_see(m["course_id"])]})

    async def meeting(request: web.Request) -> web.Response:
        user = current_user(request)
        try:
            course, body = await db_call(home, _meeting, config, int(request.match_info["id"]))
        except storage.NotFound as exc:
            if user.is_admin:
                return web.json_response({"error": str(exc)}, status=404)
            return forbidden()
        if not user.can_see(course):
            return forbidden()
        require_course(request, course)
        return web.json_response(body)

    return [
        web.get("/api/v1/me", me),
        web.get("/api/v1/courses", courses),
        web.get("/api/v1/courses/{course}/students", students),
        web.get("/api/v1/meetings", meetings),
        web.get("/api/v1/meetings/{id:\\d+}", meeting),
    ]
