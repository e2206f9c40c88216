"""Under CI, missing test data fails the run instead of turning tests into skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/test_models.py::test_registry_lists_standard_packs_and_lite"


def _pytest(env_changes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_ci_fails_when_test_data_is_missing_or_empty(tmp_path, models_dir, faces_dir, state):
    nowhere = tmp_path / "models"
    if state == "empty":
        nowhere.mkdir()
    env = {"ROLLCALL_MODELS_DIR": str(nowhere), "ROLLCALL_FACES_DIR": str(faces_dir)}
    outside_ci = _pytest(env)
    assert outside_ci.returncode == 0 and "1 skipped" in outside_ci.stdout
    done = _pytest({**env, "CI": "true"})
    assert done.returncode != 0, done.stdout
    assert f"{nowhere} is {state} (ROLLCALL_MODELS_DIR)" in done.stdout + done.stderr


def test_ci_runs_when_test_data_is_there(models_dir, faces_dir):
    env = {"ROLLCALL_MODELS_DIR": str(models_dir), "ROLLCALL_FACES_DIR": str(faces_dir)}
    done = _pytest({**env, "CI": "true"})
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
