"""A small OpenID Connect provider for tests, on 127.0.0.1 (aiohttp).

It serves a discovery document, its JWKS, an authorization endpoint that signs
in ``state.email`` at once (redirecting back with a code) and a token endpoint
that checks the client secret, the redirect URI and the PKCE verifier and
issues an RS256 ``id_token`` carrying the nonce of the authorization request.
``state.mode`` makes it misbehave: ``bad_signature`` signs with a key that is
not in the JWKS, ``wrong_nonce`` and ``wrong_audience`` change those claims::

    async with OidcProvider(OidcState(email="teach@school.edu")) as idp:
        idp.issuer
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc import jwt
from joserfc.jwk import RSAKey

Mode = Literal["ok", "bad_signature", "wrong_nonce", "wrong_audience", "unverified_email"]
CLIENT_ID = "rollcall-test-client"
CLIENT_SECRET = "test-client-secret"


def _key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"}, private=True)


@dataclass
class OidcState:
    email: str = "teach@school.edu"
    mode: Mode = "ok"
    key: RSAKey = field(default_factory=lambda: _key("good"))
    other_key: RSAKey = field(default_factory=lambda: _key("good"))  # same kid, not published
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0
    refused: list[str] = field(default_factory=list)  # why token requests were refused


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcProvider:
    """The provider's aiohttp app on a test server; ``issuer`` is its base URL."""

    def __init__(self, state: OidcState) -> None:
        self.state = state
        app = web.Application()
        app.add_routes(
            [
                web.get("/.well-known/openid-configuration", self.discovery),
                web.get("/jwks", self.jwks),
                web.get("/authorize", self.authorize),
                web.post("/token", self.token),
            ]
        )
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def issuer(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def __aenter__(self) -> OidcProvider:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.server.close()

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.state.key.as_dict(private=False)]})

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return web.json_response({"error": "invalid_request"}, status=400)
        if q.get("code_challenge_method") != "S256" or not q.get("nonce"):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(16)
        self.state.codes[code] = {
            "redirect_uri": q["redirect_uri"],
            "nonce": q["nonce"],
            "challenge": q["code_challenge"],
            "email": self.state.email,
        }
        target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(target)

    def _refuse(self, why: str) -> web.Response:
        self.state.refused.append(why)
        return web.json_response({"error": "invalid_grant", "error_description": why}, status=400)

    async def token(self, request: web.Request) -> web.Response:
        self.state.token_requests += 1
        form = await request.post()
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.state.codes.pop(str(form.get("code")), None)  # a code is used once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return self._refuse("unknown code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return self._refuse("redirect_uri differs")
        if _challenge(str(form.get("code_verifier") or "")) != grant["challenge"]:
            return self._refuse("PKCE verifier does not match")
        now = int(time.time())
        mode = self.state.mode
        claims = {
            "iss": self.issuer,
            "sub": "user-" + grant["email"],
            "aud": "someone-else" if mode == "wrong_audience" else CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": "not-the-nonce" if mode == "wrong_nonce" else grant["nonce"],
            "email": grant["email"],
            "email_verified": mode != "unverified_email",
        }
        key = self.state.other_key if mode == "bad_signature" else self.state.key
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": id_token,
            }
        )
