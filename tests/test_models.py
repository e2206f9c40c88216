"""Model registry and pack resolution, against a real HTTP server on 127.0.0.1.

No test touches the internet or ``~/.insightface``: every call gets a temporary
cache dir and a local download URL (or a closed local port for "offline").
The release-style zips are built here from ``../shared/models/lite``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import rollcall.models.resolve
from rollcall.models import (
    ENV_MODELS_DIR,
    ModelError,
    ModelFile,
    ModelPack,
    get_pack,
    known_packs,
    models_dir_from_env,
    resolve_pack,
)
from rollcall.models.resolve import RECORD_NAME


def _shared_models_dir() -> Path:
    env = os.environ.get(ENV_MODELS_DIR)
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "models"


SHARED = _shared_models_dir()
LITE_FILES = ("det_500m.onnx", "mobilefacenet.onnx")
pytestmark = pytest.mark.skipif(
    not all((SHARED / "lite" / f).is_file() for f in LITE_FILES),
    reason=f"offline model pack not available: {SHARED / 'lite'} must hold {', '.join(LITE_FILES)} "
    f"(set {ENV_MODELS_DIR} to the shared models folder)",
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lite_bytes() -> dict[str, bytes]:
    return {name: (SHARED / "lite" / name).read_bytes() for name in LITE_FILES}


@pytest.fixture(scope="module")
def zips(lite_bytes: dict[str, bytes]) -> dict[str, bytes]:
    flat = _zip(lite_bytes)
    return {
        "flat": flat,
        "nested": _zip({f"lite/{n}": b for n, b in lite_bytes.items()}),
        "evil": _zip({**lite_bytes, "../evil.onnx": b"gotcha"}),
        "corrupt": b"PK\x03\x04" + os.urandom(4096),
        # intact directory, damaged data: only the CRC check while unpacking can tell
        "damaged": flat[:2000] + bytes(b ^ 0xFF for b in flat[2000:2100]) + flat[2100:],
    }


class _Server:
    """A threaded HTTP server with a few fixed routes and a hit counter."""

    def __init__(self, zips: dict[str, bytes]) -> None:
        self.hits: Counter[str] = Counter()
        routes = {
            "/ok/lite.zip": zips["flat"],
            "/nested/lite.zip": zips["nested"],
            "/evil/lite.zip": zips["evil"],
            "/corrupt/lite.zip": zips["corrupt"],
            "/damaged/lite.zip": zips["damaged"],
        }
        full = zips["flat"]
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                hits[self.path] += 1
                if self.path == "/redirect/lite.zip":
                    self.send_response(302)
                    self.send_header("Location", "/ok/lite.zip")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/truncated/lite.zip":  # announces everything, sends half
                    self.send_response(200)
                    self.send_header("Content-Type", "application/zip")
                    self.send_header("Content-Length", str(len(full)))
                    self.end_headers()
                    self.wfile.write(full[: len(full) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path in routes:
                    body = routes[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/zip")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404, "Not Found")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, route: str) -> str:
        return f"{self.base}/{route}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(zips: dict[str, bytes]) -> Iterator[_Server]:
    srv = _Server(zips)
    yield srv
    srv.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused = 'offline')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/releases"


def _lite_pack(zip_bytes: bytes | None = None, **changes: object) -> ModelPack:
    """The registered lite pack, made downloadable from the test server."""
    fields: dict[str, object] = {"archive_url": "http://127.0.0.1:9/unused/lite.zip"}
    if zip_bytes is not None:
        fields.update(archive_sha256=_sha(zip_bytes), archive_size=len(zip_bytes))
    fields.update(changes)
    return dataclasses.replace(get_pack("lite"), **fields)  # type: ignore[arg-type]


def _copy_lite(dest: Path, names: tuple[str, ...] = LITE_FILES) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(SHARED / "lite" / name, dest / name)
    return dest


# --------------------------------------------------------------------------- registry


def test_registry_lists_standard_packs_and_lite() -> None:
    assert known_packs() == ("buffalo_l", "buffalo_s", "buffalo_sc", "lite")
    for name in known_packs():
        pack = get_pack(name)
        assert pack.name == name
        assert 0.0 < pack.match_threshold < 1.0 and 0.0 < pack.unknown_cluster_threshold < 1.0
        assert pack.threshold_source and pack.hash_source
        assert pack.detector.role == "detector" and pack.recognizer.role == "recognizer"
    for name in ("buffalo_sc", "buffalo_s", "buffalo_l"):
        pack = get_pack(name)
        assert pack.embedding_dim == 512
        assert pack.archive_url == (
            f"https://github.com/deepinsight/insightface/releases/download/v0.7/{name}.zip"
        )
        assert pack.archive_sha256 and pack.archive_size
        assert pack.hashes_verified is False  # pinned from public manifests, not recomputed here
        assert "uncalibrated" in pack.threshold_source
    assert get_pack("buffalo_l").detector_file == "det_10g.onnx"
    assert get_pack("buffalo_l").recognizer_file == "w600k_r50.onnx"
    assert get_pack("buffalo_sc").recognizer_file == "w600k_mbf.onnx"


def test_lite_entry_matches_shared_sha256sums() -> None:
    sums = dict(
        reversed(line.split()) for line in (SHARED / "SHA256SUMS").read_text().splitlines() if line
    )
    lite = get_pack("lite")
    assert lite.embedding_dim == 128 and lite.archive_url is None and lite.hashes_verified
    assert lite.threshold_source == "calibrated on ../shared/faces, see benchmarks/calibrate.py"
    for f in lite.files:
        assert f.sha256 == sums[f"lite/{f.name}"]
        assert f.size == (SHARED / "lite" / f.name).stat().st_size
    # the shared detector is byte-identical to the buffalo packs' det_500m.onnx
    assert get_pack("buffalo_sc").detector == lite.detector


def test_unknown_pack_lists_known_packs(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        get_pack("buffalo_xl", models_dir=tmp_path)
    msg = str(err.value)
    assert "unknown model pack 'buffalo_xl'" in msg
    for name in known_packs():
        assert name in msg
    with pytest.raises(ModelError, match="known packs are"):
        resolve_pack("nope", cache_dir=tmp_path)


def test_config_thresholds_override_registry() -> None:
    pack = get_pack("buffalo_sc", match_threshold=0.31, unknown_cluster_threshold=0.5)
    assert (pack.match_threshold, pack.unknown_cluster_threshold) == (0.31, 0.5)
    assert "config.toml" in pack.threshold_source and "0.4" in pack.threshold_source
    assert get_pack("buffalo_sc").match_threshold == 0.40  # registry itself unchanged


def test_models_dir_from_env(tmp_path: Path) -> None:
    assert models_dir_from_env({ENV_MODELS_DIR: str(tmp_path)}) == tmp_path
    assert models_dir_from_env({ENV_MODELS_DIR: " "}) is None
    assert models_dir_from_env({}) is None


def test_unregistered_folder_pack(tmp_path: Path) -> None:
    folder = tmp_path / "mypack"
    folder.mkdir()
    # names give no hint: roles must come from the ONNX signatures
    shutil.copyfile(SHARED / "lite" / "det_500m.onnx", folder / "a.onnx")
    shutil.copyfile(SHARED / "lite" / "mobilefacenet.onnx", folder / "b.onnx")
    with pytest.raises(ModelError, match="match_threshold") as refused:
        get_pack(str(folder))
    assert "[recognition] unknown_cluster_threshold" in str(refused.value)  # its section
    pack = get_pack(str(folder), match_threshold=0.3)
    assert (pack.detector_file, pack.recognizer_file) == ("a.onnx", "b.onnx")
    assert pack.embedding_dim == 128
    assert pack.unknown_cluster_threshold == 0.3 and pack.local_dir == folder.resolve()
    # also found by bare name inside the models dir
    by_name = get_pack("mypack", models_dir=tmp_path, match_threshold=0.3)
    assert by_name.local_dir == folder.resolve()
    resolved = resolve_pack(pack, cache_dir=tmp_path / "cache")
    assert resolved.source == "dir" and resolved.detector_path == folder / "a.onnx"
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- local resolution


def test_resolve_from_models_dir(tmp_path: Path) -> None:
    r = resolve_pack("lite", models_dir=SHARED, cache_dir=tmp_path)
    assert r.source == "dir" and r.root == SHARED / "lite"
    assert r.detector_path == SHARED / "lite" / "det_500m.onnx"
    assert r.recognizer_path == SHARED / "lite" / "mobilefacenet.onnx"
    assert not (SHARED / "lite" / RECORD_NAME).exists()  # models dir is never written to
    # a models dir that directly holds the pack's files works too
    flat = resolve_pack("lite", models_dir=SHARED / "lite", cache_dir=tmp_path)
    assert flat.root == SHARED / "lite"
    assert list(tmp_path.iterdir()) == []


def test_resolve_from_cache_records_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    _copy_lite(cache / "lite")
    calls: list[Path] = []
    real = rollcall.models.resolve.sha256_file
    monkeypatch.setattr(
        rollcall.models.resolve, "sha256_file", lambda p: calls.append(p) or real(p)
    )

    r = resolve_pack("lite", models_dir=tmp_path / "empty", cache_dir=cache)
    assert r.source == "cache" and r.root == cache / "lite"
    assert len(calls) == 2
    record = json.loads((cache / "lite" / RECORD_NAME).read_text())
    assert set(record["files"]) == set(LITE_FILES)

    resolve_pack("lite", cache_dir=cache)
    assert len(calls) == 2  # unchanged files are not hashed again

    # same size, different bytes, new mtime: detected
    path = cache / "lite" / "mobilefacenet.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        resolve_pack("lite", cache_dir=cache)
    assert str(path) in str(err.value) and f"Delete {cache / 'lite'}" in str(err.value)


def test_corrupt_file_in_models_dir_names_expected_actual_and_path(tmp_path: Path) -> None:
    md = tmp_path / "models"
    lite = _copy_lite(md / "lite")
    bad = lite / "mobilefacenet.onnx"
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        resolve_pack("lite", models_dir=md, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert str(bad) in msg
    assert f"expected {get_pack('lite').recognizer.sha256}" in msg
    assert f"actual {_sha(bytes(data))}" in msg
    assert "sha256sum -c SHA256SUMS" in msg
    # verify=False trusts what is there
    trusted = resolve_pack("lite", models_dir=md, cache_dir=tmp_path / "c", verify=False)
    assert trusted.source == "dir"


def test_truncated_file_in_models_dir(tmp_path: Path) -> None:
    md = tmp_path / "models"
    det = _copy_lite(md / "lite") / "det_500m.onnx"
    with open(det, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ModelError) as err:
        resolve_pack("lite", models_dir=md, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert str(det) in msg and "truncated" in msg and "expected 2524817 bytes, found 1000" in msg


def test_not_found_message_says_where_and_how(tmp_path: Path) -> None:
    md, cache = tmp_path / "a", tmp_path / "b"
    with pytest.raises(ModelError) as err:
        resolve_pack("lite", models_dir=md, cache_dir=cache)
    msg = str(err.value)
    assert msg.startswith(
        f"model files det_500m.onnx, mobilefacenet.onnx of pack 'lite' not found: "
        f"looked in {md / 'lite'}, {md}, {cache / 'lite'}; set {ENV_MODELS_DIR}"
    )
    assert "[models] dir in config.toml" in msg and "not published as a download" in msg
    # lite has no archive: allowing downloads does not help, and says so
    with pytest.raises(ModelError, match="not published as a download"):
        resolve_pack(
            "lite", cache_dir=cache, allow_download=True, download_base_url="http://127.0.0.1:9/x"
        )
    # a downloadable pack suggests downloading (without doing it)
    with pytest.raises(ModelError, match="or allow downloading"):
        resolve_pack("buffalo_sc", cache_dir=cache, allow_download=False)
    assert not cache.exists()


def test_incomplete_pack_folder_in_models_dir(tmp_path: Path) -> None:
    md = tmp_path / "models"
    _copy_lite(md / "lite", names=("det_500m.onnx",))
    with pytest.raises(ModelError, match=r"incomplete: missing mobilefacenet\.onnx"):
        resolve_pack("lite", models_dir=md, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- downloads


def test_download_follows_redirect_then_uses_cache(
    tmp_path: Path,
    server: _Server,
    zips: dict[str, bytes],
    lite_bytes: dict[str, bytes],
    closed_port_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "cache"
    pack = _lite_pack(zips["flat"])
    before = server.hits.copy()
    r = resolve_pack(
        pack,
        models_dir=tmp_path / "none",
        cache_dir=cache,
        allow_download=True,
        download_base_url=server.url("redirect"),
        timeout=5,
    )
    assert r.source == "download" and r.root == cache / "lite"
    assert server.hits["/redirect/lite.zip"] - before["/redirect/lite.zip"] == 1
    assert server.hits["/ok/lite.zip"] - before["/ok/lite.zip"] == 1
    for name, data in lite_bytes.items():
        assert _sha((cache / "lite" / name).read_bytes()) == _sha(data)
    # only the installed pack is left in the cache: no .part file, no staging folder
    assert sorted(p.name for p in cache.iterdir()) == ["lite"]
    record = json.loads((cache / "lite" / RECORD_NAME).read_text())
    assert record["source"]["archive_sha256"] == _sha(zips["flat"])
    assert record["source"]["final_url"].endswith("/ok/lite.zip")

    err = capsys.readouterr().err
    assert "lite.zip" in err and "downloaded lite.zip" in err and "installed model pack" in err

    # second resolve: from the cache, no network (the URL would be refused anyway)
    hits = sum(server.hits.values())
    again = resolve_pack(
        pack, cache_dir=cache, allow_download=True, download_base_url=closed_port_url, timeout=5
    )
    assert again.source == "cache" and again.root == cache / "lite"
    assert sum(server.hits.values()) == hits


def test_download_zip_with_pack_folder_inside(
    tmp_path: Path, server: _Server, zips: dict[str, bytes]
) -> None:
    cache = tmp_path / "cache"
    r = resolve_pack(
        _lite_pack(zips["nested"]),
        cache_dir=cache,
        allow_download=True,
        download_base_url=server.url("nested"),
        progress=False,
        timeout=5,
    )
    assert r.source == "download" and r.detector_path == cache / "lite" / "det_500m.onnx"
    assert r.detector_path.is_file() and r.recognizer_path.is_file()


def test_unpinned_hashes_are_recorded_on_first_download(
    tmp_path: Path, server: _Server, zips: dict[str, bytes]
) -> None:
    cache = tmp_path / "cache"
    lite = get_pack("lite")
    unpinned = _lite_pack(
        None,
        archive_sha256=None,
        files=tuple(ModelFile(f.name, f.role, None, None) for f in lite.files),
    )
    resolve_pack(
        unpinned,
        cache_dir=cache,
        allow_download=True,
        download_base_url=server.url("ok"),
        progress=False,
        timeout=5,
    )
    record = json.loads((cache / "lite" / RECORD_NAME).read_text())
    assert record["source"]["archive_sha256_pinned"] is False
    assert record["files"]["det_500m.onnx"]["sha256"] == lite.detector.sha256
    (cache / "lite" / "det_500m.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="recorded when it was downloaded"):
        resolve_pack(unpinned, cache_dir=cache)


def test_wrong_archive_sha256_refused_and_nothing_left(
    tmp_path: Path, server: _Server, zips: dict[str, bytes]
) -> None:
    cache = tmp_path / "cache"
    pack = _lite_pack(zips["flat"], archive_sha256="0" * 64)
    with pytest.raises(ModelError) as err:
        resolve_pack(
            pack,
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("ok"),
            progress=False,
            timeout=5,
        )
    msg = str(err.value)
    assert f"expected {'0' * 64}, actual {_sha(zips['flat'])}" in msg
    assert "nothing was installed" in msg
    assert list(cache.iterdir()) == []


def test_corrupt_zip_refused_and_removed(
    tmp_path: Path, server: _Server, zips: dict[str, bytes]
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="not a valid zip archive"):
        resolve_pack(
            _lite_pack(None),  # archive hash unknown: the zip itself must be checked
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("corrupt"),
            progress=False,
            timeout=5,
        )
    assert list(cache.iterdir()) == []


def test_damaged_zip_member_refused_and_removed(tmp_path: Path, server: _Server) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=r"is corrupt: member .* nothing was installed"):
        resolve_pack(
            _lite_pack(None),
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("damaged"),
            progress=False,
            timeout=5,
        )
    assert list(cache.iterdir()) == []  # no archive, no half-unpacked staging folder


def test_truncated_download_refused_and_removed(tmp_path: Path, server: _Server) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=r"is truncated: received \d+ bytes, the server announced"):
        resolve_pack(
            _lite_pack(None),
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("truncated"),
            progress=False,
            timeout=5,
        )
    assert list(cache.iterdir()) == []


def test_http_404(tmp_path: Path, server: _Server) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match="HTTP 404"):
        resolve_pack(
            _lite_pack(None),
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("missing"),
            progress=False,
            timeout=5,
        )
    assert list(cache.iterdir()) == []


def test_offline_message(tmp_path: Path, closed_port_url: str) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        resolve_pack(
            _lite_pack(None),
            cache_dir=cache,
            allow_download=True,
            download_base_url=closed_port_url,
            progress=False,
            timeout=5,
        )
    msg = str(err.value)
    assert msg.startswith(f"could not download lite.zip from {closed_port_url}/lite.zip: ")
    assert "This machine appears offline" in msg
    assert f"unzip it into {cache / 'lite'}/" in msg
    assert f"point {ENV_MODELS_DIR} at a folder holding lite/" in msg
    assert list(cache.iterdir()) == []


def test_zip_with_path_traversal_refused(
    tmp_path: Path, server: _Server, zips: dict[str, bytes]
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=r"refusing to unpack .*'\.\./evil\.onnx'"):
        resolve_pack(
            _lite_pack(zips["evil"]),
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("evil"),
            progress=False,
            timeout=5,
        )
    assert list(cache.iterdir()) == []
    assert not (tmp_path / "evil.onnx").exists()


# --------------------------------------------------------------------------- other packs


def test_pack_missing_from_models_dir_names_the_packs_there(
    tmp_path: Path, server: _Server
) -> None:
    assert rollcall.models.packs_in_models_dir(SHARED) == ("lite",)
    assert rollcall.models.packs_in_models_dir(SHARED / "lite") == ("lite",)  # flat folder
    assert rollcall.models.packs_in_models_dir(tmp_path) == ()
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        resolve_pack(
            "buffalo_sc",
            models_dir=SHARED,
            cache_dir=cache,
            allow_download=True,
            download_base_url=server.url("ok"),
            progress=False,
        )
    msg = str(err.value)
    assert f"The models dir {SHARED} holds pack(s) lite" in msg
    assert "ROLLCALL_MODELS_PACK=lite" in msg and '[models] pack = "lite"' in msg
    assert server.hits["/ok/buffalo_sc.zip"] == 0 and not cache.exists()


@pytest.mark.parametrize("command", [["models", "check"], ["demo"]])
def test_cli_names_the_packs_in_the_models_dir_instead_of_downloading(
    tmp_path: Path, server: _Server, home: Path, monkeypatch, capsys, command
) -> None:
    from rollcall.cli.main import main

    monkeypatch.setenv("ROLLCALL_MODELS_DIR", str(SHARED))
    monkeypatch.setenv("ROLLCALL_MODELS_PACK", "buffalo_sc")
    monkeypatch.setenv("ROLLCALL_MODELS_ALLOW_DOWNLOAD", "true")
    monkeypatch.setenv("ROLLCALL_MODELS_DOWNLOAD_BASE_URL", server.url("cli"))
    monkeypatch.setenv("ROLLCALL_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    extra = ["--out", str(tmp_path / "demo")] if command == ["demo"] else []
    assert main([*command, *extra]) == 1
    text = " ".join(capsys.readouterr().err.split())
    assert "holds pack(s) lite" in text and "ROLLCALL_MODELS_PACK=lite" in text
    assert server.hits["/cli/buffalo_sc.zip"] == 0


def test_models_check_never_downloads(
    tmp_path: Path, server: _Server, home: Path, monkeypatch, capsys
) -> None:
    from rollcall.cli.main import main

    monkeypatch.setenv("ROLLCALL_MODELS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("ROLLCALL_MODELS_ALLOW_DOWNLOAD", "true")
    monkeypatch.setenv("ROLLCALL_MODELS_DOWNLOAD_BASE_URL", server.url("ok"))
    monkeypatch.setenv("ROLLCALL_MODELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ROLLCALL_MODELS_PACK", "buffalo_sc")
    assert main(["models", "check"]) == 1
    text = " ".join(capsys.readouterr().err.split())
    assert "not found" in text and "`models check` never downloads" in text
    assert server.hits["/ok/buffalo_sc.zip"] == 0 and not (tmp_path / "cache").exists()
