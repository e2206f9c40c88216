"""Plugin administration: CLI, settings per course, audit log, broken and failing plugins,
the example plugin installed from tests/example_plugin, and the admin HTTP API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import importlib.metadata
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from rollcall import PluginSettings
from rollcall.cli import main as cli
from rollcall.hookspecs import hookimpl
from rollcall.pipeline.plugin_manager import (
    ENTRY_POINT_GROUP,
    RollcallPluginManager,
    describe_plugins,
    discover_entry_points,
    plugin_failures,
    register_isolated,
)
from rollcall.store import storage
from rollcall.store.plugin_admin import (
    ConfirmationRequired,
    PluginAdminError,
    enabled_plugins,
    save_plugin_failures,
    set_plugin_enabled,
    stored_plugin_failures,
)
from rollcall.store.schema import migrate_plugin_admin
from rollcall.types import MeetingContext, Roster, SampledFrame

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "example_plugin"


def run_cli(argv: list[str]) -> int:
    """``rollcall`` with the plugins group (registered here until cli.py does it)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if "plugins" not in sub.choices:
        from rollcall.cli.plugins import register

        register(sub)
    original = cli.build_parser
    cli.build_parser = lambda: parser
    try:
        return cli.main(argv)
    finally:
        cli.build_parser = original


