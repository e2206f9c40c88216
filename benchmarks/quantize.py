"""int8 copies of the configured pack's detector and recognizer, and what they cost in accuracy.

    python benchmarks/quantize.py [--lfw ../shared/faces-lfw] [--calibration 300] [--eval-only]

Makes ``[models] quantized_dir/<pack>/*.int8.onnx`` (static quantization,
``rollcall.models.quantize``), calibrated on strangers of the *tuning* half of
faces-lfw, then measures on the *test* half, for fp32 and int8 alike, through
the same plugins the analysis uses:

- detection: share of photos (placed in 25-tile gallery tiles) whose face is found;
- verification: an enrolled person's template (mean of 3 photos) against their
  other photos: genuine accept rate at the pack's match threshold;
- open set: every test stranger against every template: false accept rate
  (share of strangers accepted as someone) at that threshold;
- milliseconds per detector call (one tile) and per recognizer face.

``[models] precision = "int8"`` then makes ``rollcall analyze`` use the int8 recognizer
(the detector stays fp32: its int8 copy is no faster on tiles).
Run by hand, not in CI; the copies are a cache, never committed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rollcall.config import load_config  # noqa: E402
from rollcall.models.quantize import quantize_model, quantized_path  # noqa: E402
from rollcall.pipeline.plugin_manager import builtin, resolve_face_models  # noqa: E402
from rollcall.synthetic.evaluation import lfw_dir, load_lfw  # noqa: E402

#: Detector calibration frames: gallery tile sizes at 720p/1080p (25, 9, 4 tiles)
#: rounded up to 32 as the analysis does, and one whole frame.
DETECTOR_SIZES = ((256, 160), (416, 256), (640, 352), (1280, 736))
TILE = (256, 144)  # a 25-tile gallery tile at 720p


def in_tile(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``photo`` scaled into a ``size`` (w, h) tile on Zoom's dark background."""
    w, h = size
    canvas = np.full((h, w, 3), 35, np.uint8)
    scale = min(h / photo.shape[0], w / photo.shape[1])
    ph, pw = max(1, int(photo.shape[0] * scale)), max(1, int(photo.shape[1] * scale))
    y, x = (h - ph) // 2, (w - pw) // 2
    canvas[y : y + ph, x : x + pw] = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
    return canvas


def plugins(config, detector: Path, recognizer: Path):
    det = builtin("detector")(
        detector, threshold=config.analysis.det_threshold, min_face_px=16, max_side=1920, threads=0
    )
    rec = builtin("recognizer")(
        recognizer, threshold=0.3, min_track_samples=1, vote_share=0.5, threads=0
    )
    return det, rec


def calibration_blobs(det, rec, photos: Sequence[np.ndarray]) -> tuple[list, list]:
    """(detector inputs, recognizer inputs) exactly as the analysis prepares them."""
    from insightface.utils import face_align

    from rollcall.plugins.recognizer import standardise_lighting

    det_model, rec_model = det._model.get(), rec._model.get()
    det_blobs, rec_blobs = [], []
    for i, photo in enumerate(photos):
        w, h = DETECTOR_SIZES[i % len(DETECTOR_SIZES)]
        det_blobs.append(
            cv2.dnn.blobFromImage(
                in_tile(photo, (w, h)),
                1.0 / det_model.input_std,
                (w, h),
                (det_model.input_mean,) * 3,
                swapRB=True,
            )
        )
        faces = det.detect(photo)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.score)
        crop = face_align.norm_crop(photo, landmark=face.kps, image_size=rec_model.input_size[0])
        rec_blobs.append(
            cv2.dnn.blobFromImages(
                [standardise_lighting(crop)],
                1.0 / rec_model.input_std,
                tuple(rec_model.input_size),
                (rec_model.input_mean,) * 3,
                swapRB=True,
            )
        )
    return det_blobs, rec_blobs


def embeddings(det, rec, photos: Sequence[np.ndarray]) -> Iterator[np.ndarray | None]:
    for photo in photos:
        tile = in_tile(photo, TILE)
        faces = det.detect(tile)
        yield rec.embed(tile, [max(faces, key=lambda f: f.score)])[0] if faces else None


