"""The web app for admins and instructors, mounted on ``rollcall serve``'s application.

:func:`setup_web_app` adds the session, sign-in and security-header
middlewares, the pages (``rollcall.web.courses``, ``.meetings``, ``.ops``,
``.auth``, ``.oidc``), the JSON API (``rollcall.web.api``) and the static files. The
service's own routes (``/healthz``, the Zoom webhook, the admin API) stay as
they were; see ``rollcall.web.auth`` for which routes need what.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from rollcall.config import Config
from rollcall.web.api import api_routes
from rollcall.web.auth import auth_middleware, auth_routes, security_headers, setup_sessions
from rollcall.web.courses import course_routes
from rollcall.web.enroll import Enroller
from rollcall.web.meetings import meeting_routes
from rollcall.web.oidc import oidc_routes, setup_oidc
from rollcall.web.ops import ops_routes
from rollcall.web.render import render

STATIC = Path(__file__).parent / "static"


def setup_web_app(
    app: web.Application, config: Config, status: Callable[[], dict[str, Any]] | None = None
) -> None:
    """Add the web app to ``app`` (before it starts)."""
    app.middlewares.append(security_headers)
    setup_sessions(app, config)
    app.middlewares.append(auth_middleware(config))
    enroller = Enroller(config)

    async def close_enroller(_app: web.Application) -> None:
        enroller.close()

    app.on_cleanup.append(close_enroller)
    setup_oidc(app, config)
    app.add_routes(auth_routes(config, render))
    app.add_routes(oidc_routes(config, render))
    app.add_routes(ops_routes(config, render, status or dict))
    app.add_routes(course_routes(config, render, enroller))
    app.add_routes(meeting_routes(config, render))
    app.add_routes(api_routes(config))
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