def test_cli_list_enable_disable_with_audit(home, capsys):
    assert run_cli(["course", "add", "CS101"]) == 0
    assert run_cli(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("detector", "recognizer", "attendance", "emotion", "engagement"):
        assert name in out
    assert "built-in" in out and "always" in out and "off" in out

    assert run_cli(["plugins", "enable", "emotion"]) == 1  # needs --yes
    err = capsys.readouterr().err
    assert "AI Act" in err and "--yes" in err
    assert run_cli(["plugins", "enable", "engagement", "--course", "CS101", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "attention" in out and "GDPR" in out and "next job" in out
    assert run_cli(["plugins", "disable", "detector"]) == 1
    assert run_cli(["plugins", "enable", "nosuch", "--yes"]) == 1
    assert run_cli(["plugins", "enable", "engagement", "--course", "NOPE", "--yes"]) == 1
    capsys.readouterr()
    assert run_cli(["plugins", "list", "--course", "CS101"]) == 0
    assert "CS101:on" in capsys.readouterr().out
    assert run_cli(["plugins", "disable", "engagement", "--course", "CS101"]) == 0
    assert run_cli(["plugins", "audit"]) == 0
    out = capsys.readouterr().out
    assert "disable" in out and "enable" in out

    db = storage.open_db(home)
    audit = list(db["plugin_audit"].rows_where(order_by="id"))
    assert [(a["action"], a["plugin"], a["course_id"]) for a in audit] == [
        ("enable", "engagement", "CS101"),
        ("disable", "engagement", "CS101"),
    ]
    assert all(a["who"] and a["at"] for a in audit)


def test_course_setting_overrides_global(tmp_path, config):
    db = storage.open_db(tmp_path)
    migrate_plugin_admin(db)
    for course in ("A", "B"):
        storage.add_course(db, course, course)
    infos = describe_plugins(config, entry_points=False)
    assert enabled_plugins(db, "A") == set()  # shipped disabled
    with pytest.raises(ConfirmationRequired):
        set_plugin_enabled(db, infos, "emotion", True, who="t")
    set_plugin_enabled(db, infos, "emotion", True, who="t", confirmed=True)
    set_plugin_enabled(db, infos, "emotion", False, course_id="B", who="t")
    set_plugin_enabled(db, infos, "engagement", True, course_id="B", who="t", confirmed=True)
    assert enabled_plugins(db, "A") == {"emotion"}
    assert enabled_plugins(db, "B") == {"engagement"}
    assert enabled_plugins(db, None) == {"emotion"}
    with pytest.raises(PluginAdminError, match="core plugin"):
        set_plugin_enabled(db, infos, "attendance", False, who="t")


def test_manager_per_job_follows_settings(tmp_path, config, face_models):
    from rollcall.pipeline.plugin_manager import build_catalog

    db = storage.open_db(tmp_path)
    storage.add_course(db, "A", "A")
    catalog = build_catalog(config, face_models, entry_points=False)
    infos = list(catalog.infos.values())
    assert catalog.manager_for(enabled_plugins(db, "A")).get_plugin("engagement") is None
    set_plugin_enabled(db, infos, "engagement", True, course_id="A", who="t", confirmed=True)
    pm = catalog.manager_for(enabled_plugins(db, "A"))  # the next job sees it, no restart
    assert pm.get_plugin("engagement") is not None and pm.get_plugin("detector") is not None


# ---------------------------------------------------------------- broken and failing plugins


class UnknownHookPlugin:
    @hookimpl
    def rollcall_analyse_frame(self, meeting, frame, faces):  # misspelt hook
        pass


class BadSignaturePlugin:
    @hookimpl
    def rollcall_analyze_frame(self, meeting, frame, faces, extra):
        pass


class GoodPlugin:
    @hookimpl
    def rollcall_finalize_meeting(self, meeting, tracks, identities, roster):
        return {"good": 1}


class FailingPlugin:
    calls = 0

    @hookimpl
    def rollcall_analyze_frame(self, meeting, frame, faces):
        type(self).calls += 1
        raise ValueError("boom")

    @hookimpl
    def rollcall_finalize_meeting(self, meeting, tracks, identities, roster):
        return {"failing": 1}


def test_broken_entry_points_are_reported_and_skipped(monkeypatch):
    eps = [
        importlib.metadata.EntryPoint(
            "unknown_hook", f"{__name__}:UnknownHookPlugin", ENTRY_POINT_GROUP
        ),
        importlib.metadata.EntryPoint(
            "bad_signature", f"{__name__}:BadSignaturePlugin", ENTRY_POINT_GROUP
        ),
        importlib.metadata.EntryPoint(
            "import_error", "no_such_module_xyz:Plugin", ENTRY_POINT_GROUP
        ),
        importlib.metadata.EntryPoint("good", f"{__name__}:GoodPlugin", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("detector", f"{__name__}:GoodPlugin", ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps)
    found = {d.info.name: d for d in discover_entry_points({"detector"})}
    assert "unknown hook(s) rollcall_analyse_frame" in found["unknown_hook"].info.problem
    assert "bad hook implementation" in found["bad_signature"].info.problem
    assert "extra" in found["bad_signature"].info.problem
    assert "ModuleNotFoundError" in found["import_error"].info.problem
    assert "already taken" in found["detector"].info.problem
    assert found["good"].plugin is not None and not found["good"].info.problem
    assert all(found[n].plugin is None for n in ("unknown_hook", "bad_signature", "import_error"))


class ThresholdSettings(PluginSettings):
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    api_token: str = ""


class SettingsPlugin:
    """A third-party plugin with settings of its own."""

    settings_model = ThresholdSettings

    def __init__(self):
        self.built = True

    @hookimpl
    def rollcall_finalize_meeting(self, meeting, tracks, identities, roster):
        return {"threshold": self.settings.threshold}


class NotAModelPlugin(GoodPlugin):
    settings_model = dict


def test_third_party_plugin_gets_its_settings_or_is_unusable(monkeypatch, tmp_path):
    from rollcall.config import load_config

    eps = [
        importlib.metadata.EntryPoint(name, f"{__name__}:{cls}", ENTRY_POINT_GROUP)
        for name, cls in (
            ("tuned", "SettingsPlugin"),
            ("bad_value", "SettingsPlugin"),
            ("env_tuned", "SettingsPlugin"),
            ("no_model", "GoodPlugin"),
            ("not_a_model", "NotAModelPlugin"),
            ("defaults", "SettingsPlugin"),
        )
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: eps)
    path = tmp_path / "c.toml"
    path.write_text(
        "[plugins.tuned]\nthreshold = 0.7\n"
        '[plugins.bad_value]\nthreshold = 1.5\napi_token = "s3cret"\n'
        "[plugins.no_model]\nthreshold = 0.2\n"
    )
    env = {"ROLLCALL_PLUGINS_ENV_TUNED_THRESHOLD": "0.25"}
    found = {d.info.name: d for d in discover_entry_points((), load_config(path, env))}
    assert found["tuned"].plugin.settings == ThresholdSettings(threshold=0.7)
    assert found["tuned"].plugin.built  # instantiated after its settings were validated
    assert found["env_tuned"].plugin.settings.threshold == 0.25
    assert found["defaults"].plugin.settings == ThresholdSettings()
    bad = found["bad_value"]
    assert bad.plugin is None and not bad.info.usable
    assert bad.info.problem == (
        "invalid settings: plugins.bad_value.threshold: Input should be less than 1 "
        f"(got 1.5) [from {path}]"
    )
    assert "s3cret" not in bad.info.problem
    assert found["no_model"].plugin is None
    assert "plugins.no_model: the plugin declares no settings" in found["no_model"].info.problem
    assert found["not_a_model"].plugin is None
    assert "settings_model must be a subclass" in found["not_a_model"].info.problem
    # the catalog (what jobs and `plugins list` use) leaves the broken one out
    infos = {i.name: i for i in describe_plugins(load_config(path, env))}
    assert "plugins.bad_value.threshold" in infos["bad_value"].problem
    assert infos["tuned"].usable


def test_failing_plugin_is_isolated_and_recorded(tmp_path):
    pm = RollcallPluginManager()
    register_isolated(pm, GoodPlugin(), "good")
    register_isolated(pm, FailingPlugin(), "failing")
    meeting = MeetingContext(3, "A", "t", 60.0, 1.0)
    roster = Roster((), (), (), np.zeros((0, 4), np.float32), ())
    for i in range(3):
        pm.hook.rollcall_analyze_frame(
            meeting=meeting,
            frame=SampledFrame(i, float(i), np.zeros((4, 4, 3), np.uint8)),
            faces=[],
        )
    results = {}
    for r in pm.hook.rollcall_finalize_meeting(
        meeting=meeting, tracks=[], identities={}, roster=roster
    ):
        results.update(r or {})
    assert results == {"good": 1}  # the failed plugin is skipped for the rest of the job
    assert FailingPlugin.calls == 1
    (failure,) = plugin_failures(pm)
    assert (failure.plugin, failure.hook) == ("failing", "rollcall_analyze_frame")
    assert failure.error == "ValueError: boom" and "Traceback" in failure.traceback
    db = storage.open_db(tmp_path)
    assert save_plugin_failures(db, 3, plugin_failures(pm), job_id=9) == 1
    (row,) = stored_plugin_failures(db, 3)
    assert row["plugin"] == "failing" and row["job_id"] == 9


# ---------------------------------------------------------------- the example plugin


def _build_wheel(src: Path, out: Path) -> Path:
    """A wheel of the example plugin built by hand (for setuptools without bdist_wheel)."""
    meta = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    name, version = meta["name"].replace("-", "_"), meta["version"]
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {
        str(p.relative_to(src)): p.read_bytes()
        for p in (src / "rollcall_example_plugin").glob("*.py")
    }
    eps = meta["entry-points"][ENTRY_POINT_GROUP]
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {version}\n".encode()
    )
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = (
        f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
    ).encode()
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


@pytest.fixture
def example_plugin(tmp_path):
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    done = subprocess.run([*pip, "--no-build-isolation", str(EXAMPLE)], capture_output=True)
    if done.returncode != 0:  # this setuptools cannot build wheels: install a hand-built one
        subprocess.run([*pip, str(_build_wheel(EXAMPLE, tmp_path))], check=True)
    importlib.invalidate_caches()
    yield
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "-y", "--quiet", "rollcall-example-plugin"],
        check=True,
    )
    sys.modules.pop("rollcall_example_plugin", None)
    importlib.invalidate_caches()


def test_example_plugin_installed_listed_enabled_and_run(
    example_plugin, home, capsys, face_models, monkeypatch
):
    from rollcall.config import load_config
    from rollcall.pipeline.plugin_manager import build_catalog

    monkeypatch.setenv("COLUMNS", "200")  # a table row per plugin
    config_file = home.parent / "rollcall.toml"
    config_file.write_text("[plugins.face_counter]\ncrowd_min = 0\n")  # out of range
    monkeypatch.setenv("ROLLCALL_CONFIG", str(config_file))
    assert run_cli(["plugins", "list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "face_counter" in out and "plugins.face_counter.crowd_min" in out
    broken = build_catalog(load_config(None), face_models).infos["face_counter"]
    assert "crowd_min" in broken.problem and "(got 0)" in broken.problem
    assert str(config_file) in broken.problem
    config_file.write_text("[plugins.face_counter]\ncrowd_min = 3\n")

    assert run_cli(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "face_counter" in out and "rollcall-example-plugin" in out
    assert "crowd_min" not in out
    assert run_cli(["plugins", "enable", "face_counter"]) == 0  # not sensitive: no --yes
    config = load_config(None)
    db = storage.open_db(config.home)
    assert "face_counter" in enabled_plugins(db, "ANY")
    catalog = build_catalog(config, face_models)
    assert catalog.infos["face_counter"].source == "rollcall-example-plugin 0.1.0"
    pm = catalog.manager_for(enabled_plugins(db, "ANY"))
    meeting = MeetingContext(5, "ANY", "t", 60.0, 1.0)
    for n in (2, 3):
        pm.hook.rollcall_analyze_frame(
            meeting=meeting,
            frame=SampledFrame(0, 0.0, np.zeros((4, 4, 3), np.uint8)),
            faces=[object()] * n,
        )
    roster = Roster((), (), (), np.zeros((0, 4), np.float32), ())
    results = {}
    for r in pm.hook.rollcall_finalize_meeting(
        meeting=meeting, tracks=[], identities={}, roster=roster
    ):
        results.update(r or {})
    assert results["face_counter"] == {
        "frames": 2,
        "faces": 5,
        "max_faces": 3,
        "crowded_frames": 1,  # [plugins.face_counter] crowd_min = 3
    }
    assert not plugin_failures(pm)
    monkeypatch.setenv("ROLLCALL_PLUGINS_FACE_COUNTER_CROWD_MIN", "2")
    plugin = build_catalog(load_config(None), face_models).optional["face_counter"]
    assert plugin.settings.crowd_min == 2  # the environment wins over the file


# ---------------------------------------------------------------- admin HTTP API


def _load_openapi() -> dict:
    text = (ROOT / "docs" / "openapi.yaml").read_text()
    return json.loads("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))


def _validate(value, schema: dict, spec: dict, path: str = "$") -> None:
    """A small OpenAPI 3.0 schema check: $ref, type, nullable, required, properties, items, enum."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _validate(value, spec["components"]["schemas"][name], spec, path)
    if value is None:
        assert schema.get("nullable"), f"{path}: null not allowed"
        return None
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "integer": int,
        "number": (int, float),
    }
    kind = schema.get("type")
    if kind:
        assert isinstance(value, kinds[kind]), f"{path}: expected {kind}, got {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if kind == "object":
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                _validate(item, props[key], spec, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _validate(item, schema["additionalProperties"], spec, f"{path}.{key}")
            else:
                raise AssertionError(f"{path}: undocumented key {key}")
    if kind == "array":
        for i, item in enumerate(value):
            _validate(item, schema["items"], spec, f"{path}[{i}]")
    return None


def _check(spec: dict, method: str, route: str, status: int, body) -> None:
    responses = spec["paths"][route][method]["responses"]
    assert str(status) in responses, f"{method} {route}: undocumented status {status}"
    _validate(body, responses[str(status)]["content"]["application/json"]["schema"], spec)


def test_admin_api(tmp_path, base_env, caplog):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.config import load_config
    from rollcall.web.admin_api import admin_routes

    token = "s3cret-admin-token"
    config = load_config(
        None, {**base_env, "ROLLCALL_HOME": str(tmp_path), "ROLLCALL_SERVER_ADMIN_TOKEN": token}
    )
    db = storage.open_db(tmp_path)
    storage.add_course(db, "CS101", "CS101")
    spec = _load_openapi()
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        app = web.Application()
        app.add_routes(admin_routes(config))
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/api/plugins")
            assert r.status == 401
            _check(spec, "get", "/api/plugins", 401, await r.json())
            r = await client.get("/api/plugins", headers={"Authorization": "Bearer wrong"})
            assert r.status == 401
            r = await client.get("/api/plugins", headers=auth)
            assert r.status == 200
            body = await r.json()
            _check(spec, "get", "/api/plugins", 200, body)
            assert {p["name"] for p in body["plugins"]} >= {"emotion", "engagement", "detector"}
            put = "/api/plugins/{name}"
            r = await client.put("/api/plugins/emotion", json={"enabled": True}, headers=auth)
            assert r.status == 409
            body = await r.json()
            _check(spec, "put", put, 409, body)
            assert any("AI Act" in law for law in body["notice"]["laws"])
            r = await client.put(
                "/api/plugins/emotion",
                json={"enabled": True, "course": "CS101", "yes": True},
                headers=auth,
            )
            assert r.status == 200
            body = await r.json()
            _check(spec, "put", put, 200, body)
            assert body["audit"]["who"] == "api" and body["plugin"]["courses"] == {"CS101": True}
            assert body["plugin"]["enabled_for_course"] is True
            for payload, status in (({"enabled": "yes"}, 400), ({"enabled": True}, 409)):
                r = await client.put("/api/plugins/detector", json=payload, headers=auth)
                assert r.status == status
                _check(spec, "put", put, status, await r.json())
            r = await client.put("/api/plugins/nosuch", json={"enabled": True}, headers=auth)
            assert r.status == 404
            _check(spec, "put", put, 404, await r.json())
            r = await client.get("/api/plugins?course=CS101", headers=auth)
            body = await r.json()
            _check(spec, "get", "/api/plugins", 200, body)
            emotion = next(p for p in body["plugins"] if p["name"] == "emotion")
            assert emotion["enabled_for_course"] is True and emotion["enabled_globally"] is False

    with caplog.at_level("DEBUG"):
        asyncio.run(scenario())
    assert enabled_plugins(db, "CS101") == {"emotion"}
    assert token not in caplog.text


def test_admin_api_off_without_token(tmp_path, base_env):
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.config import load_config
    from rollcall.web.admin_api import admin_routes

    config = load_config(None, {**base_env, "ROLLCALL_HOME": str(tmp_path)})
    storage.open_db(tmp_path).conn.close()  # the database the routes will open

    async def scenario() -> int:
        app = web.Application()
        app.add_routes(admin_routes(config))
        async with TestClient(TestServer(app)) as client:
            r = await client.get("/api/plugins", headers={"Authorization": "Bearer x"})
            _check(_load_openapi(), "get", "/api/plugins", r.status, await r.json())
            return r.status

    assert asyncio.run(scenario()) == 503


def test_meeting_page_linked_from_chat_needs_the_token(tmp_path, base_env, caplog):
    import base64

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.config import load_config
    from rollcall.web.admin_api import admin_routes
    from tests.reportdata import add_course, add_meeting

    token = "page-token-123"
    config = load_config(
        None, {**base_env, "ROLLCALL_HOME": str(tmp_path), "ROLLCALL_SERVER_ADMIN_TOKEN": token}
    )
    db = storage.open_db(tmp_path)
    add_course(db, "CS101", ["S1", "S2"])
    meeting_id = add_meeting(
        db, "CS101", "m1", {"S1": [1, 1, 1], "S2": [0, 0, 0]}, title="Week <1>"
    )
    spec = _load_openapi()
    route = "/admin/meetings/{meeting_id}"
    basic = base64.b64encode(f"anyone:{token}".encode()).decode()

    async def scenario() -> None:
        app = web.Application()
        app.add_routes(admin_routes(config))
        async with TestClient(TestServer(app)) as client:
            r = await client.get(f"/admin/meetings/{meeting_id}")
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
            _check(spec, "get", route, 401, await r.json())
            wrong = base64.b64encode(b"anyone:wrong").decode()
            r = await client.get(
                f"/admin/meetings/{meeting_id}", headers={"Authorization": f"Basic {wrong}"}
            )
            assert r.status == 401
            r = await client.get(
                f"/admin/meetings/{meeting_id}", headers={"Authorization": f"Basic {basic}"}
            )
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
            assert "Week &lt;1&gt;" in page and "Name of S2" in page
            r = await client.get(
                "/admin/meetings/999", headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status == 404
            _check(spec, "get", route, 404, await r.json())

    with caplog.at_level("DEBUG"):
        asyncio.run(scenario())
    assert token not in caplog.text


def test_admin_api_hostile_input_is_400_or_404_not_500(tmp_path, base_env):
    """Deeply nested JSON, a meeting id too large for SQLite and a body too large are the
    client's fault: 400/404/413, never a 500 with a traceback."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from rollcall.config import load_config
    from rollcall.web.admin_api import admin_routes

    token = "hostile-admin-token"
    env = {
        **base_env,
        "ROLLCALL_HOME": str(tmp_path),
        "ROLLCALL_SERVER_ADMIN_TOKEN": token,
        "ROLLCALL_SERVER_MAX_BODY_BYTES": "4096",
    }
    config = load_config(None, env)
    storage.open_db(tmp_path).conn.close()  # the database the routes will open
    spec = _load_openapi()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def scenario() -> None:
        app = web.Application()
        app.add_routes(admin_routes(config))
        async with TestClient(TestServer(app)) as client:
            for depth in (100_000, 1_000, 40):
                body = '{"enabled": ' + "[" * depth + "]" * depth + "}"
                if len(body) > 4096:
                    body = "[" * 4000
                r = await client.put("/api/plugins/emotion", data=body, headers=auth)
                assert r.status == 400, depth
                _check(spec, "put", "/api/plugins/{name}", 400, await r.json())
            r = await client.put("/api/plugins/emotion", data="[" * 5000, headers=auth)
            assert r.status == 413
            _check(spec, "put", "/api/plugins/{name}", 413, await r.json())
            for meeting in ("9" * 20, str(2**63), "-1", "0", "1e3"):
                r = await client.get(f"/admin/meetings/{meeting}", headers=auth)
                assert r.status == 404, meeting
                _check(spec, "get", "/admin/meetings/{meeting_id}", 404, await r.json())

    asyncio.run(scenario())


def test_blank_passwords_and_blank_tokens_never_match():
    """Whatever the token, HTTP Basic with a blank password and an empty Bearer fail; a
    blank token (which the configuration refuses) matches nothing either."""
    import base64

    from rollcall.web.admin_api import authorized

    def basic(password: str) -> str:
        return "Basic " + base64.b64encode(f"user:{password}".encode()).decode()

    for token in (" ", "   ", "\t"):
        for header in (basic(token), basic(""), f"Bearer {token}", "Bearer ", basic(" ")):
            assert not authorized(header, token), (header, token)
    assert authorized(basic("s3cret"), "s3cret") and authorized("Bearer s3cret", "s3cret")
    assert not authorized(basic("s3cre"), "s3cret") and not authorized("Bearer s3cret2", "s3cret")
