"""Uploaded files: streamed to disk under a size limit, with safe names.

A multipart body is read part by part and each file part is written to a new
file in a folder of the caller's choosing, chunk by chunk, so an upload never
sits in memory; a part over the limit is deleted and refused with 413. The
name a browser sends is reduced to a plain file name (no folders, no dots
first, no control characters) and never used to pick the folder.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

CHUNK = 1 << 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True, slots=True)
class Upload:
    field: str
    filename: str  # the safe name
    path: Path  # where it was written
    size: int


def safe_filename(name: str, default: str = "upload") -> str:
    """A plain file name from a browser-sent one: last path part, safe characters only."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")[:120]
    return base or default


async def save_parts(
    request: web.Request,
    folder: Path,
    *,
    max_bytes: int,
    suffixes: tuple[str, ...] | None = None,
    max_files: int = 50,
) -> tuple[list[Upload], dict[str, str]]:
    """Stream a multipart body: the file parts to ``folder`` and the text fields back.

    Raises 413 for a file over ``max_bytes``, 400 for a wrong file type or too many files.
    """
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPBadRequest(text="400: send the form as multipart/form-data")
    folder.mkdir(parents=True, exist_ok=True)
    reader = await request.multipart()
    files: list[Upload] = []
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if not part.filename:
            fields[part.name or ""] = (await part.read(decode=True)).decode("utf-8", "replace")[
                :10_000
            ]
            continue
        name = safe_filename(part.filename)
        if suffixes is not None and not name.lower().endswith(suffixes):
            raise web.HTTPBadRequest(
                text=f"400: {name}: not an accepted file type ({', '.join(suffixes)})"
            )
        if len(files) >= max_files:
            raise web.HTTPBadRequest(text=f"400: at most {max_files} files at once")
        target = folder / uuid.uuid4().hex / name  # a folder each: the name stays as sent
        target.parent.mkdir()
        size = 0
        try:
            with open(target, "xb") as fh:
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise web.HTTPRequestEntityTooLarge(
                            max_size=max_bytes, actual_size=size, text=f"413: {name} is too large"
                        )
                    fh.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        files.append(Upload(part.name or "", name, target, size))
    return files, fields
