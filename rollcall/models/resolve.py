"""Finding a pack's files on disk, or downloading them into the insightface cache.

:func:`resolve_pack` looks, in order, in

1. the configured models dir: ``<models_dir>/<pack>/``, else ``models_dir`` itself
   when it directly holds the pack's files (an unregistered folder pack is
   looked for in its own folder first);
2. the insightface cache: ``<cache_dir>/<pack>/`` (default ``~/.insightface/models``);
3. the network, when ``allow_download`` is set and the pack has an archive:
   ``<download_base_url>/<pack>.zip`` (default: the pack's ``archive_url``);
   never when the models dir holds other registered packs: the error then names
   them and how to select one (a models dir is how offline machines are set up,
   so a pack missing from it is far more likely a wrong name than a wish to download).

Integrity checks
----------------
* Sizes and sha256 are checked against the registry for every file whose value
  is known. A folder under the models dir is hashed on every call and never
  written to (it may be read-only); for ``lite`` (6.5 MB) this costs a few ms.
* In the cache folder the result is remembered in ``<cache_dir>/<pack>/.rollcall.json``
  keyed by file name + size + mtime, so an unchanged file is not hashed again.
* Downloads are always checked (hashing is free while streaming), whatever
  ``verify`` says: the archive sha256 when known, then each extracted file. The
  archive and file hashes actually obtained are recorded in ``.rollcall.json``
  (``source``), so a pack whose hashes are not pinned (``sha256=None``) is still
  held to the bytes it was first downloaded with (trust on first use).
* ``verify=False`` skips size and hash checks of files already on disk
  (existence is still required).

A download is streamed to a temporary file in ``cache_dir``, unpacked into a
temporary folder next to it, verified, then moved into place with one
``rename``, so ``<cache_dir>/<pack>/`` either is complete or does not exist.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rollcall.models.download import download, extract_zip, remove_tree, sha256_file
from rollcall.models.errors import ModelError
from rollcall.models.registry import (
    ENV_MODELS_DIR,
    ENV_MODELS_PACK,
    REGISTRY,
    ModelFile,
    ModelPack,
    get_pack,
)

log = logging.getLogger(__name__)

RECORD_NAME = ".rollcall.json"
RECORD_FORMAT = 1

Source = Literal["dir", "cache", "download"]


def default_cache_dir() -> Path:
    """insightface's own cache: ``~/.insightface/models`` (FaceAnalysis looks there too)."""
    return Path("~/.insightface/models").expanduser()


@dataclass(frozen=True)
class ResolvedPack:
    """A pack whose detector and recognizer exist (and were verified) on disk."""

    pack: ModelPack
    root: Path  # folder holding the files; insightface.app.FaceAnalysis(name=str(root)) loads it
    detector_path: Path
    recognizer_path: Path
    source: Source  # "dir": models dir, "cache": insightface cache, "download": fetched now

    def describe(self) -> str:
        """One line for logs and reports."""
        return (
            f"model pack {self.pack.name!r} ({self.pack.embedding_dim}-d, "
            f"match threshold {self.pack.match_threshold}) from {self.source} {self.root}"
        )


