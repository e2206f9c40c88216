"""``[models] provider`` and ``precision``: the GPU falls back to the CPU with a log line,
and the int8 recognizer is used only when it was made."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from rollcall.config import ConfigError, load_config
from rollcall.models import ModelError
from rollcall.plugins.onnx_session import execution_providers
from rollcall.synthetic.demo import bundled_group_photo


def test_cuda_without_cuda_falls_back_to_the_cpu_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="rollcall.plugins.onnx_session"):
        assert execution_providers("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    [record] = caplog.records
    assert "not available, using the CPU" in record.getMessage()
    assert record.wanted == "CUDAExecutionProvider"


def test_cuda_is_preferred_when_onnxruntime_has_it(caplog):
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with caplog.at_level(logging.WARNING):
        assert execution_providers("cuda", available) == available
        assert execution_providers("cpu", available) == ["CPUExecutionProvider"]
    assert not caplog.records


def test_detector_configured_for_cuda_runs_on_this_machines_cpu(face_models, caplog):
    """No GPU here: the real detector, configured for CUDA, loads on the CPU, logs why,
    and finds the same faces as on the CPU."""
    import onnxruntime as ort

    from rollcall.plugins.detector import DetectorPlugin

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: nothing falls back")
    image = cv2.imread(str(bundled_group_photo()))
    kwargs = dict(threshold=0.5, min_face_px=16, max_side=1920, threads=1)
    with caplog.at_level(logging.WARNING, logger="rollcall.plugins.onnx_session"):
        gpu = DetectorPlugin(face_models.detector_path, provider="cuda", **kwargs)
        faces = gpu.detect(image)
    assert any("using the CPU" in r.getMessage() for r in caplog.records)
    assert gpu._model.get().session.get_providers() == ["CPUExecutionProvider"]
    cpu = DetectorPlugin(face_models.detector_path, **kwargs).detect(image)
    assert len(faces) == len(cpu) == 6
    np.testing.assert_allclose(
        sorted(f.bbox[0] for f in faces), sorted(f.bbox[0] for f in cpu), atol=0.5
    )


def test_unknown_provider_or_precision_is_a_configuration_error(tmp_path):
    for key, value in (("provider", "gpu"), ("precision", "int4")):
        path = tmp_path / f"{key}.toml"
        path.write_text(f'[models]\n{key} = "{value}"\n')
        with pytest.raises(ConfigError):
            load_config(path, {})


def test_int8_without_its_copies_names_the_script(tmp_path, base_env):
    from rollcall.pipeline.plugin_manager import resolve_face_models

    env = {
        **base_env,
        "ROLLCALL_MODELS_PRECISION": "int8",
        "ROLLCALL_MODELS_QUANTIZED_DIR": str(tmp_path / "int8"),
    }
    with pytest.raises(ModelError, match=r"benchmarks/quantize\.py"):
        resolve_face_models(load_config(None, env), progress=False)


def test_int8_recognizer_is_used_when_made(tmp_path, base_env, face_models):
    """The int8 recognizer, made from the pack's file and calibrated on a few faces,
    embeds faces nearly as the fp32 one does; ``precision = "int8"`` resolves to it
    (and a model key of its own, so enrolled photos are embedded again for it)."""
    from insightface.utils import face_align

    from rollcall.models.quantize import quantize_model, quantized_path
    from rollcall.pipeline.plugin_manager import resolve_face_models
    from rollcall.plugins.detector import DetectorPlugin
    from rollcall.plugins.recognizer import RecognizerPlugin

    qdir = tmp_path / "int8"
    image = cv2.imread(str(bundled_group_photo()))
    faces = DetectorPlugin(
        face_models.detector_path, threshold=0.5, min_face_px=16, max_side=1920, threads=1
    ).detect(image)
    kwargs = dict(threshold=0.3, min_track_samples=1, vote_share=0.5, threads=1)
    fp32 = RecognizerPlugin(face_models.recognizer_path, **kwargs)
    model = fp32._model.get()
    crops = [face_align.norm_crop(image, landmark=f.kps, image_size=112) for f in faces]
    blobs = [
        cv2.dnn.blobFromImages(
            [c], 1.0 / model.input_std, (112, 112), (model.input_mean,) * 3, swapRB=True
        )
        for c in crops
    ]
    rec = quantized_path(face_models.recognizer_path, face_models.pack_name, qdir)
    quantize_model(face_models.recognizer_path, rec, blobs)
    env = {
        **base_env,
        "ROLLCALL_MODELS_PRECISION": "int8",
        "ROLLCALL_MODELS_QUANTIZED_DIR": str(qdir),
    }
    int8_models = resolve_face_models(load_config(None, env), progress=False)
    assert int8_models.recognizer_path == rec
    assert int8_models.detector_path == face_models.detector_path  # the detector stays fp32
    assert int8_models.model_key != face_models.model_key
    a = fp32.embed(image, faces)
    b = RecognizerPlugin(rec, **kwargs).embed(image, faces)
    same = np.sum(a * b, axis=1)
    assert same.min() > 0.9, same  # each face stays itself...
    others = a @ b.T - np.eye(len(faces)) * 2
    assert others.max() < same.min()  # ...and closer to itself than to anyone else
