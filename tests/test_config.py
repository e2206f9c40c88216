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
    assert "\\n" not in err  # one problem per line, not an escaped "\n" before it


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


# ---------------------------------------------------------------- plugins' own settings


def test_plugin_tables_from_file_and_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[plugins.emotion]\nmin_face_px = 60\n"
        '[plugins.engagement]\nweight_stable = 0.5\nhead_pose = "keypoints"\n'
    )
    config = load_config(path, {})
    assert config.plugins.emotion.min_face_px == 60
    assert config.plugins.emotion.min_confidence == 0.4  # the default
    assert config.plugins.engagement.weight_stable == 0.5
    assert config.plugins.engagement.head_pose == "keypoints"
    env = {
        "ROLLCALL_PLUGINS_EMOTION_MIN_FACE_PX": "80",
        "ROLLCALL_PLUGINS_ENGAGEMENT_MAX_YAW_DEG": "45",
    }
    config = load_config(path, env)  # the environment wins over the file
    assert config.plugins.emotion.min_face_px == 80
    assert config.plugins.engagement.max_yaw_deg == 45.0
    assert config.plugins.engagement.weight_stable == 0.5


def test_bad_plugin_value_names_key_value_and_source(tmp_path, home, capsys):
    path = tmp_path / "c.toml"
    path.write_text("[plugins.emotion]\nmin_face_px = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert (
        f"plugins.emotion.min_face_px: Input should be greater than or equal to 16 (got 3) "
        f"[from {path}]"
    ) in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(None, {"ROLLCALL_PLUGINS_ENGAGEMENT_WEIGHT_VISIBLE": "lots"})
    assert "plugins.engagement.weight_visible: Input should be a valid number" in str(info.value)
    assert "[from ROLLCALL_PLUGINS_ENGAGEMENT_WEIGHT_VISIBLE]" in str(info.value)
    path.write_text("[plugins.engagement]\nweight_visibel = 0.3\n")
    with pytest.raises(
        ConfigError, match=r"plugins.engagement.weight_visibel: unknown key \(known"
    ):
        load_config(path, {})
    path.write_text("[plugins]\nemotion = 3\n")
    with pytest.raises(ConfigError, match=r"plugins.emotion: must be a \[plugins.emotion\] table"):
        load_config(path, {})
    path.write_text("[plugins.emotion]\nmin_confidence = 2.0\n")
    assert main(["--config", str(path), "course", "list"]) == 2
    assert "plugins.emotion.min_confidence" in capsys.readouterr().err