def resolve_pack(
    pack_name: str | ModelPack,
    *,
    models_dir: Path | None = None,
    cache_dir: Path | None = None,
    allow_download: bool = False,
    download_base_url: str | None = None,
    verify: bool = True,
    progress: bool = True,
    timeout: float = 30.0,
) -> ResolvedPack:
    """Find (or download) a pack and return where its files are.

    ``pack_name`` is a registered name, the path of an unregistered pack folder, or
    a :class:`ModelPack` (e.g. ``get_pack(...)`` with config thresholds applied, or
    a custom entry in tests). ``cache_dir`` defaults to ``~/.insightface/models``.
    ``download_base_url`` replaces the base of the pack's ``archive_url`` (the
    archive is then ``<download_base_url>/<pack>.zip``), for mirrors and tests; a
    pack without ``archive_url`` (``lite``, folder packs) is never downloaded.
    Raises :class:`ModelError` with the expected file, the places looked in and
    the fix.
    """
    pack = (
        pack_name
        if isinstance(pack_name, ModelPack)
        else get_pack(pack_name, models_dir=models_dir)
    )
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    looked: list[Path] = []
    # 1. an unregistered folder pack's own folder, then the models dir
    dirs: list[tuple[Path, bool]] = []  # (folder, dedicated to this pack?)
    if pack.local_dir is not None:
        dirs.append((pack.local_dir, True))
    if models_dir is not None:
        md = Path(models_dir).expanduser()
        dirs += [(md / pack.name, True), (md, False)]
    seen: set[Path] = set()
    for folder, dedicated in dirs:
        key = folder.resolve() if folder.exists() else folder
        if key in seen:
            continue
        seen.add(key)
        looked.append(folder)
        missing, present = _presence(pack, folder)
        if not missing:
            return _verified(pack, folder, "dir", verify=verify)
        if present and dedicated:
            raise ModelError(
                f"model pack folder {folder} for pack {pack.name!r} is incomplete: missing "
                f"{', '.join(missing)} (found {', '.join(present)}). Copy the missing file(s) "
                f"there, or point {ENV_MODELS_DIR} (or [models] dir in config.toml) at a "
                f"folder holding a complete {pack.name}/"
            )

    # 2. the insightface cache
    cached = cache_root / pack.name
    looked.append(cached)
    missing, present = _presence(pack, cached)
    if not missing:
        return _verified(pack, cached, "cache", verify=verify)
    if present:
        raise ModelError(
            f"cached model pack {cached} is incomplete: missing {', '.join(missing)} "
            f"(found {', '.join(present)}). Delete {cached} and run again"
            + (" to download it afresh" if pack.archive_url else "")
            + f", or point {ENV_MODELS_DIR} (or [models] dir in config.toml) at a folder "
            f"holding {pack.name}/"
        )

    # 3. download
    url = _archive_url(pack, download_base_url)
    wanted = ", ".join(f.name for f in pack.required_files)
    noun = "files" if len(pack.required_files) > 1 else "file"
    where = ", ".join(str(p) for p in looked)
    others = packs_in_models_dir(models_dir) if models_dir is not None else ()
    others = tuple(name for name in others if name != pack.name)
    if others:
        raise ModelError(
            f"model pack {pack.name!r} not found: looked in {where}. The models dir "
            f"{Path(models_dir).expanduser()} holds pack(s) {', '.join(others)}: select one "
            f'with {ENV_MODELS_PACK}={others[0]} (or [models] pack = "{others[0]}" in '
            f"config.toml), or copy {pack.name}/ into the models dir"
        )
    if not allow_download or url is None:
        if url is None:
            fix = (
                f"set {ENV_MODELS_DIR} (or [models] dir in config.toml) to a folder holding "
                f"{pack.name}/ (pack {pack.name!r} is not published as a download)"
            )
        else:
            fix = (
                f"set {ENV_MODELS_DIR} (or [models] dir in config.toml) to a folder holding "
                f"{pack.name}/, or allow downloading (fetches {url} into {cached})"
            )
        raise ModelError(
            f"model {noun} {wanted} of pack {pack.name!r} not found: looked in {where}; {fix}"
        )
    return _download_pack(pack, url, cache_root, progress=progress, timeout=timeout)


def packs_in_models_dir(models_dir: Path) -> tuple[str, ...]:
    """Registered packs whose required files are all in ``<models_dir>/<pack>/`` or
    in ``models_dir`` itself, sorted (nothing is hashed or written)."""
    md = Path(models_dir).expanduser()
    return tuple(
        name
        for name, pack in sorted(REGISTRY.items())
        if not _presence(pack, md / name)[0] or not _presence(pack, md)[0]
    )


# --------------------------------------------------------------------------- helpers


def _archive_url(pack: ModelPack, base: str | None) -> str | None:
    """Where to fetch the pack: None when it is not published (e.g. ``lite``), whatever the base."""
    if pack.archive_url is None:
        return None
    if base:
        return f"{base.rstrip('/')}/{pack.name}.zip"
    return pack.archive_url


