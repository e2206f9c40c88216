"""Reading untrusted HTTP input: a request body with a size and a time limit, JSON with
a depth limit, and record ids that fit SQLite.

A body that trickles in is cut off after ``timeout_s`` (:class:`BodyTimeout`, answer
408); one larger than ``max_bytes`` is refused as soon as that is known
(:class:`BodyTooLarge`, answer 413). JSON nested deeper than :data:`MAX_JSON_DEPTH`
is refused (:class:`JsonInputError`, answer 400) instead of exhausting the parser's
recursion or a later ``json.dumps``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

MAX_JSON_DEPTH = 32  # Zoom's events nest 4 levels deep, the admin API's bodies 1
MAX_SQLITE_INT = 2**63 - 1  # SQLite's largest INTEGER


class BodyTooLarge(ValueError):
    """The body is larger than allowed."""


class BodyTimeout(ValueError):
    """The body did not arrive whole in time."""


class JsonInputError(ValueError):
    """Not JSON, or JSON nested too deeply; the message says which."""


async def read_body(request: web.Request, *, max_bytes: int, timeout_s: float) -> bytes:
    """The raw body, read within ``timeout_s`` seconds and at most ``max_bytes`` long."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyTooLarge(f"body larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > max_bytes:
                    raise BodyTooLarge(f"body larger than {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"body not received within {timeout_s:g} s") from None
    return b"".join(chunks)


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def loads_json(body: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode JSON nested at most ``max_depth`` levels, or raise :class:`JsonInputError`."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JsonInputError("body is not JSON") from None
    if json_depth(value) > max_depth:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels")
    return value


def record_id(text: str) -> int:
    """A database record id from a URL: an integer in 1..2**63-1, else ValueError."""
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an id: {text!r}")
    value = int(text)
    if not 1 <= value <= MAX_SQLITE_INT:
        raise ValueError(f"id out of range: {text}")
    return value
