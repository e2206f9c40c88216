"""Single sign-on to the web app with OpenID Connect (``[oidc]``).

The authorization-code flow with PKCE, ``state`` and ``nonce``:

1. ``GET /login/sso`` keeps a fresh state, nonce and PKCE verifier in the
   (encrypted) session and sends the browser to the provider's authorization
   endpoint, read from its discovery document;
2. ``GET /login/sso/callback`` checks the state, trades the code for tokens at
   the token endpoint (with the client secret) and checks the ``id_token`` with
   joserfc: signature against the provider's JWKS (asymmetric algorithms only),
   ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat`` and the session's nonce.

The email comes from ``[oidc] email_claim``; it must not be marked unverified
and its domain must be in ``allowed_domains`` (when set). The account must
already exist, unless ``auto_create`` lets an allowed email become an
instructor without courses. Discovery and keys are cached in one
:class:`OidcClient` per app (``OIDC_KEY``); the keys are read again once when
a token names a key they do not hold (the provider rotated them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
import aiohttp_session
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from rollcall.config import Config, OidcConfig
from rollcall.store import users
from rollcall.web.auth import csrf_token, safe_next
from rollcall.web.db import db_call

log = logging.getLogger(__name__)

START_PATH = "/login/sso"
CALLBACK_PATH = "/login/sso/callback"
SESSION_FIELD = "sso"
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
HTTP_TIMEOUT_S = 15.0
LEEWAY_S = 60


class SsoError(Exception):
    """Single sign-on failed; the message is safe to show (no token, no secret)."""


@dataclass(frozen=True, slots=True)
class Provider:
    """What the provider's discovery document says."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    basic_auth: bool  # client_secret_basic (the default) rather than client_secret_post


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    email: str
    subject: str


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """One provider: discovery, keys, the authorization URL, the code exchange and
    the id_token check."""

    def __init__(self, settings: OidcConfig) -> None:
        self.settings = settings
        self._provider: Provider | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    async def _get_json(self, http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with http.get(url) as response:
            if response.status != 200:
                raise SsoError(f"the identity provider answered {response.status} for {url}")
            body = await response.json(content_type=None)
        if not isinstance(body, dict):
            raise SsoError(f"the identity provider sent no JSON object at {url}")
        return body

    async def provider(self, http: aiohttp.ClientSession) -> Provider:
        async with self._lock:
            if self._provider is None:
                issuer = self.settings.issuer
                doc = await self._get_json(http, f"{issuer}/.well-known/openid-configuration")
                if str(doc.get("issuer", "")).rstrip("/") != issuer:
                    raise SsoError("the discovery document names another issuer")
                try:
                    methods = doc.get("token_endpoint_auth_methods_supported") or [
                        "client_secret_basic"
                    ]
                    self._provider = Provider(
                        issuer=issuer,
                        authorization_endpoint=str(doc["authorization_endpoint"]),
                        token_endpoint=str(doc["token_endpoint"]),
                        jwks_uri=str(doc["jwks_uri"]),
                        basic_auth="client_secret_basic" in methods,
                    )
                except KeyError as exc:
                    raise SsoError(f"the discovery document has no {exc.args[0]}") from None
            return self._provider

    async def keys(self, http: aiohttp.ClientSession, *, refresh: bool = False) -> KeySet:
        provider = await self.provider(http)
        async with self._lock:
            if self._keys is None or refresh:
                try:
                    self._keys = KeySet.import_key_set(
                        await self._get_json(http, provider.jwks_uri)
                    )
                except (JoseError, ValueError, KeyError, TypeError) as exc:
                    raise SsoError(f"the provider's keys cannot be read: {exc}") from None
            return self._keys

    def authorization_url(
        self, provider: Provider, redirect_uri: str, state: str, nonce: str, verifier: str
    ) -> str:
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return provider.authorization_endpoint + separator + urlencode(query)

    async def exchange(
        self, http: aiohttp.ClientSession, code: str, redirect_uri: str, verifier: str
    ) -> str:
        """The id_token the token endpoint gives for ``code``."""
        provider = await self.provider(http)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        secret = self.settings.client_secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if provider.basic_auth:  # RFC 6749 2.3.1: both form-encoded, then Basic
            pair = f"{quote_plus(self.settings.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.settings.client_id, "client_secret": secret}
        async with http.post(provider.token_endpoint, data=form, headers=headers) as response:
            body = await response.json(content_type=None)
            if response.status != 200 or not isinstance(body, dict):
                error = body.get("error") if isinstance(body, dict) else None
                raise SsoError(f"the token endpoint refused the code ({error or response.status})")
        token = body.get("id_token")
        if not isinstance(token, str) or not token:
            raise SsoError("the token endpoint sent no id_token")
        return token

    async def verify(self, http: aiohttp.ClientSession, id_token: str, nonce: str) -> dict:
        """The id_token's claims, once signature, issuer, audience, times and nonce hold."""
        try:
            token = jwt.decode(id_token, await self.keys(http), algorithms=ALGORITHMS)
        except (JoseError, ValueError):  # maybe a key the cached set does not hold yet
            try:
                token = jwt.decode(
                    id_token, await self.keys(http, refresh=True), algorithms=ALGORITHMS
                )
            except (JoseError, ValueError) as exc:
                raise SsoError(f"the id_token's signature does not verify ({exc})") from None
        claims = token.claims
        registry = JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except (JoseError, ValueError) as exc:
            raise SsoError(f"the id_token is not for this sign-in ({exc})") from None
        audience = claims["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if several and claims.get("azp") != self.settings.client_id:
            raise SsoError("the id_token's azp is not this client")
        return claims

    def identity(self, claims: dict) -> Identity:
        """The signed-in email, if the provider vouches for it and its domain is allowed."""
        email = claims.get(self.settings.email_claim)
        if not isinstance(email, str) or "@" not in email or any(c.isspace() for c in email):
            raise SsoError(f"the identity provider sent no email in {self.settings.email_claim}")
        if claims.get("email_verified") in (False, "false"):
            raise SsoError(f"the identity provider has not verified {email}")
        domain = email.rsplit("@", 1)[1].lower()
        allowed = self.settings.allowed_domains
        if allowed and domain not in allowed:
            raise SsoError(f"{email} is not in a domain allowed to sign in here")
        return Identity(email=email, subject=str(claims["sub"]))


OIDC_KEY = web.AppKey("oidc", OidcClient)


def _account(db, email: str, auto_create: bool) -> users.User | None:
    """The account of this email (case does not matter), created as an instructor
    when ``auto_create`` allows; None when there is none."""
    rows = list(db.query("select id from users where lower(email) = lower(?)", [email]))
    if rows:
        return users.get_user(db, rows[0]["id"])
    if not auto_create:
        return None
    log.info("single sign-on created an instructor account", extra={"user": email})
    # a random password nobody knows: the account signs in through the provider
    return users.add_user(db, email, users.INSTRUCTOR, secrets.token_urlsafe(32))


def redirect_uri(config: Config, request: web.Request) -> str:
    base = config.reports.base_url
    if not base:
        scheme = "https" if config.server.tls_terminated else request.scheme
        base = f"{scheme}://{request.host}"
    return base + CALLBACK_PATH


def setup_oidc(app: web.Application, config: Config) -> None:
    """Keep the app's provider client (only when ``[oidc] issuer`` is set)."""
    if config.oidc.enabled:
        app[OIDC_KEY] = OidcClient(config.oidc)


def oidc_routes(config: Config, render) -> list[web.RouteDef]:
    """``/login/sso`` and ``/login/sso/callback`` (both public: they sign in)."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)

    def client(request: web.Request) -> OidcClient:
        found = request.app.get(OIDC_KEY)
        if found is None:
            raise web.HTTPNotFound(text="404: single sign-on is not set up ([oidc] issuer)")
        return found

    async def refused(request: web.Request, message: str, status: int) -> web.Response:
        log.warning("single sign-on refused", extra={"reason": message})
        return await render(
            request, "login.html.j2", status=status, next="/", error=message, sso=True
        )

    async def start(request: web.Request) -> web.StreamResponse:
        oidc = client(request)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                provider = await oidc.provider(http)
        except (SsoError, aiohttp.ClientError, TimeoutError) as exc:
            return await refused(request, f"Single sign-on is unavailable: {exc}", 502)
        session = await aiohttp_session.get_session(request)
        flow = {
            "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(48),
            "next": safe_next(request.query.get("next")),
        }
        session[SESSION_FIELD] = flow
        target = oidc.authorization_url(
            provider, redirect_uri(config, request), flow["state"], flow["nonce"], flow["verifier"]
        )
        raise web.HTTPFound(target)

    async def callback(request: web.Request) -> web.StreamResponse:
        oidc = client(request)
        session = await aiohttp_session.get_session(request)
        flow = session.pop(SESSION_FIELD, None)
        if not isinstance(flow, dict) or not flow.get("state"):
            return await refused(request, "The single sign-on expired: try again.", 400)
        if not secrets.compare_digest(str(request.query.get("state", "")), flow["state"]):
            return await refused(request, "The single sign-on answer does not match.", 400)
        if "error" in request.query or not request.query.get("code"):
            reason = request.query.get("error", "no code")[:100]
            return await refused(request, f"The identity provider refused: {reason}.", 401)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                id_token = await oidc.exchange(
                    http, request.query["code"], redirect_uri(config, request), flow["verifier"]
                )
                claims = await oidc.verify(http, id_token, flow["nonce"])
            identity = oidc.identity(claims)
        except SsoError as exc:
            return await refused(request, f"Single sign-on failed: {exc}", 401)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return await refused(request, f"Single sign-on is unavailable: {exc}", 502)
        user = await db_call(config.home, _account, identity.email, config.oidc.auto_create)
        if user is None:
            return await refused(
                request,
                f"There is no account for {identity.email}: ask an admin to add one.",
                403,
            )
        session = await aiohttp_session.new_session(request)  # a fresh id: no fixation
        session["uid"], session["ver"] = user.id, user.session_version
        csrf_token(session)
        log.info("signed in with single sign-on", extra={"user": user.email})
        raise web.HTTPSeeOther(flow["next"])

    return [web.get(START_PATH, start), web.get(CALLBACK_PATH, callback)]