def _presence(pack: ModelPack, folder: Path) -> tuple[list[str], list[str]]:
    """(missing required file names, present pack file names) in ``folder``."""
    if not folder.is_dir():
        return [f.name for f in pack.required_files], []
    missing = [f.name for f in pack.required_files if not (folder / f.name).is_file()]
    present = [f.name for f in pack.files if (folder / f.name).is_file()]
    return missing, present


def _read_record(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        return {}
    if not isinstance(data.get("files"), dict):
        data["files"] = {}
    return data


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    """Atomically replace ``.rollcall.json``; a read-only cache is tolerated (logged)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{RECORD_NAME}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, folder / RECORD_NAME)
    except OSError as exc:
        log.debug("could not write %s in %s: %s", RECORD_NAME, folder, exc)


def _fix_hint(pack: ModelPack, folder: Path, source: Source) -> str:
    if source == "dir":
        return (
            f"Replace it with a good copy (a shared models folder can be checked with "
            f"`sha256sum -c SHA256SUMS`), or point {ENV_MODELS_DIR} (or [models] dir in "
            f"config.toml) elsewhere"
        )
    again = " to download it afresh" if pack.archive_url else " and unzip the pack there again"
    return f"Delete {folder} and run again{again}"


def _check_size(pack: ModelPack, mf: ModelFile, path: Path, size: int, source: Source) -> None:
    if mf.size is not None and size != mf.size:
        problem = "is truncated" if size < mf.size else "has the wrong size"
        raise ModelError(
            f"model file {mf.name} of pack {pack.name!r} at {path} {problem}: expected "
            f"{mf.size} bytes, found {size}. {_fix_hint(pack, path.parent, source)}"
        )


def _check_hash(
    pack: ModelPack, mf: ModelFile, path: Path, expected: str, actual: str, source: Source, why: str
) -> None:
    if actual != expected:
        raise ModelError(
            f"model file {mf.name} of pack {pack.name!r} at {path} is corrupt or a different "
            f"file: sha256 expected {expected} ({why}), actual {actual}. "
            f"{_fix_hint(pack, path.parent, source)}"
        )


def _verified(pack: ModelPack, folder: Path, source: Source, *, verify: bool) -> ResolvedPack:
    """Check sizes and hashes of the pack's files in ``folder`` and build the result."""
    if verify:
        started = time.perf_counter()
        hashed = 0
        use_record = source != "dir"  # never write into the models dir
        record = _read_record(folder) if use_record else {}
        files_rec: dict[str, Any] = record.get("files", {})
        changed = False
        for mf in pack.files:
            path = folder / mf.name
            if not path.is_file():
                continue  # optional file absent (required ones were checked by _presence)
            st = path.stat()
            _check_size(pack, mf, path, st.st_size, source)
            rec = files_rec.get(mf.name) if use_record else None
            expected, why = mf.sha256, "registry"
            if expected is None and rec and rec.get("recorded") == "download":
                expected, why = rec.get("sha256"), "recorded when it was downloaded"
            unchanged = (
                rec is not None
                and rec.get("size") == st.st_size
                and rec.get("mtime_ns") == st.st_mtime_ns
                and (expected is None or rec.get("sha256") == expected)
            )
            if unchanged:
                continue
            if expected is None and not use_record:
                continue  # nothing to compare with, nowhere to record: existence is all we check
            actual = sha256_file(path)
            hashed += st.st_size
            if expected is not None:
                _check_hash(pack, mf, path, expected, actual, source, why)
            if use_record:
                files_rec[mf.name] = {
                    "size": st.st_size,
                    "mtime_ns": st.st_mtime_ns,
                    "sha256": actual,
                    "recorded": (rec or {}).get("recorded", "first use"),
                }
                changed = True
        if changed:
            record.setdefault("format", RECORD_FORMAT)
            record.setdefault("pack", pack.name)
            record["files"] = files_rec
            _write_record(folder, record)
        log.debug(
            "verified pack %s in %s: hashed %.1f MB in %.3f s",
            pack.name,
            folder,
            hashed / 1e6,
            time.perf_counter() - started,
        )
    return ResolvedPack(
        pack=pack,
        root=folder,
        detector_path=folder / pack.detector_file,
        recognizer_path=folder / pack.recognizer_file,
        source=source,
    )


def _download_pack(
    pack: ModelPack, url: str, cache_root: Path, *, progress: bool, timeout: float
) -> ResolvedPack:
    target = cache_root / pack.name
    label = f"{pack.name}.zip"
    offline_hint = (
        f"download the archive on another machine and unzip it into {target}/, or point "
        f"{ENV_MODELS_DIR} at a folder holding {pack.name}/"
    )
    manual_hint = f"; or download {url} by hand and unzip it into {target}/"
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the model cache folder {cache_root}: {exc}. Choose a writable "
            f"cache dir, or point {ENV_MODELS_DIR} at a folder holding {pack.name}/"
        ) from exc
    if progress:
        print(f"model pack {pack.name!r} not found locally; downloading {url}", file=sys.stderr)
    fetched = download(
        url,
        cache_root,
        label=label,
        expected_size=pack.archive_size,
        timeout=timeout,
        progress=progress,
        offline_hint=offline_hint,
        manual_hint=manual_hint,
    )
    staging: Path | None = None
    try:
        if pack.archive_sha256 is not None and fetched.sha256 != pack.archive_sha256:
            raise ModelError(
                f"downloaded {label} from {url} does not match the registry: sha256 expected "
                f"{pack.archive_sha256}, actual {fetched.sha256} ({fetched.size} bytes). The "
                f"download is corrupt or the release was changed; it was deleted and nothing was "
                f"installed in {target}"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{pack.name}.", suffix=".unpack", dir=cache_root))
        try:
            hashes = extract_zip(fetched.path, staging, label=f"{label} from {url}")
        except ModelError as exc:
            raise ModelError(
                f"{exc}; the download was deleted and nothing was installed in {target}. Run "
                f"again to retry, or download {url} by hand from a trusted source and unzip it "
                f"into {target}/"
            ) from exc
        missing = [f.name for f in pack.required_files if f.name not in hashes]
        if missing:
            raise ModelError(
                f"{label} from {url} does not contain {', '.join(missing)} (it holds: "
                f"{', '.join(sorted(hashes))}); nothing was installed in {target}"
            )
        files_rec: dict[str, Any] = {}
        for mf in pack.files:
            if mf.name not in hashes:
                continue
            path = staging / mf.name
            st = path.stat()
            if mf.size is not None and st.st_size != mf.size:
                raise ModelError(
                    f"{mf.name} in {label} from {url} has {st.st_size} bytes, expected "
                    f"{mf.size}; nothing was installed in {target}"
                )
            if mf.sha256 is not None and hashes[mf.name] != mf.sha256:
                raise ModelError(
                    f"{mf.name} in {label} from {url} is not the expected file: sha256 expected "
                    f"{mf.sha256}, actual {hashes[mf.name]}; nothing was installed in {target}"
                )
            files_rec[mf.name] = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": hashes[mf.name],
                "recorded": "download",
            }
        record = {
            "format": RECORD_FORMAT,
            "pack": pack.name,
            "source": {
                "url": url,
                "final_url": fetched.final_url,
                "archive_sha256": fetched.sha256,
                "archive_sha256_pinned": pack.archive_sha256 is not None,
                "archive_size": fetched.size,
                "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
            "files": files_rec,
        }
        _write_record(staging, record)
        try:
            os.rename(staging, target)
            staging = None
        except OSError:
            if not target.is_dir():
                raise
            # another process installed the pack meanwhile: use theirs (verified below)
            log.info("pack %s appeared in %s during the download; using it", pack.name, target)
            return _verified(pack, target, "cache", verify=True)
    finally:
        fetched.path.unlink(missing_ok=True)
        if staging is not None:
            remove_tree(staging)
    if progress:
        print(f"installed model pack {pack.name!r} in {target}", file=sys.stderr)
    return ResolvedPack(
        pack=pack,
        root=target,
        detector_path=target / pack.detector_file,
        recognizer_path=target / pack.recognizer_file,
        source="download",
    )
