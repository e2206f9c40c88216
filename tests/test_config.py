"""Configuration: validation errors name the key; environment overrides; config.toml documents all."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rollcall.cli.main import main
from rollcall.config import Config, ConfigError, config_toml_keys, load_config

ROOT = Path(__file__).resolve().parents[1]


def _tables(documented: dict) -> dict[str, dict]:
    """config.toml's tables by name, a plugin's as ``plugins.<name>``."""
    plugins = documented.pop("plugins", {})
    return {**documented, **{f"plugins.{name}": table for name, table in plugins.items()}}


def test_config_toml_lists_every_key_with_its_default():
    with open(ROOT / "config.toml", "rb") as fh:
        documented = _tables(tomllib.load(fh))
    assert {s: sorted(v) for s, v in documented.items()} == {
        s: sorted(v) for s, v in config_toml_keys().items()
    }
    assert {"plugins.emotion", "plugins.engagement"} <= set(documented)
    defaults = _tables(Config().model_dump(mode="json"))
    for section, values in documented.items():
        for key, value in values.items():
            expected = defaults[section][key]
            if key in ("client_secret", "webhook_secret_token"):
                expected = ""
            assert value == expected, f"{section}.{key}"
    assert load_config(ROOT / "config.toml", {}) == Config()


def test_every_key_has_a_comment_in_config_toml():
    text = (ROOT / "config.toml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            above = [ln for ln in lines[max(0, i - 6) : i] if ln.startswith("#")]
            assert above, f"config.toml line {i + 1} ({line}) has no comment above it"


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[analysis]\nintervall_s = 1\n", "analysis.intervall_s: unknown key"),
        (
            '[analysis]\ninterval_s = "fast"\n',
            "analysis.interval_s: Input should be a valid number",
        ),
        ("[analysis]\ninterval_s = -2.0\n", "analysis.interval_s: Input should be greater than 0"),
        ("[attendance]\nmin_seconds_per_minute = 61.0\n", "attendance.min_seconds_per_minute"),
        ("[nonsense]\na = 1\n", "nonsense: unknown section"),
        ("[server]\nport = 70000\n", "server.port"),
        ("analysis = 3\n", "analysis: must be a [analysis] table"),
        ("[models\n", "not valid TOML"),
    ],
)
def test_bad_config_file_exits_2_naming_the_key(tmp_path, home, capsys, toml, needle):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["--config", str(path), "course", "list"]) == 2
    err = capsys.readouterr().err
    assert needle in " ".join(err.split())
    assert "Traceback" not in err


def test_environment_overrides_and_bad_environment_values(monkeypatch, home, capsys):
    config = load_config(
        None,
        {
            "ROLLCALL_MODELS_DIR": "/models",
            "ROLLCALL_ZOOM_WEBHOOK_SECRET_TOKEN": "s3cret",
            "ROLLCALL_ZOOM_USERS": "a@x.edu, b@x.edu",
            "ROLLCALL_ANALYSIS_INTERVAL_S": "0.5",
            "ROLLCALL_PRIVACY_STORE_FRAMES": "true",
            "ROLLCALL_HOME": "/data",
        },
    )
    assert config.models.dir == "/models"
    assert config.zoom.webhook_secret_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert config.zoom.users == ["a@x.edu", "b@x.edu"]
    assert config.analysis.interval_s == 0.5
    assert config.privacy.store_frames is True
    assert str(config.home) == "/data"
    with pytest.raises(ConfigError, match="ROLLCALL_ANALYSIS_WORKERS"):
        load_config(None, {"ROLLCALL_ANALYSIS_WORKERS": "many"})
    monkeypatch.setenv("ROLLCALL_ATTENDANCE_LATE_AFTER_PCT", "150")
    assert main(["course", "list"]) == 2
    assert "attendance.late_after_pct" in capsys.readouterr().err


def test_rollcall_config_env_selects_file(tmp_path, monkeypatch, home):
    path = tmp_path / "c.toml"
    path.write_text("[analysis]\ninterval_s = 2.0\n")
    assert load_config(None, {"ROLLCALL_CONFIG": str(path)}).analysis.interval_s == 2.0
    # the environment wins over the file
    env = {"ROLLCALL_CONFIG": str(path), "ROLLCALL_ANALYSIS_INTERVAL_S": "3"}
    assert load_config(None, env).analysis.interval_s == 3.0
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", {})


def test_secrets_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        load_config(None, {"ROLLCALL_ZOOM_CLIENT_SECRET": "", "ROLLCALL_ZOOM_USERS": "[1, 2"})
    assert "zoom.users" in str(info.value)
