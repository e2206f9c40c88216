"""Stream a Zoom cloud-recording file to disk, safely and resumably.

The file is written to ``<dest>.part`` in chunks and renamed to ``dest`` only
once complete and of the expected size; the body is never held in memory.
Every URL (the first one and each redirect target) must have a host matching
one of ``allowed_hosts`` (fnmatch patterns such as ``*.zoom.us``). The bearer
token is sent to the original host only, never to a redirect target on
another host (Zoom redirects to signed URLs that need no token).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

REFUSED_CONTENT_TYPES = ("text/html", "application/json")
MAX_REDIRECTS = 10
DEFAULT_CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]


class DownloadError(Exception):
    """The file could not be downloaded; ``retryable`` says whether trying again may help.

    ``token_refused`` is set when Zoom refused the credential: 401/403, or a sign-in or
    error page instead of the video (what an expired webhook ``download_token`` gets).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        token_refused: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.token_refused = token_refused
        self.retry_after: float | None = None


def safe_url(url: URL | str) -> str:
    """The URL without its query (signed URLs and access tokens live there), for messages."""
    return str(URL(str(url)).with_query(None).with_fragment(None))


def host_allowed(url: URL | str, allowed_hosts: list[str]) -> bool:
    """True when the URL is http(s) and its host matches one of the fnmatch patterns."""
    parsed = URL(str(url))
    host = (parsed.host or "").lower().rstrip(".")
    if parsed.scheme not in ("http", "https") or not host:
        return False
    return any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allowed_hosts)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


async def _refuse_body(resp: aiohttp.ClientResponse, url: URL) -> DownloadError:
    """An error for a 200 that is an HTML/JSON error page; includes Zoom's message if short."""
    content_type = resp.headers.get("Content-Type", "")
    detail = ""
    if "json" in content_type:
        with contextlib.suppress(Exception):
            body = await resp.content.read(2000)
            data = json.loads(body)
            detail = str(data.get("message") or data.get("errorMessage") or "")
    return DownloadError(
        f"{safe_url(url)} answered with {content_type.split(';')[0] or 'an error page'} "
        "instead of a video (expired or wrong token, deleted recording, or a sign-in page)"
        + (f": {detail}" if detail else ""),
        status=resp.status,
        token_refused=True,
    )


async def _attempt(
    session: aiohttp.ClientSession,
    url: URL,
    part: Path,
    *,
    token: str,
    allowed_hosts: list[str],
    expected_size: int | None,
    chunk_size: int,
    progress: Progress | None,
) -> None:
    """One try: follow redirects by hand, then stream (appending when the server resumes)."""
    offset = part.stat().st_size if part.exists() else 0
    origin_host = url.host
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        if not host_allowed(current, allowed_hosts):
            raise DownloadError(
                f"refusing to download from {safe_url(current)}: host {current.host!r} "
                f"is not in [zoom] download_hosts {allowed_hosts}"
            )
        headers = {"Accept": "*/*"}
        if current.host == origin_host:
            headers["Authorization"] = f"Bearer {token}"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        async with session.get(current, headers=headers, allow_redirects=False) as resp:
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    raise DownloadError(f"redirect without Location from {safe_url(current)}")
                current = current.join(URL(location))
                continue
            if resp.status == 416 and expected_size is not None and offset == expected_size:
                return  # already complete
            if resp.status == 429 or resp.status >= 500:
                error = DownloadError(
                    f"{safe_url(current)} answered HTTP {resp.status}",
                    status=resp.status,
                    retryable=True,
                )
                error.retry_after = _retry_after(resp.headers.get("Retry-After"))
                raise error
            if resp.status not in (200, 206):
                raise DownloadError(
                    f"{safe_url(current)} answered HTTP {resp.status}",
                    status=resp.status,
                    token_refused=resp.status in (401, 403),
                )
            content_type = resp.headers.get("Content-Type", "").lower()
            if any(content_type.startswith(t) for t in REFUSED_CONTENT_TYPES):
                raise await _refuse_body(resp, current)
            total = _check_sizes(resp, current, offset, expected_size)
            if resp.status == 200 and offset:
                log.info("server ignored Range; downloading again", extra={"url": safe_url(url)})
                offset = 0
            mode = "ab" if resp.status == 206 else "wb"
            done = offset
            with open(part, mode) as fh:
                async for chunk in resp.content.iter_chunked(chunk_size):
                    fh.write(chunk)
                    done += len(chunk)
                    if expected_size is not None and done > expected_size:
                        raise DownloadError(
                            f"{safe_url(url)} sent more than the expected {expected_size} bytes"
                        )
                    if progress is not None:
                        progress(done, total)
            if total is not None and done != total:
                raise DownloadError(
                    f"{safe_url(url)}: connection ended at {done} of {total} bytes",
                    retryable=True,
                )
            return
    raise DownloadError(f"too many redirects from {safe_url(url)}")


