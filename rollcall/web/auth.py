"""Sign-in for the web app: sessions, CSRF, roles, API tokens and the security headers.

* **Sessions** live in an encrypted cookie (``aiohttp-session``'s Fernet
  storage), HttpOnly, SameSite=Lax, Secure when ``[server] tls_terminated``.
  The key is made once and kept in ``<home>/web-session.key`` (mode 0600).
  The cookie holds the user id and the user's ``session_version``: a password
  change or a removed account ends the sessions already open.
* **CSRF**: every unsafe request made with a session carries the session's
  token, in the ``csrf_token`` form field, the ``X-CSRF-Token`` header, or (for
  multipart uploads, whose body is streamed) the ``csrf`` query parameter.
* **Sign-in rate limiting**: after ``RATE_LIMIT`` failures for an email (or three
  times as many from one address) within ``RATE_WINDOW_S``, sign-in answers 429.
* **Roles**: an admin sees everything; an instructor only their courses, and a
  signed-in user outside their role gets 403.
* **API tokens** (``Authorization: Bearer rc_...``) authenticate scripts as their
  user on every JSON route, ``/api/plugins`` included (admins only: 403 for an
  instructor); a token that is unknown or revoked gets 401. The shared ``[server] admin_token`` still works, as an admin, with a
  deprecation warning, until an admin account exists; then it is refused.
* **Single sign-on** with OpenID Connect (``[oidc]``) is in ``rollcall.web.oidc``.
* Every route is behind sign-in except ``/healthz``, the Zoom webhook, the
  sign-in pages (``/login``, ``/login/sso`` and its callback) and the static files.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from rollcall.config import Config
from rollcall.store import users
from rollcall.web.db import db_call
from rollcall.web.identity import LEGACY_ADMIN, USER_KEY

log = logging.getLogger(__name__)

COOKIE_NAME = "rollcall_session"
SESSION_MAX_AGE_S = 12 * 3600
KEY_FILE = "web-session.key"
RATE_LIMIT = 5
RATE_WINDOW_S = 15 * 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset(
    {"/healthz", "/zoom/webhook", "/login", "/login/sso", "/login/sso/callback"}
)
PUBLIC_PREFIXES = ("/static/",)
#: The admin API's routes (``rollcall.web.admin_api``), which check the shared token themselves.
LEGACY_API = re.compile(r"^/api/plugins(/[^/]+)?$")
LEGACY_MEETING = re.compile(r"^/admin/meetings/(\d+)$")
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_key(home: Path) -> bytes:
    """The Fernet key of the session cookies, made on first use."""
    path = home / KEY_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def setup_sessions(app: web.Application, config: Config) -> None:
    storage = EncryptedCookieStorage(
        Fernet(session_key(config.home)),
        cookie_name=COOKIE_NAME,
        httponly=True,
        samesite="Lax",
        secure=config.server.tls_terminated,
        max_age=SESSION_MAX_AGE_S,
        path="/",
    )
    aiohttp_session.setup(app, storage)


def csrf_token(session: aiohttp_session.Session) -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x21 or c == "\x7f" for c in target):  # browsers drop tabs: "/\t/evil"
        return "/"
    return target


def _session_user(db, user_id: int, version: int) -> users.User | None:
    try:
        user = users.get_user(db, user_id)
    except users.NotFound:
        return None
    return user if user.session_version == version else None


async def session_user(request: web.Request, config: Config) -> users.User | None:
    session = await aiohttp_session.get_session(request)
    user_id, version = session.get("uid"), session.get("ver")
    if not isinstance(user_id, int) or not isinstance(version, int):
        return None
    user = await db_call(config.home, _session_user, user_id, version)
    if user is None:
        session.invalidate()
    return user


class RetiredToken(Exception):
    """The shared admin token was sent after an admin account was created."""


def _personal_token(header: str) -> bool:
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and value.strip().startswith(users.TOKEN_PREFIX)


def _token_user(db, header: str, admin_token: str) -> users.User | None:
    from rollcall.web.admin_api import authorized

    if _personal_token(header):
        return users.user_for_token(db, header.partition(" ")[2].strip())
    if admin_token and authorized(header, admin_token):
        if users.admin_exists(db):
            raise RetiredToken
        return LEGACY_ADMIN
    return None


def _unauthorized(message: str) -> web.Response:
    return web.json_response(
        {"error": message},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="rollcall"'},
    )


async def _csrf_ok(request: web.Request) -> bool:
    session = await aiohttp_session.get_session(request)
    expected = session.get("csrf") or ""
    sent = request.headers.get("X-CSRF-Token") or request.query.get("csrf") or ""
    if not sent and request.content_type == "application/x-www-form-urlencoded":
        sent = str((await request.post()).get("csrf_token") or "")
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def auth_middleware(config: Config):
    """Sign-in, tokens and CSRF for every route but the public ones."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if is_public(path):
            return await handler(request)
        legacy = bool(LEGACY_API.match(path) or LEGACY_MEETING.match(path))
        header = request.headers.get("Authorization", "")
        if header:
            token = config.server.admin_token.get_secret_value()
            try:
                user = await db_call(config.home, _token_user, header, token)
            except RetiredToken:
                log.warning("the shared admin token was refused: an admin account exists")
                return _unauthorized(
                    "the shared [server] admin_token is retired now that an admin account "
                    "exists: use a personal API token (rollcall user token EMAIL)"
                )
            if user is None:
                if legacy and not _personal_token(header):  # the admin API answers (401, 503)
                    return await handler(request)
                return _unauthorized("unauthorized: send Authorization: Bearer <API token>")
            if user is LEGACY_ADMIN:
                log.warning(
                    "deprecated: the shared [server] admin_token was used; create an admin "
                    "account (rollcall user add EMAIL --role admin) and personal API tokens",
                    extra={"path": path},
                )
            request[USER_KEY] = user
            response = await handler(request)
            if user is LEGACY_ADMIN:
                response.headers["Deprecation"] = "true"
            return response
        user = await session_user(request, config)
        if user is None:
            if legacy:
                return await handler(request)
            if path.startswith("/api/"):
                return _unauthorized("unauthorized: sign in or send an API token")
            if request.method in SAFE_METHODS:
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
            raise web.HTTPSeeOther("/login")
        request[USER_KEY] = user
        found = LEGACY_MEETING.match(path)
        if found:  # the meeting links in chat messages open the meeting page
            raise web.HTTPSeeOther(f"/meetings/{found.group(1)}")
        if request.method not in SAFE_METHODS and not await _csrf_ok(request):
            log.warning("request refused: CSRF token missing or wrong", extra={"path": path})
            return web.Response(
                status=403, text="403: the form's security token is missing or out of date"
            )
        return await handler(request)

    return middleware


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(request, response)
        raise
    _headers(request, response)
    return response