def evaluate(config, detector: Path, recognizer: Path, threshold: float, people, strangers):
    det, rec = plugins(config, detector, recognizer)
    templates, probes, found, total = [], [], 0, 0
    for photos in people.values():
        embs = list(embeddings(det, rec, photos))
        total += len(embs)
        found += sum(e is not None for e in embs)
        enroll = [e for e in embs[:3] if e is not None]
        if not enroll:
            continue
        t = np.mean(enroll, axis=0)
        templates.append(t / np.linalg.norm(t))
        probes.append([e for e in embs[3:] if e is not None])
    t = np.stack(templates)
    genuine = [float(e @ t[i]) for i, es in enumerate(probes) for e in es]
    impostor = [float(np.max(t @ e)) for e in embeddings(det, rec, strangers) if e is not None]
    tile = in_tile(next(iter(people.values()))[0], TILE)
    faces = det.detect(tile)
    started = time.perf_counter()
    for _ in range(50):
        det.detect(tile)
    det_ms = (time.perf_counter() - started) * 20
    started = time.perf_counter()
    for _ in range(20):
        rec.embed(tile, faces * 8)
    rec_ms = (time.perf_counter() - started) * 1000 / 160
    return {
        "detected": found / max(total, 1),
        "genuine_accept": float(np.mean(np.array(genuine) >= threshold)),
        "false_accept": float(np.mean(np.array(impostor) >= threshold)),
        "templates": len(templates),
        "strangers": len(impostor),
        "det_ms": det_ms,
        "rec_ms": rec_ms,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=None)
    ap.add_argument("--calibration", type=int, default=300, help="calibration photos")
    ap.add_argument("--eval-only", action="store_true", help="measure existing copies")
    ap.add_argument("--people", type=int, default=120, help="test-half people measured")
    args = ap.parse_args()
    config = load_config(None)
    config = config.model_copy(
        update={"models": config.models.model_copy(update={"precision": "fp32"})}
    )
    models = resolve_face_models(config, progress=False)
    qdir = Path(config.models.quantized_dir).expanduser()
    q_det = quantized_path(models.detector_path, models.pack_name, qdir)
    q_rec = quantized_path(models.recognizer_path, models.pack_name, qdir)
    root = args.lfw or lfw_dir(ROOT)
    if not args.eval_only:
        _, tune_strangers = load_lfw(root, "tune")
        photos = [p for ps in tune_strangers.values() for p in ps][: args.calibration]
        det, rec = plugins(config, models.detector_path, models.recognizer_path)
        det_blobs, rec_blobs = calibration_blobs(det, rec, photos)
        quantize_model(models.detector_path, q_det, det_blobs)
        quantize_model(models.recognizer_path, q_rec, rec_blobs)
        print(f"calibrated on {len(photos)} photos ({len(rec_blobs)} faces): {q_det}, {q_rec}")
    people, strangers = load_lfw(root, "test")
    people = dict(sorted(people.items())[: args.people])
    stranger_photos = [p for ps in strangers.values() for p in ps]
    print(
        f"test half: {len(people)} people, {len(stranger_photos)} strangers; "
        f"threshold {models.match_threshold} (pack {models.pack_name}); faces in {TILE} tiles"
    )
    variants = {
        "fp32": (models.detector_path, models.recognizer_path),
        "int8": (q_det, q_rec),
        "int8 det + fp32 rec": (q_det, models.recognizer_path),
        "fp32 det + int8 rec": (models.detector_path, q_rec),
    }
    print(f"{'models':<20} {'detected':>8} {'GAR':>6} {'FAR':>6} {'det ms':>7} {'rec ms':>7}")
    for name, (d, r) in variants.items():
        m = evaluate(config, d, r, models.match_threshold, people, stranger_photos)
        print(
            f"{name:<20} {m['detected']:>8.3f} {m['genuine_accept']:>6.3f} "
            f"{m['false_accept']:>6.3f} {m['det_ms']:>7.2f} {m['rec_ms']:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
