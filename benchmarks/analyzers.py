"""Cost per frame of the optional analyzers on a 25-tile gallery of real faces.

    python benchmarks/analyzers.py

Builds one 1280x720 frame of 25 face photos (``ROLLCALL_FACES_DIR``, default
../shared/faces), detects its faces with the configured pack, and times each
analyzer's ``rollcall_analyze_frame`` on it: milliseconds per frame and per
face, beside the detector's own time on the same frame for scale.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from rollcall.config import load_config
from rollcall.pipeline.plugin_manager import resolve_face_models
from rollcall.plugins.detector import DetectorPlugin
from rollcall.plugins.emotion import EmotionModel, EmotionPlugin
from rollcall.plugins.emotion_settings import EmotionSettings
from rollcall.plugins.engagement import EngagementPlugin, EngagementSettings, HeadPoseModel
from rollcall.types import FaceMatch, MeetingContext, SampledFrame, TrackedFace

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10


def gallery(faces_dir: Path, n: int = 25) -> np.ndarray:
    """A 5x5 gallery frame (1280x720) of real face photos, like a Zoom recording."""
    paths = sorted(faces_dir.glob("*/*.jpg"))[:n]
    tiles = [cv2.resize(cv2.imread(str(p)), (256, 144)) for p in paths]
    rows = [np.hstack(tiles[r * 5 : r * 5 + 5]) for r in range(5)]
    return np.vstack(rows)


def timed(fn, runs: int = RUNS) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) * 1000 / runs


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help
    config = load_config()
    faces_dir = Path(os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces"))
    models = resolve_face_models(config, progress=False)
    models_dir = config.models.dir
    detector = DetectorPlugin(
        models.detector_path, threshold=0.5, min_face_px=16, max_side=1920, threads=0
    )
    image = gallery(faces_dir)
    faces = [TrackedFace(i, f, FaceMatch(0, 0.9)) for i, f in enumerate(detector.detect(image))]
    meeting = MeetingContext(1, "bench", "bench", 60.0, 1.0)
    settings = EngagementSettings()  # the defaults
    plugins = {
        "emotion": EmotionPlugin(
            EmotionModel(models_dir), EmotionSettings(min_face_px=16, min_confidence=0.0)
        ),
        "engagement (FSA-Net, batched)": EngagementPlugin(
            HeadPoseModel(models_dir, mode="fsanet"), settings
        ),
        "engagement (keypoints)": EngagementPlugin(HeadPoseModel("", mode="keypoints"), settings),
    }
    n = len(faces)
    print(f"{n} faces in a 1280x720 gallery frame; {RUNS} runs each")
    det_ms = timed(lambda: detector.detect(image))
    print(f"{'detector (for scale)':32} {det_ms:8.1f} ms/frame")
    frame = SampledFrame(0, 0.0, image)
    for name, plugin in plugins.items():
        ms = timed(
            lambda p=plugin: p.rollcall_analyze_frame(meeting=meeting, frame=frame, faces=faces)
        )
        print(f"{name:32} {ms:8.1f} ms/frame {ms / n:6.2f} ms/face")


if __name__ == "__main__":
    main()