def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:
        return
    if not LEGACY_MEETING.match(request.path):  # the report page keeps its inline styles
        response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")


def current_user(request: web.Request) -> users.User:
    return request[USER_KEY]


def require_admin(request: web.Request) -> users.User:
    user = current_user(request)
    if not user.is_admin:
        raise web.HTTPForbidden(text="403: this page is for admins")
    return user


def require_course(request: web.Request, course_id: str | None) -> users.User:
    user = current_user(request)
    if not user.can_see(course_id):
        raise web.HTTPForbidden(text="403: this course is not one of yours")
    return user


# ---------------------------------------------------------------- sign-in, sign-out, password


def _sign_in(db, email: str, password: str, remote: str) -> tuple[users.User | None, bool]:
    """(user or None, rate-limited?)."""
    if users.too_many_attempts(db, email, remote, limit=RATE_LIMIT, window_s=RATE_WINDOW_S):
        return None, True
    user = users.verify_password(db, email, password)
    users.record_attempt(db, email, remote, user is not None)
    return user, False


def auth_routes(config: Config, render) -> list[web.RouteDef]:
    """``/login`` (GET, POST), ``/logout`` (POST) and ``/account`` (password, API tokens)."""

    async def login_page(request: web.Request) -> web.StreamResponse:
        if await session_user(request, config):
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        return await render(
            request,
            "login.html.j2",
            next=safe_next(request.query.get("next")),
            sso=config.oidc.enabled,
        )

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        session = await aiohttp_session.get_session(request)
        sent = str(form.get("csrf_token") or "")
        if not hmac.compare_digest(sent.encode(), (session.get("csrf") or "").encode()):
            return web.Response(status=403, text="403: the form's security token is missing")
        email = str(form.get("email") or "").strip()
        password = str(form.get("password") or "")
        target = safe_next(str(form.get("next") or ""))
        user, limited = await db_call(config.home, _sign_in, email, password, request.remote or "")
        if limited:
            log.warning("sign-in rate limited", extra={"email": email, "remote": request.remote})
            return await render(
                request,
                "login.html.j2",
                status=429,
                next=target,
                sso=config.oidc.enabled,
                error="Too many failed sign-ins. Wait a few minutes and try again.",
            )
        if user is None:
            await asyncio.sleep(0.2)
            return await render(
                request,
                "login.html.j2",
                status=401,
                next=target,
                sso=config.oidc.enabled,
                email=email,
                error="Wrong email or password.",
            )
        session = await aiohttp_session.new_session(request)  # a fresh id: no fixation
        session["uid"], session["ver"] = user.id, user.session_version
        csrf_token(session)
        log.info("signed in", extra={"user": user.email})
        raise web.HTTPSeeOther(target)

    async def logout(request: web.Request) -> web.StreamResponse:
        session = await aiohttp_session.get_session(request)
        session.invalidate()
        raise web.HTTPSeeOther("/login")

    async def account(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        tokens = await db_call(config.home, users.list_api_tokens, user.id)
        return await render(request, "account.html.j2", tokens=tokens)

    async def change_password(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        form = await request.post()
        current, new = str(form.get("current") or ""), str(form.get("new") or "")

        def change(db) -> str | users.User:
            if users.verify_password(db, user.email, current) is None:
                return "The current password is wrong."
            try:
                return users.set_password(db, user.email, new)
            except users.UserError as exc:
                return str(exc)

        result = await db_call(config.home, change)
        if isinstance(result, str):
            tokens = await db_call(config.home, users.list_api_tokens, user.id)
            return await render(request, "account.html.j2", status=400, error=result, tokens=tokens)
        session = await aiohttp_session.get_session(request)
        session["ver"] = result.session_version  # this session stays; the others end
        return await render(
            request,
            "account.html.j2",
            message="Password changed.",
            tokens=await db_call(config.home, users.list_api_tokens, user.id),
        )

    async def new_token(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        form = await request.post()
        token = await db_call(
            config.home, users.create_api_token, user.id, str(form.get("name") or "")
        )
        tokens = await db_call(config.home, users.list_api_tokens, user.id)
        return await render(request, "account.html.j2", new_token=token, tokens=tokens)

    async def revoke_token(request: web.Request) -> web.StreamResponse:
        user = current_user(request)
        try:
            await db_call(
                config.home, users.revoke_api_token, user.id, int(request.match_info["id"])
            )
        except users.NotFound as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        raise web.HTTPSeeOther("/account")

    return [
        web.get("/login", login_page),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/account", account),
        web.post("/account/password", change_password),
        web.post("/account/tokens", new_token),
        web.post("/account/tokens/{id:\\d+}/revoke", revoke_token),
    ]