def test_old_analyzer_sections_migrate_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.toml"
    path.write_text("[emotion]\nmin_face_px = 60\n[engagement]\nweight_facing = 0.1\n")
    with caplog.at_level("WARNING", logger="rollcall.config"):
        config = load_config(path, {"ROLLCALL_ENGAGEMENT_MAX_PITCH_DEG": "20"})
    assert config.plugins.emotion.min_face_px == 60
    assert config.plugins.engagement.weight_facing == 0.1
    assert config.plugins.engagement.max_pitch_deg == 20.0
    warnings = " | ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "[emotion] min_face_px" in warnings and "[plugins.emotion] min_face_px" in warnings
    assert "[plugins.engagement] weight_facing" in warnings
    assert "ROLLCALL_ENGAGEMENT_MAX_PITCH_DEG" in warnings
    assert "ROLLCALL_PLUGINS_ENGAGEMENT_MAX_PITCH_DEG" in warnings
    # a bad old value is reported under its new key, naming the old one and the file
    path.write_text("[emotion]\nmin_face_px = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert "plugins.emotion.min_face_px" in str(info.value) and "(got 3)" in str(info.value)
    assert f"[from {path}, old key [emotion] min_face_px]" in str(info.value)


@pytest.mark.parametrize(
    ("toml", "env", "needles"),
    [
        (
            "[emotion]\nmin_face_px = 60\n[plugins.emotion]\nmin_face_px = 70\n",
            {},
            ["[emotion] min_face_px", "[plugins.emotion] min_face_px"],
        ),
        (
            "[plugins.emotion]\nmin_face_px = 70\n",
            {"ROLLCALL_EMOTION_MIN_FACE_PX": "60"},
            ["ROLLCALL_EMOTION_MIN_FACE_PX", "[plugins.emotion] min_face_px"],
        ),
        (
            "",
            {
                "ROLLCALL_ENGAGEMENT_HEAD_POSE": "keypoints",
                "ROLLCALL_PLUGINS_ENGAGEMENT_HEAD_POSE": "fsanet",
            },
            ["ROLLCALL_ENGAGEMENT_HEAD_POSE", "ROLLCALL_PLUGINS_ENGAGEMENT_HEAD_POSE"],
        ),
    ],
)
def test_old_and_new_key_together_is_an_error(tmp_path, toml, env, needles):
    path = tmp_path / "both.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match="given twice") as info:
        load_config(path, env)
    for needle in needles:
        assert needle in str(info.value)


def test_third_party_tables_are_kept_for_their_plugin(tmp_path):
    from pydantic import Field

    from rollcall import PluginSettings
    from rollcall.config import validate_plugin_settings

    class Settings(PluginSettings):
        crowd_min: int = Field(10, ge=1)
        label: str = "x"

    path = tmp_path / "c.toml"
    path.write_text("[plugins.face_counter]\ncrowd_min = 3\n")
    config = load_config(path, {"ROLLCALL_PLUGINS_FACE_COUNTER_LABEL": "y"})
    assert validate_plugin_settings(config, "face_counter", Settings) == Settings(
        crowd_min=3, label="y"
    )
    assert validate_plugin_settings(config, "other", Settings) == Settings()
    path.write_text("[plugins.face_counter]\ncrowd_min = 0\n")
    with pytest.raises(ConfigError) as info:
        validate_plugin_settings(load_config(path, {}), "face_counter", Settings)
    assert str(info.value) == (
        "plugins.face_counter.crowd_min: Input should be greater than or equal to 1 (got 0) "
        f"[from {path}]"
    )
    with pytest.raises(ConfigError, match=r"\[from ROLLCALL_PLUGINS_FACE_COUNTER_CROWD_MIN\]"):
        validate_plugin_settings(
            load_config(None, {"ROLLCALL_PLUGINS_FACE_COUNTER_CROWD_MIN": "many"}),
            "face_counter",
            Settings,
        )
    path.write_text("[plugins.face_counter]\ncrowd_mni = 2\n")
    with pytest.raises(ConfigError, match="crowd_mni: unknown key .known keys of .plugins.face"):
        validate_plugin_settings(load_config(path, {}), "face_counter", Settings)
    with pytest.raises(ConfigError, match="declares no settings"):
        validate_plugin_settings(load_config(path, {}), "face_counter", None)


def _numeric_fields():
    """(key, field) of every number in the configuration, built-in plugins' included."""
    from rollcall.config import BUILTIN_PLUGIN_SETTINGS

    models = {
        name: field.annotation for name, field in Config.model_fields.items() if name != "plugins"
    }
    models.update({f"plugins.{n}": m for n, m in BUILTIN_PLUGIN_SETTINGS.items()})
    for section, model in models.items():
        for key, field in model.model_fields.items():
            if field.annotation in (int, float):
                yield f"{section}.{key}", field


def test_every_number_has_an_upper_bound():
    """A value that validates must not overflow later (dates, timers, SQLite integers)."""
    unbounded = [
        key
        for key, field in _numeric_fields()
        if not any(hasattr(m, "le") or hasattr(m, "lt") for m in field.metadata)
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROLLCALL_PRIVACY_RETENTION_DAYS", "9" * 30),
        ("ROLLCALL_PRIVACY_RETENTION_DAYS", "3000000"),
        ("ROLLCALL_JOBS_LEASE_S", "1e12"),
        ("ROLLCALL_JOBS_RETRY_MAX_S", "inf"),
        ("ROLLCALL_NOTIFY_RETRY_BASE_S", "1e300"),
        ("ROLLCALL_SERVER_MAX_BODY_BYTES", "9" * 25),
        ("ROLLCALL_SERVER_SHUTDOWN_GRACE_S", "nan"),
        ("ROLLCALL_ENROLLMENT_MIN_SHARPNESS", "inf"),
    ],
)
def test_huge_environment_values_are_refused_naming_the_key(variable, value):
    with pytest.raises(ConfigError) as exc_info:
        load_config(None, {variable: value})
    key = variable.removeprefix("ROLLCALL_").lower().replace("_", ".", 1)
    assert key in str(exc_info.value)


def test_largest_values_that_validate_do_not_overflow(tmp_path):
    """Each bound is usable: the retention cut-off, retry waits and leases at their maximum."""
    from datetime import timedelta

    from rollcall.config import DAY_S, MAX_DAYS, MAX_WAIT_S
    from rollcall.store import jobs, outbox, retention, storage
    from rollcall.store.db import utc_now

    config = load_config(
        None,
        {
            "ROLLCALL_PRIVACY_RETENTION_DAYS": str(MAX_DAYS),
            "ROLLCALL_JOBS_LEASE_S": str(DAY_S),
            "ROLLCALL_NOTIFY_RETRY_BASE_S": str(DAY_S),
            "ROLLCALL_NOTIFY_RETRY_MAX_S": str(MAX_WAIT_S),
        },
    )
    db = storage.open_db(tmp_path)
    assert retention.purge_older_than(db, config.privacy.retention_days, tmp_path) == 0
    jobs.enqueue(db, course_id="C", meeting_uuid="u", file_id="f", payload={})
    assert jobs.claim(db, "w", lease_s=config.jobs.lease_s) is not None
    wait = outbox.backoff_s(config, 100)
    assert wait == MAX_WAIT_S
    assert utc_now() + timedelta(seconds=wait) > utc_now()


@pytest.mark.parametrize("token", [" ", "   ", "\t\n", " tok", "tok "])
def test_blank_or_padded_admin_token_is_refused(token):
    with pytest.raises(ConfigError) as exc_info:
        load_config(None, {"ROLLCALL_SERVER_ADMIN_TOKEN": token})
    text = str(exc_info.value)
    assert "server.admin_token" in text and "whitespace" in text
    assert repr(token) not in text  # a secret is never echoed


def test_admin_token_empty_or_set_is_accepted():
    assert load_config(None, {}).server.admin_token.get_secret_value() == ""
    config = load_config(None, {"ROLLCALL_SERVER_ADMIN_TOKEN": "s3cret"})
    assert config.server.admin_token.get_secret_value() == "s3cret"
