"""Masked faces against plain and masked templates: genuine and impostor similarities.

    python benchmarks/masked.py [--part tune] [--people 150]

For people of one part of faces-lfw (``ROLLCALL_LFW_DIR``; ``tune`` to choose, ``test``
to check) enrollment builds, from 3 photos, the template ``rollcall student add``
builds today (plain photos blended with masked copies), a plain-only and a
masked-only template. Their other photos are shown with a mask of the meeting
generator's colours (never enrollment's), through a poor-webcam copy (face 40 px,
sensor noise), and plain the same way. Rosters of 30 are drawn; every shown face
of a non-enrolled person is an impostor. Printed per rule and threshold: the
share of genuine masked faces matched to their student, of impostor faces
matched to some student, and how well "is this face masked?" is told from the
embedding alone (closer to the roster's masked templates than to its plain ones).
Embeddings are cached under benchmarks/results/cache.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache"


def embed_part(lfw: Path, part: str, n_people: int) -> dict[str, np.ndarray]:
    cache = CACHE / f"masked-{part}-{n_people}.npz"
    if cache.exists():
        data = np.load(cache)
        return {k: data[k] for k in data.files}
    from rollcall.config import load_config
    from rollcall.enrollment.enroll import (
        _template,
        detect_and_embed,
        enrollment_vectors,
        low_res_copy,
    )
    from rollcall.enrollment.masks import draw_occlusion, random_occlusion
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
    from rollcall.synthetic.evaluation import load_lfw
    from rollcall.types import SampledFrame

    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    people, _ = load_lfw(lfw, part)
    rng = np.random.default_rng(7)
    names = sorted(people)[:n_people]
    out: dict[str, list] = {k: [] for k in ("plain_t", "masked_t", "who", "shown_m", "shown_p")}
    kept = []
    for name in names:
        plain_v, masked_v = [], []
        for image in people[name][:3]:
            faces, _ = detect_and_embed(pm, image)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.score)
            p, m = enrollment_vectors(pm, image, face)
            plain_v.append(p)
            masked_v.append(m)
        if not plain_v:
            continue
        idx = len(kept)
        kept.append(name)
        out["plain_t"].append(_template(np.concatenate(plain_v)))
        out["masked_t"].append(_template(np.concatenate(masked_v)))
        for k, image in enumerate(people[name][3:6]):
            faces, _ = detect_and_embed(pm, image)
            if not faces:
                continue
            face = max(faces, key=lambda f: f.score)
            occ = random_occlusion(rng)
            masked = draw_occlusion(image, face.kps, occ, seed=k)
            vecs = []
            for shown in (masked, image):
                small = low_res_copy(shown, face, 40, seed=k)
                frame = SampledFrame(0, 0.0, small)
                vecs.append(pm.hook.rollcall_embed_faces(frame=frame, faces=[face])[0])
            out["who"].append(idx)
            out["shown_m"].append(vecs[0])
            out["shown_p"].append(vecs[1])
        print(f"embedded {len(kept)}/{len(names)}", flush=True)
    data = {k: np.asarray(v, np.float32 if k != "who" else np.int64) for k, v in out.items()}
    data["names"] = np.array(kept)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **data)
    return data


def _norm(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def tracks_of(data: dict[str, np.ndarray], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(person index, mean embedding) per person: their shown faces as one track."""
    who = data["who"]
    people = np.unique(who)
    return people, _norm(np.stack([data[key][who == p].mean(0) for p in people]))


def rates(
    faces: np.ndarray,
    owner: np.ndarray,
    templates: np.ndarray,
    roster: np.ndarray,
    threshold: float,
    margin: float,
) -> tuple[int, int, int, int]:
    """(genuine, genuine accepted as their student, impostor, impostor accepted)."""
    sims = faces @ templates[roster].T
    order = np.argsort(-sims, axis=1)
    best = sims[np.arange(len(sims)), order[:, 0]]
    second = sims[np.arange(len(sims)), order[:, 1]]
    ok = (best >= threshold) & (best - second >= margin)
    pos = {int(p): i for i, p in enumerate(roster)}
    genuine = np.array([int(o) in pos for o in owner])
    right = np.array([pos.get(int(o), -1) for o in owner]) == order[:, 0]
    return (
        int(genuine.sum()),
        int((ok & genuine & right).sum()),
        int((~genuine).sum()),
        int((ok & ~genuine).sum()),
    )


def main() -> None:
    from rollcall.synthetic.evaluation import lfw_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=lfw_dir(ROOT))
    ap.add_argument("--part", choices=("tune", "test"), default="tune")
    ap.add_argument("--people", type=int, default=150)
    ap.add_argument("--rosters", type=int, default=40)
    args = ap.parse_args()
    data = embed_part(args.lfw, args.part, args.people)
    plain_t, masked_t = data["plain_t"], data["masked_t"]
    blended_t = _norm(0.75 * plain_t + 0.25 * masked_t)
    rng = np.random.default_rng(0)
    rosters = [np.sort(rng.choice(len(plain_t), 30, replace=False)) for _ in range(args.rosters)]
    sets = {
        "faces": (data["who"], data["shown_m"], data["shown_p"]),
        "tracks": (*tracks_of(data, "shown_m"), tracks_of(data, "shown_p")[1]),
    }
    for unit, (owner, masked, plain) in sets.items():
        print(
            f"\n{args.part} part, {len(plain_t)} people, {args.rosters} rosters of 30, per {unit}"
        )
        rules = [("blended (today)", blended_t), ("masked-only", masked_t), ("plain", plain_t)]
        for label, templates in rules:
            for shown_label, shown in (("masked", masked), ("plain", plain)):
                for threshold in (0.25, 0.30, 0.35, 0.40):
                    for margin in (0.0, 0.05, 0.08, 0.12):
                        tot = np.zeros(4, int)
                        for roster in rosters:
                            tot += rates(shown, owner, templates, roster, threshold, margin)
                        print(
                            f"  {label:<16} {shown_label:<6} t {threshold:.2f} m {margin:.2f}: "
                            f"genuine {tot[1] / max(tot[0], 1):.3f}  "
                            f"impostor {tot[3] / max(tot[2], 1):.4f}"
                        )
        # Is it masked? The roster's own mask direction: masked minus plain templates.
        for roster in rosters[:1]:
            direction = masked_t[roster].mean(0) - plain_t[roster].mean(0)
            sm, sp = masked @ direction, plain @ direction
            for cut in np.quantile(np.concatenate([sm, sp]), [0.3, 0.4, 0.5, 0.6]):
                print(
                    f"  masked-ness cut {cut:.3f}: masked faces above {np.mean(sm > cut):.3f}, "
                    f"plain above {np.mean(sp > cut):.3f}"
                )


if __name__ == "__main__":
    main()
