"""Calibrate a pack's match threshold on labelled photos shown through webcam-like galleries.

    python benchmarks/calibrate.py [--faces ../shared/faces] [--trials 6]

Enrollment templates are built exactly as ``rollcall student add`` builds them
(3 photos per person, with low-resolution copies). Probes are each person's
*other* photos rendered into Zoom galleries (9 and 24 tiles, random cheap-webcam
profiles, a third of them hard) by the project's meeting generator. For random
splits of the people into enrolled students and strangers it prints the
per-face genuine similarity (own template) and impostor similarity (best other
template, for strangers and enrolled people alike) and the rates at candidate
thresholds. Pick the threshold where the impostor rate per face is about 1 %:
track voting (3+ samples, half of them matching) turns that into ~0 false
present minutes, while keeping as many genuine faces as possible.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from rollcall.config import load_config
from rollcall.enrollment.enroll import enrollment_embedding
from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
from rollcall.synthetic.meeting import (
    MeetingRenderer,
    MeetingScript,
    load_faces_dir,
    participants_from_faces,
)
from rollcall.types import SampledFrame

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--faces", default=os.environ.get("ROLLCALL_FACES_DIR", ROOT.parent / "shared" / "faces")
    )
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()
    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    faces = load_faces_dir(Path(args.faces))
    names = sorted(faces)
    rng = np.random.default_rng(0)

    def detect_embed(image):
        frame = SampledFrame(0, 0.0, image)
        found = pm.hook.rollcall_detect_faces(frame=frame) or []
        return found, (pm.hook.rollcall_embed_faces(frame=frame, faces=found) if found else None)

    genuine, impostor = [], []
    for trial in range(args.trials):
        enroll_idx = {n: rng.permutation(len(faces[n])) for n in names}
        templates = {}
        for n in names:
            vecs = []
            for i in enroll_idx[n][:3]:
                found, _ = detect_embed(faces[n][i])
                best = max(found, key=lambda f: f.score)
                vecs.append(enrollment_embedding(pm, faces[n][i], best))
            t = np.mean(vecs, axis=0)
            templates[n] = t / np.linalg.norm(t)
        enrolled = list(rng.permutation(names)[:12])
        matrix = np.stack([templates[n] for n in enrolled])
        for n_tiles in (9, 24):
            people = list(rng.permutation(names)[:n_tiles])
            shown = {n: [faces[n][enroll_idx[n][3 + trial % (len(faces[n]) - 3)]]] for n in people}
            participants = participants_from_faces(
                shown, seed=trial * 7 + n_tiles, hard_fraction=0.33
            )
            script = MeetingScript(
                duration_s=1.0,
                participants=tuple(participants),
                fps=1,
                seed=trial,
                speaker_highlight=False,
            )
            renderer = MeetingRenderer(script)
            frame = renderer.frame(0)
            found, emb = detect_embed(frame)
            if not found:
                continue
            for place in renderer.placements(0.0):
                tile, person = place.rect, place.key
                centre = np.array([tile.x + tile.w / 2, tile.y + tile.h / 2])
                dists = [np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre) for f in found]
                j = int(np.argmin(dists))
                if dists[j] > max(tile.w, tile.h) / 2:
                    continue
                sims = matrix @ emb[j]
                if person in enrolled:
                    k = enrolled.index(person)
                    genuine.append(float(sims[k]))
                    sims = np.delete(sims, k)
                impostor.append(float(sims.max()))
    g, i = np.array(genuine), np.array(impostor)
    print(f"pack {models.pack_name}: {len(g)} genuine faces, {len(i)} impostor faces")
    print("genuine  p5/p25/p50:", np.round(np.percentile(g, [5, 25, 50]), 3))
    print(
        "impostor p95/p99/max:", np.round(np.percentile(i, [95, 99]), 3), round(float(i.max()), 3)
    )
    for th in np.arange(0.25, 0.56, 0.025):
        print(
            f"threshold {th:.3f}: genuine accepted {np.mean(g >= th):.3f}, impostor accepted {np.mean(i >= th):.4f}"
        )


if __name__ == "__main__":
    main()
