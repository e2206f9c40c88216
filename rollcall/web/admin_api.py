"""The admin HTTP API of ``rollcall serve``: list, enable and disable plugins;
the meeting pages that chat notifications link to.

``GET /api/plugins[?course=C]`` and ``PUT /api/plugins/{name}`` with
``{"enabled": bool, "course": str | null, "yes": bool}``, documented in
``docs/openapi.yaml``. Every request needs ``Authorization: Bearer <token>``
with an admin's personal API token (or, behind the web app's middleware, an
admin's session) or the shared ``[server] admin_token``: 401 without one or with
a wrong one, 403 for an instructor, 503 when neither a user nor a shared token
is there (a blank token is refused when the configuration is loaded, and never
matches here). The token is compared in constant time and never logged. Changes
are audited with the admin's email, or ``who = "api"`` for the shared token. ``GET /admin/meetings/{id}`` shows
a meeting's attendance report as HTML; it also accepts HTTP Basic with the
token as password, so a browser can open it.

Handlers do their database work off the event loop (``asyncio.to_thread``),
with a connection opened and closed in that thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlite_utils
from aiohttp import web

from rollcall.config import Config
from rollcall.http_input import (
    BodyTimeout,
    BodyTooLarge,
    JsonInputError,
    loads_json,
    read_body,
    record_id,
)
from rollcall.store import storage
from rollcall.web.identity import LEGACY_ADMIN, request_user

log = logging.getLogger(__name__)
API_WHO = "api"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def authorized(header: str, token: str) -> bool:
    """Whether an Authorization header carries the admin token (constant-time compare):
    ``Bearer <token>`` for programs, or HTTP Basic with the token as password, which
    is what a browser sends after asking (the meeting pages linked from chat messages)."""
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            value = base64.b64decode(value, validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    if not value.strip() or not token.strip():
        return False
    # Digests of equal length: the comparison takes the same time whatever was sent.
    sent = hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()
    expected = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    return hmac.compare_digest(sent, expected)


def _protected(config: Config, handler: Handler, *, browser: bool = False) -> Handler:
    """``handler`` for an admin: a user the web app's middleware found (an admin's session
    or personal API token; an instructor gets 403) or the shared ``[server] admin_token``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        user = request_user(request)
        if user is not None:
            if not user.is_admin:
                log.warning(
                    "admin API: refused to a non-admin",
                    extra={"path": request.path, "user": user.email},
                )
                return _error(403, "forbidden: the admin API is for admins")
            return await handler(request)
        token = config.server.admin_token.get_secret_value()
        if not token:
            return _error(503, "admin API disabled: set [server] admin_token")
        if not authorized(request.headers.get("Authorization", ""), token):
            log.warning(
                "admin API: unauthorized request",
                extra={"path": request.path, "remote": request.remote},
            )
            scheme = "Basic" if browser else "Bearer"  # Basic makes a browser ask
            return web.json_response(
                {"error": "unauthorized: send Authorization: Bearer <admin token>"},
                status=401,
                headers={"WWW-Authenticate": f'{scheme} realm="rollcall-admin"'},
            )
        return await handler(request)

    return wrapped


def _who(request: web.Request) -> str:
    """Who the audit log names: the user's email, or ``api`` for the shared token."""
    user = request_user(request)
    return API_WHO if user is None or user is LEGACY_ADMIN else user.email


