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


SHARED_DIRS = {"ROLLCALL_MODELS_DIR": SHARED / "models", "ROLLCALL_FACES_DIR": SHARED / "faces"}


def running_in_ci() -> bool:
    """``CI`` set to anything but empty/0/false/no (CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_data_problem(env: str) -> str:
    """Why the test data folder named by ``env`` (default under ../shared) cannot be
    used: missing or empty; "" when it is fine."""
    path = Path(os.environ.get(env) or SHARED_DIRS[env])
    if not path.is_dir():
        return f"{path} is missing ({env})"
    if not any(path.iterdir()):
        return f"{path} is empty ({env})"
    return ""


def pytest_configure(config) -> None:
    """Under CI, missing test data stops the run: the tests that need it would
    otherwise be skipped and the suite would report green without having run."""
    if not running_in_ci():
        return
    problems = [p for p in map(shared_data_problem, SHARED_DIRS) if p]
    if problems:
        raise pytest.UsageError(
            f"CI is set but the test data is not there: {'; '.join(problems)}. CI must have "
            "../shared/models and ../shared/faces beside the checkout (or set the variables)"
        )


def _shared_dir(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default)
    problem = shared_data_problem(env)
    if problem:
        if running_in_ci():
            pytest.fail(f"{problem}; CI must have ../shared beside the checkout")
        pytest.skip(f"{problem}; set {env}")
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
