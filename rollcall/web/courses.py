"""Course pages: the course list, a course's roster and meetings, one student's
photos (upload, webcam, delete), the roster import and the term view.

Instructors see and change only their courses (403 otherwise); creating and
deleting courses is for admins. Everything is done through the store and
enrolment functions the CLI uses.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from rollcall.config import AttendanceConfig, Config
from rollcall.enrollment.enroll import IMAGE_SUFFIXES
from rollcall.store import storage
from rollcall.web.auth import current_user, require_admin, require_course
from rollcall.web.db import db_call
from rollcall.web.enroll import Enroller
from rollcall.web.uploads import save_parts

MAX_ROSTER_BYTES = 2_000_000


def _visible_courses(db, user) -> list[dict]:
    courses = [c for c in storage.list_courses(db) if user.can_see(c["course_id"])]
    for c in courses:
        c["students"] = db["students"].count_where("course_id = ?", [c["course_id"]])
        c["meetings"] = db["meetings"].count_where("course_id = ?", [c["course_id"]])
    return courses


def _course_page(db, course_id: str, rules: AttendanceConfig | None = None) -> dict:
    from rollcall.reports.results import meetings_to_review

    course = storage.get_course(db, course_id)
    review = meetings_to_review(db, course_id, rules)
    return {
        "course": course,
        "students": storage.list_students(db, course_id),
        "meetings": [
            {**m, "review": review.get(m["id"])}
            for m in reversed(storage.list_meetings(db, course_id))
        ],
    }


def _student_page(db, course_id: str, student_id: str) -> dict:
    course = storage.get_course(db, course_id)
    student = storage.get_student(db, course_id, student_id)
    photos = [
        {k: p[k] for k in ("id", "filename", "face_px", "det_score", "sharpness", "created_at")}
        for p in storage.photos_of(db, student["id"])
    ]
    return {"course": course, "student": student, "photos": photos}


def _delete_summary(db, course_id: str) -> dict:
    """What deleting the course deletes: :func:`storage.plan_course_removal`'s plan, the
    one definition the removal itself follows."""
    plan = storage.plan_course_removal(db, course_id)
    return {
        "course": storage.get_course(db, course_id),
        "plan": plan,
        "students": plan.rows.get("students", 0),
        "photos": plan.rows.get("photos", 0),
        "meetings": plan.rows.get("meetings", 0),
    }


def _photo(db, photo_id: int) -> tuple[str, bytes, str]:
    rows = list(
        db.query(
            "select p.image, p.filename, s.course_id from photos p "
            "join students s on s.id = p.student_pk where p.id = ?",
            [photo_id],
        )
    )
    if not rows:
        raise storage.NotFound(f"no photo {photo_id}")
    return rows[0]["course_id"], rows[0]["image"], rows[0]["filename"]


def _import_roster(db, course_id: str, path: Path) -> int:
    from rollcall.enrollment.enroll import read_roster_csv

    storage.get_course(db, course_id)
    roster = read_roster_csv(path)
    for student_id, row in roster.items():
        storage.upsert_student(db, course_id, student_id, row["name"], row["email"])
    return len(roster)


def _image_type(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return {".png": "image/png", ".bmp": "image/bmp", ".webp": "image/webp"}.get(
        suffix, "image/jpeg"
    )


def course_routes(config: Config, render, enroller: Enroller) -> list[web.RouteDef]:
    home = config.home

    async def not_found(call, *args):
        try:
            return await db_call(home, call, *args)
        except storage.NotFound as exc:
            raise web.HTTPNotFound(text=f"404: {exc}") from None

    async def courses(request: web.Request) -> web.Response:
        user = current_user(request)
        return await render(
            request, "courses.html.j2", courses=await db_call(home, _visible_courses, user)
        )

    async def create_course(request: web.Request) -> web.Response:
        require_admin(request)
        form = await request.post()
        course_id = str(form.get("course_id") or "").strip()
        title = str(form.get("title") or "").strip()
        if not course_id or "/" in course_id or len(course_id) > 64:
            user = current_user(request)
            return await render(
                request,
                "courses.html.j2",
                status=400,
                error="A course needs an id (up to 64 characters, no slash).",
                courses=await db_call(home, _visible_courses, user),
            )
        await db_call(home, storage.add_course, course_id, title)
        raise web.HTTPSeeOther(f"/courses/{course_id}")

    async def course(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        data = await not_found(_course_page, course_id, config.attendance)
        return await render(request, "course.html.j2", **data)

    async def edit_course(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        title = str((await request.post()).get("title") or "").strip()
        await not_found(storage.get_course, course_id)
        await db_call(home, storage.add_course, course_id, title)
        raise web.HTTPSeeOther(f"/courses/{course_id}")

    async def delete_course_page(request: web.Request) -> web.Response:
        require_admin(request)
        data = await not_found(_delete_summary, request.match_info["course"])
        return await render(request, "course_delete.html.j2", **data)

    async def delete_course(request: web.Request) -> web.Response:
        require_admin(request)
        course_id = request.match_info["course"]
        form = await request.post()
        if form.get("confirm") != course_id:
            data = await not_found(_delete_summary, course_id)
            return await render(
                request,
                "course_delete.html.j2",
                status=400,
                error="Type the course id to confirm.",
                **data,
            )
        try:
            await not_found(storage.remove_course, course_id, home)
        except storage.StorageError as exc:  # a job of the course is still running
            data = await not_found(_delete_summary, course_id)
            return await render(
                request, "course_delete.html.j2", status=409, error=str(exc), **data
            )
        raise web.HTTPSeeOther("/courses")

    async def add_student(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        form = await request.post()
        student_id = str(form.get("student_id") or "").strip()
        if not student_id or "/" in student_id:
            raise web.HTTPBadRequest(text="400: a student needs an id without a slash")
        await not_found(storage.get_course, course_id)
        await db_call(
            home,
            storage.upsert_student,
            course_id,
            student_id,
            str(form.get("name") or "").strip(),
            str(form.get("email") or "").strip(),
        )
        raise web.HTTPSeeOther(f"/courses/{course_id}")

    async def remove_student(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        await not_found(storage.remove_student, course_id, request.match_info["student"])
        raise web.HTTPSeeOther(f"/courses/{course_id}")

    async def import_roster(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        folder = Path(tempfile.mkdtemp(prefix="roster-", dir=_uploads(home)))
        try:
            files, _ = await save_parts(
                request, folder, max_bytes=MAX_ROSTER_BYTES, suffixes=(".csv", ".txt"), max_files=1
            )
            if not files:
                raise web.HTTPBadRequest(text="400: choose a roster.csv file")
            try:
                count = await not_found(_import_roster, course_id, files[0].path)
            except (ValueError, UnicodeDecodeError) as exc:
                raise web.HTTPBadRequest(
                    text=f"400: {exc}".replace(str(files[0].path), files[0].filename)
                ) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        data = await not_found(_course_page, course_id, config.attendance)
        return await render(
            request, "course.html.j2", message=f"{count} student(s) imported.", **data
        )

    async def student(request: web.Request) -> web.Response:
        course_id = request.match_info["course"]
        require_course(request, course_id)
        data = await not_found(_student_page, course_id, request.match_info["student"])
        return await render(request, "student.html.j2", checks=[], **data)

    async def upload_photos(request: web.Request) -> web.StreamResponse:
        course_id, student_id = request.match_info["course"], request.match_info["student"]
        require_course(request, course_id)
        await not_found(storage.get_student, course_id, student_id)
        folder = Path(tempfile.mkdtemp(prefix="photos-", dir=_uploads(home)))
        try:
            files, _ = await save_parts(
                request,
                folder,
                max_bytes=config.enrollment.max_photo_bytes,
                suffixes=tuple(sorted(IMAGE_SUFFIXES)),
            )
            result = await enroller.enroll(course_id, student_id, [f.path for f in files])
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        checks = [
            {
                "filename": c.filename,
                "accepted": c.accepted,
                "problem": c.problem,
                "warnings": list(c.warnings),
            }
            for c in result.checks
        ]
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response(
                {"checks": checks, "photos_total": result.photos_total, "problem": result.problem}
            )
        data = await not_found(_student_page, course_id, student_id)
        return await render(request, "student.html.j2", checks=checks, error=result.problem, **data)

    async def delete_photo(request: web.Request) -> web.Response:
        course_id, student_id = request.match_info["course"], request.match_info["student"]
        require_course(request, course_id)
        form = await request.post()
        await not_found(
            storage.remove_photo, course_id, student_id, str(form.get("filename") or "")
        )
        raise web.HTTPSeeOther(f"/courses/{course_id}/students/{student_id}")

    async def photo(request: web.Request) -> web.Response:
        course_id, image, filename = await not_found(_photo, int(request.match_info["id"]))
        require_course(request, course_id)
        return web.Response(
            body=image,
            content_type=_image_type(filename),
            headers={"Cache-Control": "private, max-age=300"},
        )

    async def term(request: web.Request) -> web.Response:
        from rollcall.reports.course import course_report

        course_id = request.match_info["course"]
        require_course(request, course_id)
        report = await not_found(
            lambda db: course_report(
                db,
                course_id,
                threshold_pct=config.reports.threshold_pct,
                rules=config.attendance,
            )
        )
        return await render(request, "term.html.j2", report=report)

    async def term_download(request: web.Request) -> web.Response:
        from rollcall.reports.course import course_report
        from rollcall.reports.course_writers import write_course_reports

        course_id, fmt = request.match_info["course"], request.match_info["fmt"]
        require_course(request, course_id)

        def build(db) -> tuple[bytes, str]:
            report = course_report(
                db, course_id, threshold_pct=config.reports.threshold_pct, rules=config.attendance
            )
            with tempfile.TemporaryDirectory(dir=_uploads(home)) as out:
                paths = write_course_reports(report, out, formats=(fmt,))
                path = paths[fmt]
                return path.read_bytes(), path.name

        body, name = await not_found(build)
        return web.Response(
            body=body,
            content_type=DOWNLOAD_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{course_id}-{name}"'},
        )

    c = "/courses/{course}"
    s = c + "/students/{student}"
    return [
        web.get("/courses", courses),
        web.post("/courses", create_course),
        web.get(c, course),
        web.post(c + "/edit", edit_course),
        web.get(c + "/delete", delete_course_page),
        web.post(c + "/delete", delete_course),
        web.post(c + "/students", add_student),
        web.post(c + "/roster", import_roster),
        web.get(c + "/term", term),
        web.get(c + "/term.{fmt:csv|xlsx|html|png}", term_download),
        web.get(s, student),
        web.post(s + "/remove", remove_student),
        web.post(s + "/photos", upload_photos),
        web.post(s + "/photos/delete", delete_photo),
        web.get("/photos/{id:\\d+}", photo),
    ]


DOWNLOAD_TYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "png": "image/png",
}


def _uploads(home: Path) -> Path:
    folder = home / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
