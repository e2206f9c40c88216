"""The web app's accounts, sessions, roles, CSRF and API tokens, over real HTTP
(aiohttp's test server on 127.0.0.1) and a real database; no browser, no models.

The browser flows (upload, webcam, recordings) are in ``test_web_browser.py``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rollcall.config import load_config
from rollcall.store import storage, users
from tests.reportdata import add_course, add_meeting

PASSWORD = "correct horse battery"


@pytest.fixture
def site(tmp_path, base_env):
    """Two courses with a meeting each, an admin, and an instructor of CS101 only."""
    config = load_config(
        None,
        {**base_env, "ROLLCALL_HOME": str(tmp_path), "ROLLCALL_SERVER_ADMIN_TOKEN": "legacy-tok"},
    )
    db = storage.open_db(tmp_path)
    add_course(db, "CS101", ["S1", "S2"])
    add_course(db, "BIO2", ["B1"])
    cs = add_meeting(db, "CS101", "m1", {"S1": [1, 1, 0], "S2": [0, 0, 0]}, title="Week 1")
    bio = add_meeting(db, "BIO2", "m2", {"B1": [1, 1, 1]}, title="Bio week")
    db.conn.close()
    return {"config": config, "home": tmp_path, "cs": cs, "bio": bio}


def make_app(config) -> web.Application:
    from rollcall.web.admin_api import admin_routes
    from rollcall.web.app import setup_web_app

    app = web.Application()
    app.add_routes(admin_routes(config))
    setup_web_app(app, config)
    return app


def add_users(home, *, admin: bool = True) -> None:
    db = storage.open_db(home)
    if admin:
        users.add_user(db, "admin@school.edu", "admin", PASSWORD)
    users.add_user(db, "teach@school.edu", "instructor", PASSWORD, ["CS101"])
    db.conn.close()


def run(config, scenario) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app(config))) as client:
            await scenario(client)

    asyncio.run(main())


async def csrf_of(client, path: str = "/login") -> str:
    page = await (await client.get(path)).text()
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


async def sign_in(client, email: str, password: str = PASSWORD, next_: str = "/"):
    token = await csrf_of(client, "/login")
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": next_},
        allow_redirects=False,
    )


# ---------------------------------------------------------------- sign-in and sessions


def test_every_page_needs_sign_in_and_sessions_are_safe_cookies(site, recwarn):
    add_users(site["home"])

    async def scenario(client) -> None:
        for path in ("/", "/courses", f"/meetings/{site['cs']}", "/jobs", "/plugins"):
            r = await client.get(path, allow_redirects=False)
            assert r.status == 303 and r.headers["Location"].startswith("/login?next=")
        r = await client.get("/api/v1/meetings")
        assert r.status == 401
        r = await client.get("/static/app.js")
        assert r.status == 200
        r = await sign_in(client, "admin@school.edu", "wrong password")
        assert r.status == 401 and "Wrong email or password" in await r.text()
        r = await sign_in(client, "admin@school.edu", next_="/courses")
        assert r.status == 303 and r.headers["Location"] == "/courses"
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        r = await client.get("/")
        assert r.status == 200 and "Dashboard" in await r.text()
        # the meeting links of chat messages lead a signed-in user to the meeting page
        chat = await client.get(f"/admin/meetings/{site['cs']}", allow_redirects=False)
        assert chat.status == 303 and chat.headers["Location"] == f"/meetings/{site['cs']}"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "legacy-tok" not in await r.text()
        token = await csrf_of(client, "/")
        r = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
        assert r.status == 303
        r = await client.get("/", allow_redirects=False)
        assert r.status == 303

    run(site["config"], scenario)
    ours = [
        w
        for w in recwarn
        if w.category.__name__ == "NotAppKeyWarning" and "/rollcall/" in w.filename
    ]
    assert not ours, [str(w.message) for w in ours]  # app and request state use typed keys


def test_secure_cookie_when_tls_is_terminated_in_front(site, base_env):
    add_users(site["home"])
    config = site["config"].model_copy(
        update={"server": site["config"].server.model_copy(update={"tls_terminated": True})}
    )

    async def scenario(client) -> None:
        r = await client.get("/login")  # the sign-in form's session (its CSRF token)
        assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]

    run(config, scenario)


def test_sign_in_is_rate_limited(site):
    add_users(site["home"])

    async def scenario(client) -> None:
        for _ in range(5):
            assert (await sign_in(client, "admin@school.edu", "wrong password")).status == 401
        r = await sign_in(client, "admin@school.edu")  # the right password, too late
        assert r.status == 429 and "Too many" in await r.text()

    run(site["config"], scenario)


def test_password_change_ends_the_other_sessions(site):
    add_users(site["home"])

    async def scenario(client) -> None:
        async with TestClient(TestServer(make_app(site["config"]))) as other:
            assert (await sign_in(other, "teach@school.edu")).status == 303
            assert (await sign_in(client, "teach@school.edu")).status == 303
            token = await csrf_of(client, "/account")
            r = await client.post(
                "/account/password",
                data={"csrf_token": token, "current": PASSWORD, "new": "brand new password"},
            )
            assert r.status == 200 and "Password changed" in await r.text()
            assert (await client.get("/", allow_redirects=False)).status == 200
            assert (await other.get("/", allow_redirects=False)).status == 303

    run(site["config"], scenario)


# ---------------------------------------------------------------- roles and CSRF


def test_instructor_sees_only_their_courses(site):
    add_users(site["home"])
    db = storage.open_db(site["home"])
    token = users.create_api_token(db, users.user_by_email(db, "teach@school.edu").id)
    db.conn.close()
    bearer = {"Authorization": f"Bearer {token}"}

    async def scenario(client) -> None:
        assert (await sign_in(client, "teach@school.edu")).status == 303
        assert (await client.get(f"/meetings/{site['cs']}")).status == 200
        for path in (
            f"/meetings/{site['bio']}",
            f"/meetings/{site['bio']}/attendance.csv",
            "/meetings/99999",
            "/courses/BIO2",
            "/courses/BIO2/students/B1",
            "/courses/BIO2/term",
            "/plugins",
            "/users",
        ):
            r = await client.get(path, allow_redirects=False)
            assert r.status == 403, path
        page = await (await client.get("/courses")).text()
        assert "CS101" in page and "BIO2" not in page
        dash = await (await client.get("/")).text()
        assert "Week 1" in dash and "Bio week" not in dash
        r = await client.get(f"/api/v1/meetings/{site['bio']}", headers=bearer)
        assert r.status == 403
        r = await client.get("/api/v1/courses/BIO2/students", headers=bearer)
        assert r.status == 403
        r = await client.get("/api/v1/meetings", headers=bearer)
        assert [m["course_id"] for m in (await r.json())["meetings"]] == ["CS101"]
        r = await client.get(f"/api/v1/meetings/{site['cs']}", headers=bearer)
        assert r.status == 200 and (await r.json())["students"][0]["minutes"] == [1, 1, 0]
        csrf = await csrf_of(client, "/courses")
        r = await client.post("/plugins/emotion", data={"csrf_token": csrf, "enabled": "1"})
        assert r.status == 403

    run(site["config"], scenario)


def test_forms_without_their_csrf_token_are_refused(site):
    add_users(site["home"])

    async def scenario(client) -> None:
        assert (await sign_in(client, "admin@school.edu")).status == 303
        form = {"student_id": "S9", "name": "New"}
        r = await client.post("/courses/CS101/students", data=form, allow_redirects=False)
        assert r.status == 403
        r = await client.post(
            "/courses/CS101/students", data={**form, "csrf_token": "forged"}, allow_redirects=False
        )
        assert r.status == 403
        r = await client.post("/login", data={"email": "x", "password": "y"})
        assert r.status == 403
        db = storage.open_db(site["home"])
        assert not db["students"].count_where("student_id = 'S9'")
        csrf = await csrf_of(client, "/courses/CS101")
        r = await client.post(
            "/courses/CS101/students", data={**form, "csrf_token": csrf}, allow_redirects=False
        )
        assert r.status == 303
        assert db["students"].count_where("student_id = 'S9'") == 1

    run(site["config"], scenario)


def test_correction_from_the_page_is_in_the_csv_and_xlsx(site):
    from openpyxl import load_workbook

    add_users(site["home"])

    async def scenario(client) -> None:
        assert (await sign_in(client, "teach@school.edu")).status == 303
        csrf = await csrf_of(client, f"/meetings/{site['cs']}")
        r = await client.post(
            f"/meetings/{site['cs']}/corrections",
            data={
                "csrf_token": csrf,
                "student_id": "S2",
                "minute_from": "1",
                "minute_to": "2",
                "present": "1",
                "reason": "camera broken, was there",
            },
            allow_redirects=False,
        )
        assert r.status == 303
        text = (await (await client.get(f"/meetings/{site['cs']}/attendance.csv")).read()).decode(
            "utf-8-sig"
        )
        rows = {row[0]: row for row in csv.reader(io.StringIO(text))}
        assert rows["S2"][2:5] == ["0", "1", "1"]
        assert "camera broken" in text
        body = await (await client.get(f"/meetings/{site['cs']}/attendance.xlsx")).read()
        book = load_workbook(io.BytesIO(body))
        assert any(
            "camera broken" in str(cell.value or "")
            for ws in book.worksheets
            for row in ws.iter_rows()
            for cell in row
        )
        page = await (await client.get(f"/meetings/{site['cs']}")).text()
        assert "camera broken" in page and "teach@school.edu" in page

    run(site["config"], scenario)


# ---------------------------------------------------------------- the shared admin token


def test_shared_admin_token_works_until_an_admin_account_exists(site, caplog):
    add_users(site["home"], admin=False)
    legacy = {"Authorization": "Bearer legacy-tok"}

    async def scenario(client) -> None:
        r = await client.get("/api/plugins", headers=legacy)
        assert r.status == 200
        r = await client.get("/api/v1/meetings", headers=legacy)
        assert r.status == 200 and r.headers["Deprecation"] == "true"
        assert len((await r.json())["meetings"]) == 2
        r = await client.get("/api/plugins", headers={"Authorization": "Bearer wrong"})
        assert r.status == 401
        db = storage.open_db(site["home"])
        users.add_user(db, "admin@school.edu", "admin", PASSWORD)
        db.conn.close()
        r = await client.get("/api/plugins", headers=legacy)
        assert r.status == 401 and "retired" in (await r.json())["error"]
        r = await client.get("/api/v1/meetings", headers=legacy)
        assert r.status == 401

    with caplog.at_level("WARNING"):
        run(site["config"], scenario)
    assert "deprecated" in caplog.text
    assert "legacy-tok" not in caplog.text


def api_routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app registers under /api."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") and route.method not in ("HEAD", "OPTIONS"):
            out.add((route.method, path))
    return out


def test_personal_api_tokens_work_on_every_json_route(site, base_env):
    """An admin's token opens every /api route, /api/plugins included, with no shared
    token configured at all; an instructor's gets 403 on the admin routes; a revoked or
    unknown token gets 401."""
    from rollcall.config import load_config

    config = load_config(None, {**base_env, "ROLLCALL_HOME": str(site["home"])})
    assert not config.server.admin_token.get_secret_value()
    add_users(site["home"])
    db = storage.open_db(site["home"])
    admin_token = users.create_api_token(db, users.user_by_email(db, "admin@school.edu").id)
    teacher = users.user_by_email(db, "teach@school.edu")
    teacher_token = users.create_api_token(db, teacher.id, "script")
    db.conn.close()
    admin = {"Authorization": f"Bearer {admin_token}"}
    teach = {"Authorization": f"Bearer {teacher_token}"}
    sample = {"{course}": "CS101", "{id}": str(site["cs"]), "{name}": "emotion"}
    bodies = {"/api/plugins/{name}": {"enabled": True, "course": "CS101", "yes": True}}
    admin_only = {"/api/plugins", "/api/plugins/{name}"}
    routes = api_routes_of(make_app(config))
    assert ("GET", "/api/plugins") in routes and ("GET", "/api/v1/me") in routes

    async def scenario(client) -> None:
        for method, template in sorted(routes):
            path = template
            for key, value in sample.items():
                path = path.replace(key, value)
            body = bodies.get(template)
            r = await client.request(method, path, headers=admin, json=body)
            assert r.status == 200, (method, template, r.status, await r.text())
            r = await client.request(method, path, headers=teach, json=body)
            expected = 403 if template in admin_only else 200
            assert r.status == expected, (method, template, r.status)
            for headers in ({}, {"Authorization": "Bearer rc_unknown"}):
                r = await client.request(method, path, headers=headers, json=body)
                assert r.status in (401, 503), (method, template, r.status)
                if headers:
                    assert r.status == 401
        db = storage.open_db(site["home"])
        audit = list(db["plugin_audit"].rows)
        assert audit[-1]["who"] == "admin@school.edu"
        tokens = users.list_api_tokens(db, teacher.id)
        assert tokens[0].last_used_at is not None
        users.revoke_api_token(db, teacher.id, tokens[0].id)
        db.conn.close()
        r = await client.get("/api/v1/me", headers=teach)
        assert r.status == 401

    run(config, scenario)


def test_admin_manages_courses_users_and_plugins(site):
    add_users(site["home"])

    async def scenario(client) -> None:
        assert (await sign_in(client, "admin@school.edu")).status == 303
        csrf = await csrf_of(client, "/courses")
        r = await client.post(
            "/courses", data={"csrf_token": csrf, "course_id": "NEW1", "title": "New"}
        )
        assert r.status == 200 and "NEW1" in await r.text()
        r = await client.post(
            "/users",
            data={
                "csrf_token": csrf,
                "email": "new@school.edu",
                "role": "instructor",
                "course": "NEW1",
                "password": PASSWORD,
            },
        )
        assert r.status == 200 and "new@school.edu" in await r.text()
        r = await client.get("/courses/BIO2/delete")
        text = await r.text()
        assert "1</strong> meeting(s)" in text
        db = storage.open_db(site["home"])
        plan = storage.plan_course_removal(db, "BIO2")  # the page lists what removal deletes
        assert plan.rows.get("attendance") and plan.rows.get("students") == 1
        for table, n in plan.rows.items():
            assert f"<li>{n} {table.replace('_', ' ')}</li>" in text, table
        r = await client.post("/courses/BIO2/delete", data={"csrf_token": csrf, "confirm": "no"})
        assert r.status == 400
        r = await client.post("/courses/BIO2/delete", data={"csrf_token": csrf, "confirm": "BIO2"})
        assert r.status == 200
        assert not db["meetings"].count_where("course_id = 'BIO2'")
        assert not db["students"].count_where("course_id = 'BIO2'")
        r = await client.post("/plugins/emotion", data={"csrf_token": csrf, "enabled": "1"})
        assert r.status == 409 and "AI Act" in await r.text()
        assert db["plugin_audit"].count == 0
        r = await client.post(
            "/plugins/emotion",
            data={"csrf_token": csrf, "enabled": "1", "course": "CS101", "confirm": "1"},
        )
        assert r.status == 200
        audit = list(db["plugin_audit"].rows)
        assert audit[-1]["who"] == "admin@school.edu" and "CS101" in audit[-1]["detail"]

    run(site["config"], scenario)


def test_sign_in_only_redirects_within_the_site():
    from rollcall.web.auth import safe_next

    assert safe_next("/courses?x=1") == "/courses?x=1"
    for target in ("https://evil.example", "//evil.example", "/\t/evil.example", "/\\evil", ""):
        assert safe_next(target) == "/", target
