"""Rendering the web app's pages: the Jinja2 environment and the page context.

Every page gets the signed-in ``user``, the session's ``csrf`` token (forms put
it in a hidden ``csrf_token`` field) and the request ``path`` (the navigation
marks the current page). Autoescaping is on; no secret is ever in a context.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import aiohttp_session
import jinja2
from aiohttp import web

from rollcall.reports.common import format_score, status_label
from rollcall.web.auth import csrf_token
from rollcall.web.identity import request_user


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rollcall.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["status_label"] = status_label
    env.filters["minutes"] = lambda s: f"{(s or 0) / 60:.0f}"
    env.filters["score"] = format_score
    return env


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    session = await aiohttp_session.get_session(request)
    context.setdefault("error", "")
    context.setdefault("message", "")
    page = (
        environment()
        .get_template(template)
        .render(
            user=request_user(request),
            csrf=csrf_token(session),
            path=request.path,
            **context,
        )
    )
    return web.Response(text=page, status=status, content_type="text/html")
