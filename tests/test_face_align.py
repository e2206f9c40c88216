"""The recognizer's own face alignment gives insightface's crops, bit for bit."""

import numpy as np
import pytest

from rollcall.plugins import face_align


def _keypoints(rng: np.random.Generator, mirrored: bool) -> np.ndarray:
    base = face_align.ARCFACE_TEMPLATE * rng.uniform(0.5, 3.0) + rng.uniform(0, 150, 2)
    angle = rng.uniform(-1.0, 1.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    kps = (base @ rot.T + rng.normal(0, 3, (5, 2))).astype(np.float32)
    if mirrored:  # a reflection: the degenerate branch of the estimate
        kps[:, 0] = 200 - kps[:, 0]
    return kps


@pytest.mark.parametrize("size", [112, 128, 224])
def test_same_matrix_and_crop_as_insightface(size):
    theirs = pytest.importorskip("insightface.utils.face_align")
    rng = np.random.default_rng(size)
    image = rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)
    for i in range(200):
        kps = _keypoints(rng, mirrored=i % 3 == 0)
        assert np.array_equal(face_align.estimate_norm(kps, size), theirs.estimate_norm(kps, size))
        assert np.array_equal(
            face_align.norm_crop(image, kps, size), theirs.norm_crop(image, kps, size)
        )


def test_degenerate_keypoints_give_nan_and_bad_sizes_fail():
    assert np.isnan(face_align.estimate_norm(np.ones((5, 2), np.float32))).all()
    with pytest.raises(ValueError):
        face_align.estimate_norm(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError):
        face_align.estimate_norm(np.zeros((5, 2), np.float32), image_size=100)


def test_recognizer_module_does_not_import_insightface_or_scipy():
    import subprocess
    import sys

    code = (
        "import sys, rollcall.plugins.recognizer, rollcall.pipeline.tracking;"
        "print(sorted(m for m in ('insightface', 'scipy', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
