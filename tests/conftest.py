"""Shared fixtures: real models from ../shared/models, real photos from ../shared/faces.

Expensive things (model sessions, the rendered end-to-end meeting and its
analysis) are built once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _shared_dir(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default)
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must have ../shared beside the checkout ({env})")
        pytest.skip(f"{path} is missing; set {env}")
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _shared_dir("ROLLCALL_MODELS_DIR", SHARED / "models")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return _shared_dir("ROLLCALL_FACES_DIR", SHARED / "faces")


@pytest.fixture(scope="session")
def base_env(models_dir) -> dict[str, str]:
    """Environment for rollcall in tests: the shared lite pack, no downloads."""
    return {
        "ROLLCALL_MODELS_DIR": str(models_dir),
        "ROLLCALL_MODELS_PACK": os.environ.get("ROLLCALL_MODELS_PACK", "lite"),
        "ROLLCALL_MODELS_ALLOW_DOWNLOAD": "false",
    }


@pytest.fixture
def home(tmp_path, monkeypatch, base_env) -> Path:
    """A fresh data directory, with the test environment applied to os.environ."""
    for key in [k for k in os.environ if k.startswith("ROLLCALL_")]:
        if key not in base_env and key != "ROLLCALL_FACES_DIR":
            monkeypatch.delenv(key)
    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    data = tmp_path / "home"
    monkeypatch.setenv("ROLLCALL_HOME", str(data))
    return data


@pytest.fixture(scope="session")
def config(base_env):
    from rollcall.config import load_config

    return load_config(None, base_env)


@pytest.fixture(scope="session")
def face_models(config):
    from rollcall.pipeline.plugin_manager import resolve_face_models

    return resolve_face_models(config, progress=False)


@pytest.fixture(scope="session")
def plugin_manager(config, face_models):
    from rollcall.pipeline.plugin_manager import make_plugin_manager

    return make_plugin_manager(config, face_models)


@pytest.fixture(scope="session")
def detector(face_models):
    """The SCRFD detector plugin as ``rollcall analyze`` configures it (no size cap)."""
    from rollcall.plugins.detector import DetectorPlugin

    return DetectorPlugin(
        face_models.detector_path, threshold=0.5, min_face_px=16, max_side=1920, threads=0
    )
