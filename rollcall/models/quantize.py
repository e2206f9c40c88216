"""int8 copies of a pack's models; ``[models] precision = "int8"`` uses the recognizer's.

``benchmarks/quantize.py`` makes them with :func:`quantize_model`: onnxruntime's
static quantization (QDQ, per-channel int8 weights, uint8 activations),
calibrated on photos of faces (the recognizer on the aligned 112x112 crops the
analysis feeds it, the detector on the photos placed in gallery-tile-sized
frames), and measures accuracy before and after. They are written to
``[models] quantized_dir`` (``<dir>/<pack>/<model>.int8.onnx``), a cache made
from the shipped ONNX files, never part of the project. Analysis with
``precision = "int8"`` reads the int8 recognizer from there and stops with a
message naming the script when it is missing. The detector stays fp32: its
int8 copy found every face but was no faster on gallery tiles (3.0 against
3.1 ms CPU per 256x160 tile), while the recognizer's is 2.6 times faster
(2.3 against 6.0 ms CPU per face, batches of 8; 2026-12-02).

The recognizer's embeddings change with quantization: the model key names the
int8 file, so enrolled photos are embedded again (once) for it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rollcall.models.errors import ModelError

log = logging.getLogger(__name__)

SUFFIX = ".int8.onnx"
#: Per-channel weight scales need DequantizeLinear's ``axis`` (ONNX opset 13).
PER_CHANNEL_OPSET = 13


def quantized_path(model_path: Path, pack: str, quantized_dir: Path) -> Path:
    """Where the int8 copy of ``model_path`` (a file of pack ``pack``) lives."""
    return Path(quantized_dir).expanduser() / pack / (model_path.stem + SUFFIX)


def int8_recognizer(recognizer: Path, pack: str, quantized_dir: Path) -> Path:
    """The int8 copy of a pack's recognizer; :class:`ModelError` when it was not made yet."""
    path = quantized_path(recognizer, pack, quantized_dir)
    if not path.is_file():
        raise ModelError(
            f'[models] precision = "int8" but {path} does not exist: '
            "run `python benchmarks/quantize.py` to make the int8 recognizer from the pack "
            '(or set precision = "fp32")'
        )
    return path


class _Reader:
    """onnxruntime CalibrationDataReader over prepared input blobs."""

    def __init__(self, input_name: str, blobs: Sequence[np.ndarray]):
        self._items = iter([{input_name: b.astype(np.float32)} for b in blobs])

    def get_next(self):
        return next(self._items, None)


def quantize_model(source: Path, target: Path, blobs: Sequence[np.ndarray]) -> Path:
    """Write the int8 copy of the ONNX model ``source`` to ``target``, its activations'
    ranges calibrated on ``blobs`` (inputs exactly as the analysis feeds the model)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    input_name = model.graph.input[0].name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        upgraded = Path(tmp) / "opset.onnx"
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        if opset < PER_CHANNEL_OPSET:  # per-channel weights need axis on DequantizeLinear
            from onnx import version_converter

            model = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.save(model, str(upgraded))
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        partial = target.with_name(target.name + ".part")
        quantize_static(
            str(prepared),
            str(partial),
            _Reader(input_name, blobs),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
        partial.replace(target)
    log.info("quantized", extra={"source": str(source), "path": str(target), "inputs": len(blobs)})
    return target
