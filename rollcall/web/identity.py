"""Who a web request is: the typed request key the sign-in middleware fills in.

``rollcall.web.auth`` sets :data:`USER_KEY` on every request that is not
public (the signed-in user, or the user of a personal API token, or
:data:`LEGACY_ADMIN` for the shared ``[server] admin_token``); handlers and
the admin API read it with :func:`request_user`. Kept apart from ``auth`` so
that the admin API can read it without importing the middleware.
"""

from __future__ import annotations

from aiohttp import web

from rollcall.store import users

#: The signed-in user (or the token's), set by the web app's middleware.
USER_KEY = web.RequestKey("user", users.User)
#: The user the shared admin token stands for while it is still accepted.
LEGACY_ADMIN = users.User(
    id=0, email="admin token", role=users.ADMIN, courses=(), session_version=0, created_at=""
)


def request_user(request: web.Request) -> users.User | None:
    """The signed-in user or the API token's, if the web app's middleware found one."""
    return request.get(USER_KEY)
