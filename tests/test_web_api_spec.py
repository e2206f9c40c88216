"""docs/openapi.yaml documents the JSON API: every route ``rollcall serve``'s app
registers under /api is in the spec and every path of the spec under /api is a
route; the /api/v1 answers (200, 401, 403, 404) match their documented schemas."""

from __future__ import annotations

from types import SimpleNamespace

from aiohttp import web

from rollcall.config import load_config
from rollcall.store import storage, users
from tests.test_plugin_admin import _check, _load_openapi
from tests.test_web_auth import add_users, api_routes_of, run, site  # noqa: F401 (fixture)

METHODS = {"get", "put", "post", "patch", "delete"}


def serve_app(config) -> web.Application:
    """The application ``rollcall serve`` runs (its routes; nothing is started)."""
    from rollcall.service.serve import build_app

    state = SimpleNamespace(workers=[], last_poll_ok=None, last_poll_error="", disabled={})
    return build_app(config, intake=None, state=state, scheduler=None)


def spec_routes(spec: dict) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in METHODS
    }


def test_every_api_route_is_in_the_spec_and_back(tmp_path, base_env):
    config = load_config(None, {**base_env, "ROLLCALL_HOME": str(tmp_path)})
    registered = api_routes_of(serve_app(config))
    documented = spec_routes(_load_openapi())
    assert ("GET", "/api/v1/meetings/{id}") in registered
    assert registered - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - registered == set(), "documented routes the app does not have"


def test_api_v1_answers_match_the_spec(site):  # noqa: F811 (the fixture)
    add_users(site["home"])
    db = storage.open_db(site["home"])
    teacher = users.create_api_token(db, users.user_by_email(db, "teach@school.edu").id)
    admin = users.create_api_token(db, users.user_by_email(db, "admin@school.edu").id)
    db.conn.close()
    spec = _load_openapi()
    as_teacher = {"Authorization": f"Bearer {teacher}"}
    as_admin = {"Authorization": f"Bearer {admin}"}
    cs, bio = site["cs"], site["bio"]
    cases = [
        ("/api/v1/me", "/api/v1/me", as_teacher, 200),
        ("/api/v1/me", "/api/v1/me", {}, 401),
        ("/api/v1/courses", "/api/v1/courses", as_admin, 200),
        ("/api/v1/courses", "/api/v1/courses", {"Authorization": "Bearer rc_x"}, 401),
        ("/api/v1/courses/{course}/students", "/api/v1/courses/CS101/students", as_teacher, 200),
        ("/api/v1/courses/{course}/students", "/api/v1/courses/BIO2/students", as_teacher, 403),
        ("/api/v1/courses/{course}/students", "/api/v1/courses/NONE/students", as_admin, 404),
        ("/api/v1/meetings", "/api/v1/meetings", as_admin, 200),
        ("/api/v1/meetings", "/api/v1/meetings?course=BIO2", as_teacher, 403),
        ("/api/v1/meetings/{id}", f"/api/v1/meetings/{cs}", as_teacher, 200),
        ("/api/v1/meetings/{id}", f"/api/v1/meetings/{bio}", as_teacher, 403),
        ("/api/v1/meetings/{id}", "/api/v1/meetings/99999", as_admin, 404),
        ("/api/plugins", "/api/plugins", as_teacher, 403),
        ("/api/plugins", "/api/plugins", as_admin, 200),
    ]

    async def scenario(client) -> None:
        for route, path, headers, status in cases:
            r = await client.get(path, headers=headers)
            assert r.status == status, (path, r.status, await r.text())
            _check(spec, "get", route, status, await r.json())

    run(site["config"], scenario)