def admin_routes(config: Config) -> list[web.RouteDef]:
    """The admin routes. Each request's database work runs in a worker thread with a
    connection of ``[storage] home`` opened and closed there (a connection never
    crosses threads)."""
    from rollcall.pipeline.plugin_manager import describe_plugins
    from rollcall.store.plugin_admin import (
        ConfirmationRequired,
        PluginAdminError,
        plugin_statuses,
        set_plugin_enabled,
    )

    @contextmanager
    def connection() -> Iterator[sqlite_utils.Database]:
        db = storage.open_db(config.home)
        try:
            yield db
        finally:
            db.conn.close()

    def status_body(db: sqlite_utils.Database, course: str | None, names: set[str] | None):
        out = []
        for status in plugin_statuses(db, describe_plugins(config)):
            if names is not None and status.info.name not in names:
                continue
            item = status.as_dict()
            if course:
                item["enabled_for_course"] = status.enabled_for(course)
            out.append(item)
        return out

    def read_plugins(course: str | None) -> web.Response:
        with connection() as db:
            if course:
                try:
                    storage.get_course(db, course)
                except storage.NotFound as exc:
                    return _error(404, str(exc))
            return web.json_response({"plugins": status_body(db, course, None)})

    async def list_plugins(request: web.Request) -> web.Response:
        return await asyncio.to_thread(read_plugins, request.query.get("course") or None)

    async def put_plugin(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            raw = await read_body(
                request,
                max_bytes=config.server.max_body_bytes,
                timeout_s=config.server.body_timeout_s,
            )
        except (BodyTooLarge, BodyTimeout) as exc:
            answer = _error(413 if isinstance(exc, BodyTooLarge) else 408, str(exc))
            answer.force_close()  # the rest of the body is not waited for
            return answer
        try:
            body = loads_json(raw)
        except JsonInputError as exc:
            return _error(400, f"body must be JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
            return _error(400, 'body must be {"enabled": true|false, "course": ..., "yes": ...}')
        course = body.get("course")
        yes = body.get("yes", False)
        if course is not None and not isinstance(course, str):
            return _error(400, "course must be a string or null")
        if not isinstance(yes, bool):
            return _error(400, "yes must be a boolean")
        return await asyncio.to_thread(
            change_plugin, name, body["enabled"], course, yes, _who(request)
        )

    def change_plugin(
        name: str, enabled: bool, course: str | None, yes: bool, who: str
    ) -> web.Response:
        with connection() as db:
            return change_plugin_in(db, name, enabled, course, yes, who)

    def change_plugin_in(
        db: sqlite_utils.Database,
        name: str,
        enabled: bool,
        course: str | None,
        yes: bool,
        who: str,
    ) -> web.Response:
        infos = describe_plugins(config)
        if name not in {i.name for i in infos}:
            return _error(404, f"unknown plugin {name!r}")
        try:
            entry = set_plugin_enabled(
                db,
                infos,
                name,
                enabled,
                course_id=course or None,
                who=who,
                confirmed=yes,
            )
        except ConfirmationRequired as exc:
            n = exc.notice
            return _error(
                409,
                f'enabling {name} needs confirmation: resend with "yes": true',
                notice={"plugin": n.plugin, "what": n.what, "laws": list(n.laws)},
            )
        except storage.NotFound as exc:
            return _error(404, str(exc))
        except PluginAdminError as exc:
            return _error(409, str(exc))
        return web.json_response(
            {
                "plugin": status_body(db, course, {name})[0],
                "audit": {
                    "id": entry.id,
                    "at": entry.at,
                    "who": entry.who,
                    "action": entry.action,
                    "plugin": entry.plugin,
                    "course": entry.course_id or None,
                    "detail": entry.detail,
                },
            }
        )

    async def meeting_page(request: web.Request) -> web.Response:
        """The meeting's attendance report as a page (linked from the chat messages)."""
        from rollcall.reports.html import render_meeting_html
        from rollcall.reports.results import meeting_report

        def render(meeting_id: int) -> str:
            with connection() as db:
                return render_meeting_html(meeting_report(db, meeting_id, rules=config.attendance))

        try:
            page = await asyncio.to_thread(render, record_id(request.match_info["meeting_id"]))
        except (ValueError, storage.NotFound):
            return _error(404, f"no meeting {request.match_info['meeting_id']}")
        return web.Response(text=page, content_type="text/html")

    from rollcall.notify.summary import ADMIN_MEETING_PATH

    return [
        web.get(
            ADMIN_MEETING_PATH,
            _protected(config, meeting_page, browser=True),
        ),
        web.get("/api/plugins", _protected(config, list_plugins)),
        web.put("/api/plugins/{name}", _protected(config, put_plugin)),
    ]
