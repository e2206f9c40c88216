"""Zoom Server-to-Server OAuth: fetch, cache and renew the account's access token.

Zoom's S2S flow is a single request::

    POST {oauth_url}?grant_type=account_credentials&account_id=...
    Authorization: Basic base64(client_id:client_secret)

answered with ``{"access_token", "token_type": "bearer", "expires_in": 3600,
"scope": "..."}``. :class:`TokenProvider` keeps that token, renews it shortly
before it expires and drops it on :meth:`TokenProvider.invalidate` (after a 401).
It is synchronous and thread-safe: zoomus calls run in worker threads.

The client secret and the tokens are never logged nor shown in ``repr``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests
from pydantic import SecretStr

if TYPE_CHECKING:
    from rollcall.config import ZoomConfig

log = logging.getLogger(__name__)

DEFAULT_RENEW_MARGIN_S = 60.0


class OAuthError(Exception):
    """No access token could be obtained; the message says why and what to check.

    ``retryable`` is true for transient failures (network, 429, 5xx) that are
    worth another attempt later, false for configuration problems.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True)
class AccessToken:
    """One access token as Zoom issued it. ``expires_at`` is on the provider's clock."""

    value: str = field(repr=False)
    token_type: str
    expires_at: float
    lifetime: float
    scopes: tuple[str, ...]

    def expires_within(self, seconds: float, now: float) -> bool:
        return now >= self.expires_at - seconds


def _error_message(status: int, body: dict, account_id: str) -> tuple[str, bool]:
    """Turn Zoom's OAuth error answer into (a message for people, retryable)."""
    error = str(body.get("error") or "")
    reason = str(body.get("reason") or body.get("error_description") or body.get("message") or "")
    if status == 401 or error in {"invalid_client", "unauthorized_client"}:
        return (
            "Zoom rejected the client id/secret (check [zoom] client_id and client_secret, "
            "or ROLLCALL_ZOOM_CLIENT_ID / ROLLCALL_ZOOM_CLIENT_SECRET, against the "
            f"Server-to-Server OAuth app in the Zoom Marketplace){': ' + reason if reason else ''}",
            False,
        )
    if "account" in reason.lower() or error == "invalid_request":
        return (
            f"Zoom rejected the account id {account_id!r} (check [zoom] account_id)"
            f"{': ' + reason if reason else ''}",
            False,
        )
    if status == 429 or status >= 500:
        return (f"Zoom's OAuth server answered HTTP {status}; try again later", True)
    return (f"Zoom refused the token request (HTTP {status} {error} {reason})".strip(), False)


class TokenProvider:
    """Caches one S2S access token; renews it ``renew_margin`` seconds before expiry.

    ``renew_margin`` is clamped to half the token's lifetime so that very short
    lifetimes (tests) still cache. ``clock`` is monotonic seconds (injectable).
    """

    def __init__(
        self,
        *,
        account_id: str,
        client_id: str,
        client_secret: SecretStr | str,
        oauth_url: str = "https://zoom.us/oauth/token",
        timeout: float = 15.0,
        renew_margin: float = DEFAULT_RENEW_MARGIN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._account_id = account_id
        self._client_id = client_id
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self.oauth_url = oauth_url
        self._timeout = timeout
        self._renew_margin = renew_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._current: AccessToken | None = None
        self.fetch_count = 0

    @classmethod
    def from_config(cls, zoom: ZoomConfig, **kwargs) -> TokenProvider:
        """Build from the ``[zoom]`` section of the configuration."""
        return cls(
            account_id=zoom.account_id,
            client_id=zoom.client_id,
            client_secret=zoom.client_secret,
            oauth_url=zoom.oauth_url,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"TokenProvider(account_id={self._account_id!r}, oauth_url={self.oauth_url!r})"

    def token(self) -> str:
        """A valid bearer token (cached, or fetched now)."""
        return self.access_token().value

    def access_token(self) -> AccessToken:
        """The cached :class:`AccessToken`, renewed first when it is about to expire."""
        with self._lock:
            current = self._current
            if current is not None:
                margin = min(self._renew_margin, current.lifetime / 2)
                if not current.expires_within(margin, self._clock()):
                    return current
                log.info("zoom token renewing before expiry", extra={"oauth_url": self.oauth_url})
            self._current = self._fetch()
            return self._current

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token so the next call fetches a new one.

        Pass the token that was rejected: if another thread already replaced
        it, the newer token is kept (no storm of renewals after one 401).
        """
        with self._lock:
            if self._current is None:
                return
            if token is not None and token != self._current.value:
                return
            log.info("zoom token invalidated", extra={"oauth_url": self.oauth_url})
            self._current = None

    def _fetch(self) -> AccessToken:
        missing = [
            name
            for name, value in (
                ("account_id", self._account_id),
                ("client_id", self._client_id),
                ("client_secret", self._secret.get_secret_value()),
            )
            if not value
        ]
        if missing:
            raise OAuthError(
                "Zoom credentials are not configured: set "
                + ", ".join(f"[zoom] {m} (ROLLCALL_ZOOM_{m.upper()})" for m in missing)
            )
        started = self._clock()
        try:
            resp = requests.post(
                self.oauth_url,
                params={"grant_type": "account_credentials", "account_id": self._account_id},
                auth=(self._client_id, self._secret.get_secret_value()),
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise OAuthError(
                f"cannot reach Zoom's OAuth server {self.oauth_url}: {type(exc).__name__}",
                retryable=True,
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if resp.status_code != 200 or not body.get("access_token"):
            message, retryable = _error_message(resp.status_code, body, self._account_id)
            log.warning(
                "zoom token request failed",
                extra={"status": resp.status_code, "oauth_url": self.oauth_url},
            )
            raise OAuthError(message, status=resp.status_code, retryable=retryable)
        expires_in = float(body.get("expires_in") or 3600)
        token = AccessToken(
            value=str(body["access_token"]),
            token_type=str(body.get("token_type") or "bearer"),
            expires_at=started + expires_in,
            lifetime=expires_in,
            scopes=tuple(str(body.get("scope") or "").split()),
        )
        self.fetch_count += 1
        log.info(
            "zoom token obtained",
            extra={"expires_in": expires_in, "scopes": len(token.scopes)},
        )
        return token
