"""Fetching a pack archive over HTTP(S) and unpacking it safely.

Plain functions used by :mod:`rollcall.models.resolve`; they know nothing about packs
beyond a label for messages. Downloads use :mod:`urllib.request` (synchronous,
with a timeout, following redirects as GitHub release downloads require) and
show a :mod:`rich` progress bar on stderr. Every failure raises
:class:`~rollcall.models.errors.ModelError` after removing whatever was partly written.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import ssl
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rollcall.models.errors import ModelError

CHUNK = 1 << 20
USER_AGENT = "rollcall-model-fetch/0.1 (+https://github.com/deepinsight/insightface)"
#: Refuse archives that would unpack to more than this (zip-bomb guard; buffalo_l is ~340 MB).
MAX_UNPACKED_BYTES = 4 << 30


@dataclass(frozen=True)
class Downloaded:
    """A fully received archive in a temporary file (the caller deletes it)."""

    path: Path
    sha256: str
    size: int
    final_url: str  # after redirects


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _progress_bar(
    label: str, total: int | None
) -> tuple[AbstractContextManager, Callable[[int], None]]:
    """A rich progress bar on stderr and a function advancing it by n bytes."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(file=sys.stderr)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task(label, total=total)
    return bar, lambda n: bar.update(task, advance=n)


def describe_network_error(exc: BaseException) -> str:
    """A short human reason for a urllib/socket exception."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _is_offline_error(exc: BaseException) -> bool:
    """True for failures that mean 'could not reach the server at all'."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        # DNS failure, refused, unreachable, timeout, ... but not a TLS/certificate problem
        return not isinstance(exc.reason, ssl.SSLError)
    return isinstance(exc, OSError)  # TimeoutError, ConnectionError, socket errors


def download(
    url: str,
    dest_dir: Path,
    *,
    label: str,
    expected_size: int | None = None,
    timeout: float = 30.0,
    progress: bool = True,
    offline_hint: str = "",
    manual_hint: str = "",
) -> Downloaded:
    """Stream ``url`` into a temporary ``.part`` file inside ``dest_dir``, hashing as it goes.

    Raises :class:`ModelError` (and deletes the partial file) on HTTP errors,
    unreachable servers (message ends with ``offline_hint``), interrupted
    transfers and bodies shorter than the announced Content-Length or than
    ``expected_size``. ``manual_hint`` is appended to the other errors.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{label}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    total: int | None = None
    ok = False
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise ModelError(
                f"could not download {label} from {url}: HTTP {exc.code} {exc.reason}. "
                "Check that the pack is published at this URL (download URL / mirror setting)"
                f"{manual_hint}"
            ) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = describe_network_error(exc)
            if _is_offline_error(exc):
                raise ModelError(
                    f"could not download {label} from {url}: {reason}. "
                    f"This machine appears offline: {offline_hint}"
                ) from exc
            raise ModelError(
                f"could not download {label} from {url}: {reason}{manual_hint}"
            ) from exc

        with response, os.fdopen(fd, "wb") as out:
            fd = -1
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            bar, advance = _progress_bar(label, total) if progress else (nullcontext(), None)
            started = time.monotonic()
            with bar:
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if advance is not None:
                            advance(len(chunk))
                except (OSError, http.client.HTTPException) as exc:
                    of = f" of {total}" if total else ""
                    raise ModelError(
                        f"download of {label} from {url} was interrupted after {received}{of} "
                        f"bytes: {describe_network_error(exc)}. Run again to retry{manual_hint}"
                    ) from exc
            final_url = response.geturl()
        announced = int(length) if length and length.isdigit() else None
        for what, want in (("the server announced", announced), ("expected", expected_size)):
            if want is not None and received != want:
                problem = "is truncated" if received < want else "has an unexpected size"
                raise ModelError(
                    f"download of {label} from {url} {problem}: received {received} bytes, "
                    f"{what} {want}. Run again to retry{manual_hint}"
                )
        if progress:
            elapsed = max(time.monotonic() - started, 1e-6)
            print(
                f"downloaded {label}: {received / 1e6:.1f} MB in {elapsed:.1f} s",
                file=sys.stderr,
            )
        ok = True
        return Downloaded(tmp, digest.hexdigest(), received, final_url)
    finally:
        if fd != -1:
            os.close(fd)
        if not ok:
            tmp.unlink(missing_ok=True)


def _member_path(info: zipfile.ZipInfo, archive_label: str) -> PurePosixPath | None:
    """Safe relative path of a zip member, None to skip it; ModelError if it is unsafe."""
    raw = info.filename.replace("\\", "/")
    path = PurePosixPath(raw)
    unsafe = (
        raw.startswith("/")
        or (len(raw) > 1 and raw[1] == ":")  # C:... drive paths
        or any(part == ".." for part in path.parts)
        or stat.S_ISLNK(info.external_attr >> 16)
    )
    if unsafe:
        raise ModelError(
            f"refusing to unpack {archive_label}: member {info.filename!r} would be written "
            "outside the pack folder (absolute path, '..' or symlink), so the archive is not a "
            "genuine model pack"
        )
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts or info.is_dir() or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    return PurePosixPath(*parts)


def extract_zip(archive: Path, into: Path, *, label: str) -> dict[str, str]:
    """Unpack ``archive`` into the (empty) folder ``into``; return {relative path: sha256}.

    Works for zips with the files at top level and for zips holding one folder
    (``<pack>/...``), whose prefix is stripped. Every member is checked before
    anything is written: absolute paths, ``..`` components and symlinks make the
    whole archive refused. A bad zip or CRC error raises :class:`ModelError`.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{label} is not a valid zip archive ({exc})") from exc
    with zf:
        members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in zf.infolist():
            rel = _member_path(info, label)
            if rel is not None:
                members.append((info, rel))
        if not members:
            raise ModelError(f"{label} contains no files")
        tops = {rel.parts[0] for _, rel in members}
        if len(tops) == 1 and all(len(rel.parts) > 1 for _, rel in members):
            members = [(info, PurePosixPath(*rel.parts[1:])) for info, rel in members]
        if sum(info.file_size for info, _ in members) > MAX_UNPACKED_BYTES:
            raise ModelError(f"refusing to unpack {label}: it would expand to more than 4 GiB")

        hashes: dict[str, str] = {}
        for info, rel in members:
            key = rel.as_posix()
            if key in hashes:
                raise ModelError(f"refusing to unpack {label}: member {key!r} appears twice")
            target = into.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            try:
                with zf.open(info) as src, open(target, "xb") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        digest.update(chunk)
            except (
                zipfile.BadZipFile,
                zlib.error,
                EOFError,
                OSError,
                ValueError,
                NotImplementedError,
            ) as exc:
                raise ModelError(
                    f"{label} is corrupt: member {info.filename!r} cannot be read ({exc})"
                ) from exc
            hashes[key] = digest.hexdigest()
        return hashes


def remove_tree(path: Path) -> None:
    """Best-effort recursive delete (used for staging folders)."""
    shutil.rmtree(path, ignore_errors=True)