def _check_sizes(
    resp: aiohttp.ClientResponse, url: URL, offset: int, expected_size: int | None
) -> int | None:
    """The total size the server announces; refuses one that disagrees with ``expected_size``."""
    total: int | None = None
    if resp.status == 206:
        match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise DownloadError(
                f"{safe_url(url)} resumed at the wrong offset "
                f"({resp.headers.get('Content-Range')!r}, wanted {offset})",
                retryable=True,
            )
        total = None if match.group(3) == "*" else int(match.group(3))
    elif resp.content_length is not None:
        total = resp.content_length
    if total is not None and expected_size is not None and total != expected_size:
        raise DownloadError(
            f"{safe_url(url)} is {total} bytes but Zoom listed {expected_size}; refusing it"
        )
    return total


async def download_recording(
    url: str,
    dest: Path,
    *,
    token: str,
    expected_size: int | None,
    allowed_hosts: list[str],
    max_attempts: int = 5,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    timeout: aiohttp.ClientTimeout | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``; raise :class:`DownloadError`.

    Retries connection errors, 429 (honouring ``Retry-After``) and 5xx with
    exponential backoff, up to ``max_attempts`` requests in all; after a broken
    connection it resumes with ``Range`` when the server answers 206.
    ``token`` is an OAuth access token or a webhook ``download_token``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    start_url = URL(url)
    timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    own_session = session is None
    session = session or aiohttp.ClientSession(timeout=timeout)
    context = {"url": safe_url(start_url), "dest": str(dest)}
    try:
        for attempt in range(1, max_attempts + 1):
            try:
                await _attempt(
                    session,
                    start_url,
                    part,
                    token=token,
                    allowed_hosts=allowed_hosts,
                    expected_size=expected_size,
                    chunk_size=chunk_size,
                    progress=progress,
                )
            except DownloadError as exc:
                if not exc.retryable:
                    part.unlink(missing_ok=True)
                    raise
                error: DownloadError = exc
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                error = DownloadError(
                    f"{safe_url(start_url)}: {type(exc).__name__}: {exc}", retryable=True
                )
                error.retry_after = None
            else:
                size = part.stat().st_size
                if expected_size is not None and size != expected_size:
                    part.unlink(missing_ok=True)
                    raise DownloadError(
                        f"{safe_url(start_url)}: got {size} bytes, Zoom listed {expected_size}"
                    )
                os.replace(part, dest)
                log.info("recording downloaded", extra={**context, "bytes": size})
                return dest
            if attempt >= max_attempts:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"gave up after {max_attempts} attempts: {error}",
                    status=error.status,
                    token_refused=error.token_refused,
                ) from error
            delay = (
                error.retry_after
                if error.retry_after is not None
                else min(max_backoff, backoff * 2 ** (attempt - 1))
            )
            log.warning(
                "download failed; retrying",
                extra={**context, "attempt": attempt, "delay_s": delay, "reason": str(error)},
            )
            await sleep(delay)
        raise AssertionError("unreachable")
    finally:
        if own_session:
            await session.close()
