"""``POST /zoom/webhook``: Zoom's signed event deliveries, checked and handed to the sink.

Zoom's rules, applied to every request (URL validation included):

* ``x-zm-signature`` must be ``"v0=" + hex(HMAC_SHA256(secret, f"v0:{ts}:{raw_body}"))``
  with ``ts`` the ``x-zm-request-timestamp`` header (seconds); a missing or
  wrong signature is answered 401 and has no effect;
* a timestamp more than :data:`MAX_SKEW_S` from now (either way) is a replay: 401;
* ``endpoint.url_validation`` is answered with ``plainToken`` and
  ``encryptedToken = hex(HMAC_SHA256(secret, plainToken))``;
* every other event goes to the sink; 200 once the sink has recorded it, 500
  if it failed or took longer than ``sink_timeout_s`` (Zoom then retries).
  Zoom wants an answer within 3 seconds.

Bodies larger than ``max_body_bytes`` are refused with 413 without being read
whole, bodies not received within ``body_timeout_s`` with 408; signed bodies that
are not a usable event (not JSON, nested too deeply, ids that are not numbers
or do not fit a 64-bit integer) with 400, so Zoom does not retry them. The
secret token, signatures and download tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web
from pydantic import SecretStr

from rollcall.bot.events import URL_VALIDATION, EventError, EventSink, log_context, parse_event
from rollcall.http_input import (
    BodyTimeout,
    BodyTooLarge,
    JsonInputError,
    loads_json,
    read_body,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/zoom/webhook"
MAX_SKEW_S = 300  # Zoom's published replay window
SINK_TIMEOUT_S = 2.0  # leaves headroom under Zoom's 3-second limit
BODY_TIMEOUT_S = 30.0  # [server] body_timeout_s
DISABLED_MESSAGE = "webhooks disabled: [zoom] webhook_secret_token is not set"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
SIGNATURE_HEADER = "x-zm-signature"


def sign_body(secret_token: str, timestamp: str, body: bytes) -> str:
    """The ``x-zm-signature`` value Zoom sends for ``body`` at ``timestamp``."""
    message = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret_token.encode(), message, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def encrypt_plain_token(secret_token: str, plain_token: str) -> str:
    """The ``encryptedToken`` answering an ``endpoint.url_validation`` challenge."""
    return hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def check_signature(
    secret_token: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_skew_s: float = MAX_SKEW_S,
) -> str | None:
    """Why a delivery is not authentic, or ``None`` if it is."""
    if not timestamp or not signature:
        return "missing signature headers"
    try:
        ts = int(timestamp.strip())
    except ValueError:
        return "malformed timestamp"
    if abs(now - ts) > max_skew_s:
        return "timestamp outside the replay window"
    expected = sign_body(secret_token, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        return "bad signature"
    return None


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)


def _closing(response: web.Response) -> web.Response:
    """The answer, then the connection is closed: the rest of the body is not waited for."""
    response.force_close()
    return response


def webhook_handler(
    secret_token: str | SecretStr,
    sink: EventSink,
    *,
    max_body_bytes: int,
    clock: Callable[[], float] = time.time,
    sink_timeout_s: float = SINK_TIMEOUT_S,
    max_skew_s: float = MAX_SKEW_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> Callable[[web.Request], object]:
    """The request handler behind :func:`webhook_routes`."""
    secret = (
        secret_token.get_secret_value() if isinstance(secret_token, SecretStr) else secret_token
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        peer = request.remote
        if not secret:
            return _text(503, DISABLED_MESSAGE)
        try:
            body = await read_body(request, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
        except BodyTooLarge as exc:
            log.warning(
                "webhook refused: body too large",
                extra={"remote": peer, "max_body_bytes": max_body_bytes},
            )
            return _closing(_text(413, str(exc)))
        except BodyTimeout as exc:
            log.warning(
                "webhook refused: body too slow",
                extra={"remote": peer, "body_timeout_s": body_timeout_s},
            )
            return _closing(_text(408, str(exc)))
        problem = check_signature(
            secret,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            clock(),
            max_skew_s,
        )
        if problem:
            log.warning("webhook refused: %s", problem, extra={"remote": peer})
            return _text(401, problem)
        try:
            decoded = loads_json(body)
        except JsonInputError as exc:
            log.warning("webhook refused: %s", exc, extra={"remote": peer})
            return _text(400, str(exc))
        if isinstance(decoded, dict) and decoded.get("event") == URL_VALIDATION:
            payload = decoded.get("payload")
            plain = payload.get("plainToken") if isinstance(payload, dict) else None
            if not isinstance(plain, str) or not plain:
                return _text(400, "endpoint.url_validation without payload.plainToken")
            log.info("webhook endpoint validated by Zoom", extra={"remote": peer})
            return web.json_response(
                {"plainToken": plain, "encryptedToken": encrypt_plain_token(secret, plain)}
            )
        try:
            event = parse_event(decoded, "webhook")
        except EventError as exc:
            log.warning("webhook refused: %s", exc, extra={"remote": peer})
            return _text(400, str(exc))
        context = log_context(event)
        try:
            await asyncio.wait_for(sink(event), timeout=sink_timeout_s)
        except TimeoutError:
            log.error(
                "webhook event not recorded: sink timed out, Zoom will retry",
                extra={**context, "timeout_s": sink_timeout_s},
            )
            return _text(500, "event not recorded")
        except Exception:
            log.exception("webhook event not recorded: sink failed, Zoom will retry", extra=context)
            return _text(500, "event not recorded")
        log.info(
            "webhook event received",
            extra={**context, "ms": round((time.monotonic() - started) * 1000, 1)},
        )
        return _text(200, "ok")

    return handle


def webhook_routes(
    secret_token: str | SecretStr,
    sink: EventSink,
    *,
    max_body_bytes: int,
    clock: Callable[[], float] = time.time,
    sink_timeout_s: float = SINK_TIMEOUT_S,
    max_skew_s: float = MAX_SKEW_S,
    body_timeout_s: float = BODY_TIMEOUT_S,
    path: str = WEBHOOK_PATH,
) -> list[web.RouteDef]:
    """``POST /zoom/webhook`` for ``app.add_routes(...)``.

    ``secret_token`` is the event subscription's Secret Token
    (``config.zoom.webhook_secret_token``, a ``SecretStr`` is accepted as is);
    empty means the route answers 503. ``max_body_bytes`` is
    ``config.server.max_body_bytes``, ``body_timeout_s`` is
    ``config.server.body_timeout_s``. ``clock`` (seconds since the epoch) is
    for tests.
    """
    handler = webhook_handler(
        secret_token,
        sink,
        max_body_bytes=max_body_bytes,
        clock=clock,
        sink_timeout_s=sink_timeout_s,
        max_skew_s=max_skew_s,
        body_timeout_s=body_timeout_s,
    )
    return [web.post(path, handler)]
