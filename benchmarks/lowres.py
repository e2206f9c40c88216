"""Probe-side preprocessing of poor-webcam faces: genuine and impostor tracks per variant.

    python benchmarks/lowres.py [--half tune|report] [--variants base,cubic,...]
                                [--weights none,norm,norm4,...] [--rosters 40]

Every person and stranger of faces-lfw is shown through *poor* simulated webcams
(25 tiles, every webcam cheap, the frame JPEG-compressed at quality 40) for 12
samples, as ``benchmarks/impostors.py`` does; what is cached (under
benchmarks/results/cache) is not the embedding but a patch of the frame around each
detected face with its keypoints, so every way of turning a small, noisy face into
an embedding (``variants``: interpolation of the alignment warp, denoising, flipped
copies, crop filters, JPEG in enrollment's low-res copies, templates made of the
low-res copies alone) is re-measured in one to
three minutes without rendering again. Templates are rebuilt with the same variant
(enrollment embeds through the recognizer too). ``--weights`` weighs each sample in
its track's mean face (``weighted``: raw embedding norm to a power, crop sharpness,
face height, best half by norm). The tracks are decided with
``benchmarks/impostors.py``'s rosters and its ``default`` rule; also printed per
variant: the genuine tracks whose mean face is at least 0.45 similar to their
template (the bar below which the README's needs-review minutes come from) and the
genuine-accept rate of the mean face at the 1 % and 5 % false-accept points of the
nearest look-alikes.

Measured 2026-12-02 (lite pack, 40 rosters of 30; faces are 17-27 px from eyes to
mouth). Tuning half, genuine tracks accepted / impostor tracks / look-alike tracks
accepted, genuine mean faces >= 0.45, genuine accept at 1 % and 5 % look-alike FAR:

    base (bilinear warp, today)   0.721  1.34 %  3.92 %  0.726  0.634  0.762
    bicubic warp                  0.725  1.03 %  3.63 %  0.728  0.658  0.762
    Lanczos warp                  0.713  1.07 %  3.55 %  0.718  0.669  0.749
    bilateral filter (small)      0.710  1.75 %  4.81 %  0.708  0.507  0.727
    flipped copy added            0.721  1.52 %  4.99 %  0.731  0.653  0.752
    unsharp mask of the crop      0.673  0.58 %  2.67 %  0.672  0.612  0.758
    CLAHE of the crop             0.748  2.81 %  8.59 %  0.771  0.488  0.754
    JPEG 50 in enrollment copies  0.843  6.63 % 14.63 %  0.892  0.587  0.815
    templates of 24/36 px copies  0.788  5.71 % 11.10 %  0.843  0.667  0.767
    base, weights norm^4          0.723  1.32 %  4.10 %  0.732  0.681  0.770
    bicubic, weights norm^4       0.722  0.93 %  2.84 %  0.726  0.701  0.757

Held-out half: base 0.716 / 1.46 % / 3.75 % / 0.718 / 0.684 / 0.733; bicubic
0.718 / 1.15 % / 3.32 % / 0.722 / 0.651 / 0.747; bicubic with norm^4 weights
0.735 / 1.03 % / 2.60 % / 0.744 / 0.681 / 0.766. No variant separates genuine poor
faces from look-alikes materially: most move every similarity up or down together
(a threshold change in disguise). Bicubic with norm^4 weights, tried in the
pipeline: benchmarks/accuracy.py webcam, compression and target rows unchanged in
total (target recall 0.632 -> 0.684, CRF 23 0.833 -> 0.750, review 31 -> 33
minutes), and benchmarks/impostors.py (held-out) look-alike tracks accepted 5.27 %
-> 5.65 %, so it was not adopted.
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from impostors import (
    RULES,
    SAMPLES,
    STRANGERS,
    _load,
    evaluate,
    gallery_samples,
    hash_half,
    lfw_dir,
)

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache"
PAD = 1.0  # patch margin around the face box, in box sizes (the aligned crop fits inside)


@dataclass
class Sample:
    patch: np.ndarray  # uint8 BGR, the frame around the face
    kps: np.ndarray  # (5, 2) in patch coordinates
    height: float  # face box height in the frame, pixels


def _patch(frame: np.ndarray, face) -> Sample:
    x1, y1, x2, y2 = face.bbox
    pad = PAD * max(x2 - x1, y2 - y1)
    h, w = frame.shape[:2]
    ox, oy = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    ex, ey = min(w, int(x2 + pad) + 1), min(h, int(y2 + pad) + 1)
    kps = face.kps - np.array([ox, oy], np.float32)
    return Sample(frame[oy:ey, ox:ex].copy(), kps, float(y2 - y1))


def render_set(lfw: Path, cache: Path) -> dict:
    """names, kinds, enrollment photos + faces, and per person up to 12 poor-webcam samples."""
    if cache.exists():
        with cache.open("rb") as f:
            return pickle.load(f)
    from rollcall.config import load_config
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
    from rollcall.types import SampledFrame

    config = load_config(None)
    pm = make_plugin_manager(config, resolve_face_models(config), entry_points=False)
    people, strangers = _load(lfw)

    def detect(image):
        return pm.hook.rollcall_detect_faces(frame=SampledFrame(0, 0.0, image)) or []

    names, kinds, enroll = [], [], []
    for name, images in [*people.items(), *strangers.items()]:
        shots = []
        for image in images[:3]:
            found = detect(image)
            if found:
                shots.append((image, max(found, key=lambda f: f.score)))
        if shots:
            names.append(name)
            kinds.append(0 if name in people else 1)
            enroll.append(shots)
    shown = {n: (people[n][3:] if n in people else strangers[n]) for n in names}
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    for _k, frame, found, seen in gallery_samples(names, shown, detect, hard_fraction=1.0):
        for key, j in seen:
            samples[key].append(_patch(frame, found[j]))
    out = {"names": names, "kinds": kinds, "enroll": enroll, "samples": samples}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(out, f)
    return out


# --- variants: (image, kps list) -> aligned crops ------------------------------------

Warp = Callable[[np.ndarray, np.ndarray], np.ndarray]


def warp_with(flags: int) -> Warp:
    from rollcall.plugins import face_align

    def warp(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        m = face_align.estimate_norm(kps, 112)
        return cv2.warpAffine(image, m, (112, 112), flags=flags, borderValue=0.0)

    return warp


def face_px(kps: np.ndarray) -> float:
    """Eye-to-mouth distance (pixels): about 0.45 of a face box's height."""
    eyes = (kps[0] + kps[1]) / 2
    mouth = (kps[3] + kps[4]) / 2
    return float(np.linalg.norm(mouth - eyes))


def denoised(kind: str, below_px: float, warp: Warp) -> Warp:
    def run(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        if face_px(kps) < below_px and kind == "bilateral":
            image = cv2.bilateralFilter(image, 5, 25, 3)
        return warp(image, kps)

    return run


def post(kind: str, warp: Warp) -> Warp:
    """``warp`` followed by a filter of the aligned crop (faces of any size)."""

    def run(image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        crop = warp(image, kps)
        if kind == "unsharp":
            soft = cv2.GaussianBlur(crop, (0, 0), 1.5)
            return cv2.addWeighted(crop, 1.6, soft, -0.6, 0)
        if kind == "clahe":
            lab = cv2.cvtColor(crop, cv2.COLOR_BGR2LAB)
            clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
            lab[..., 0] = clahe.apply(lab[..., 0])
            return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
        return crop

    return run


@dataclass(frozen=True)
class Variant:
    warp: Warp
    flip: bool = False  # also embed the mirrored crop and sum
    flip_below_px: float = 1e9  # ...only for faces smaller than this (eye-to-mouth)
    #: enrollment's low-res copies also JPEG-compressed at this quality (0 = as today)
    enroll_jpeg: int = 0
    #: template from enrollment's low-res copies of these face heights only (resolution-
    #: matched gallery; () = as ``rollcall student add`` builds it)
    enroll_low_res_only: tuple[int, ...] = ()


def variants() -> dict[str, Variant]:
    lin = warp_with(cv2.INTER_LINEAR)
    cub = warp_with(cv2.INTER_CUBIC)
    return {
        "base": Variant(lin),
        "cubic": Variant(cub),
        "lanczos": Variant(warp_with(cv2.INTER_LANCZOS4)),
        "bilateral": Variant(denoised("bilateral", 30, lin)),
        "flip": Variant(lin, flip=True),
        "tmpl-jpeg50": Variant(lin, enroll_jpeg=50),
        "tmpl-lowres": Variant(lin, enroll_low_res_only=(24, 36)),
        "unsharp": Variant(post("unsharp", lin)),
        "clahe": Variant(post("clahe", lin)),
    }


QUALITY: list = []  # raw embedding norms of the last embed calls (harness only)
SHARP: list = []


def sharpness(crop: np.ndarray) -> float:
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[20:100, 20:92]
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def install(plugin, variant: Variant) -> None:
    """Make ``plugin`` (the recognizer) embed with ``variant`` (enrollment included)."""
    from rollcall.plugins.recognizer import normalise, standardise_lighting

    model = plugin._model.get()

    def embed(image, faces):
        if not faces:
            return np.zeros((0, 0), np.float32)
        crops = [standardise_lighting(variant.warp(image, f.kps)) for f in faces]
        feats = model.get_feat(crops)
        QUALITY.append(np.linalg.norm(feats, axis=1))
        SHARP.append([sharpness(c) for c in crops])
        flips = [
            i
            for i, f in enumerate(faces)
            if variant.flip and face_px(f.kps) < variant.flip_below_px
        ]
        if flips:
            feats[flips] = normalise(feats[flips]) + normalise(
                model.get_feat([crops[i][:, ::-1] for i in flips])
            )
        return normalise(feats)

    plugin.embed = embed
    from rollcall.enrollment import enroll

    plain = getattr(enroll, "_plain_low_res_copy", enroll.low_res_copy)
    enroll._plain_low_res_copy = plain

    def low_res_copy(image, face, face_px, seed):
        if not variant.enroll_jpeg:
            return plain(image, face, face_px, seed)
        h, w = image.shape[:2]
        scale = min(1.0, face_px / max(float(face.bbox[3] - face.bbox[1]), 1.0))
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        noise = np.random.default_rng(seed).normal(0.0, 4.0, small.shape)
        small = np.clip(small.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        ok, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, variant.enroll_jpeg])
        small = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    enroll.low_res_copy = low_res_copy


def embed_data(data: dict, pm, plugin, variant: Variant, keep: set[str]) -> dict:
    """``benchmarks/impostors.py``'s data dict (templates, photos, tracks) for ``variant``."""
    from rollcall.enrollment.enroll import _template, enrollment_embedding
    from rollcall.types import Face

    install(plugin, variant)
    names, kinds, templates, photos = [], [], [], []
    tracks, quals = [], []
    dim = 0
    for name, kind, shots in zip(data["names"], data["kinds"], data["enroll"], strict=True):
        if name not in keep:
            continue
        vecs = []
        for image, face in shots:
            if kind == 0 and variant.enroll_low_res_only:
                from rollcall.enrollment import enroll

                copies = [
                    plugin.embed(enroll.low_res_copy(image, face, px, seed=i), [face])[0]
                    for i, px in enumerate(variant.enroll_low_res_only)
                ]
                vecs.append(_template(np.stack(copies)))
            elif kind == 0:
                vecs.append(enrollment_embedding(pm, image, face))
            else:
                vecs.append(plugin.embed(image, [face])[0])
        dim = len(vecs[0])
        names.append(name)
        kinds.append(kind)
        templates.append(_template(np.stack(vecs)))
        photos.append(np.stack([vecs[i % len(vecs)] for i in range(3)]))
        ss = data["samples"][name]
        emb = np.zeros((SAMPLES, dim), np.float32)
        qual = np.zeros((3, SAMPLES), np.float32)
        for k, s in enumerate(ss[:SAMPLES]):
            face = Face(np.zeros(4, np.float32), 1.0, s.kps)
            emb[k] = plugin.embed(s.patch, [face])[0]
            qual[:, k] = (QUALITY[-1][0], SHARP[-1][0], s.height)
        tracks.append((emb, len(ss[:SAMPLES])))
        quals.append(qual)
    have = np.zeros((len(names), SAMPLES), bool)
    for i, (_e, n) in enumerate(tracks):
        have[i, :n] = True
    return {
        "names": np.array(names),
        "kinds": np.array(kinds),
        "templates": np.stack(templates),
        "photos": np.stack(photos),
        "tracks": np.stack([e for e, _n in tracks]),
        "have": have,
        # (n, 3, samples): raw norm, crop sharpness, face height
        "sample_quality": np.stack(quals),
    }


def centroid_stats(data: dict, half: str, n_rosters: int, roster_size: int) -> str:
    """Genuine centroids >= 0.45 to their template and genuine accept at the 1 % and 5 %
    false-accept points of the nearest look-alikes (best roster similarity)."""
    names, kinds = data["names"], data["kinds"]
    split = np.array([hash_half(str(n)) for n in names])
    mine = split if half == "tune" else ~split
    people = np.flatnonzero(mine & (kinds == 0))
    others = np.flatnonzero(mine)
    w = data.get("weights", data["have"].astype(np.float32))
    cents = (data["tracks"] * w[..., None]).sum(axis=1)
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)
    rng = np.random.default_rng(0)
    gen, gen_margin, look, imp = [], [], [], []
    for _ in range(n_rosters):
        roster = np.sort(rng.choice(people, roster_size, replace=False))
        t = data["templates"][roster]
        for j, i in enumerate(roster):
            s = t @ cents[i]
            gen.append(s[j])
            gen_margin.append(s[j] - np.delete(s, j).max())
        impostors = np.array([i for i in others if i not in set(roster.tolist())])
        isims = cents[impostors] @ t.T  # (n_imp, roster)
        imp += isims.max(axis=1).tolist()
        tsims = data["templates"][impostors] @ t.T
        look += [isims[int(np.argmax(tsims[:, j])), j] for j in range(len(roster))]
    gen, look, imp = np.array(gen), np.array(look), np.array(imp)
    out = [f"genuine centroid >= 0.45: {np.mean(gen >= 0.45):.3f} (median {np.median(gen):.3f})"]
    out.append(f"look-alike median {np.median(look):.3f}, impostor median {np.median(imp):.3f}")
    for far in (0.01, 0.05):
        bar = float(np.quantile(look, 1 - far))
        out.append(f"GAR@look-alike FAR {far:.0%}: {np.mean(gen >= bar):.3f} (bar {bar:.3f})")
    out.append(
        f"look-alikes >= 0.45: {np.mean(look >= 0.45):.4f}, "
        f"all impostors >= 0.45: {np.mean(imp >= 0.45):.4f}"
    )
    return "\n  ".join(out)


def weighted(data: dict, scheme: str) -> dict:
    """``data`` with per-sample centroid weights ``scheme``: none, norm, norm2, sharp,
    height, top (the half of the samples with the largest raw norm)."""
    q = data["sample_quality"]
    w = np.ones(q[:, 0].shape, np.float32)
    if scheme == "norm":
        w = q[:, 0]
    elif scheme == "norm2":
        w = q[:, 0] ** 2
    elif scheme == "norm4":
        w = q[:, 0] ** 4
    elif scheme == "sharp":
        w = np.sqrt(q[:, 1])
    elif scheme == "height":
        w = q[:, 2]
    elif scheme == "top":
        ranks = np.argsort(np.argsort(-np.where(data["have"], q[:, 0], -1), axis=1), axis=1)
        w = (ranks < np.maximum(data["have"].sum(1, keepdims=True) // 2, 1)).astype(np.float32)
    return {**data, "weights": np.where(data["have"], w, 0.0)}


def install_weights() -> None:
    """Make ``impostors.track_of`` sum weighted samples into the centroid."""
    import impostors

    plain = impostors.track_of

    def track_of(i, data, roster_templates, threshold):
        tr, samples = plain(i, data, roster_templates, threshold)
        if "weights" in data and len(samples):
            w = data["weights"][i][data["have"][i]]
            tr.embedding_sum = (samples * w[:, None]).sum(0) * (len(samples) / max(w.sum(), 1e-9))
        return tr, samples

    impostors.track_of = track_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", default=str(lfw_dir()))
    ap.add_argument("--half", choices=("tune", "report"), default="tune")
    ap.add_argument("--variants", default="base")
    ap.add_argument("--rosters", type=int, default=40)
    ap.add_argument("--weights", default="none", help="centroid weightings (see weighted)")
    ap.add_argument("--roster-size", type=int, default=30)
    args = ap.parse_args()
    from rollcall.config import load_config
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

    pack = os.environ.get("ROLLCALL_MODELS_PACK", "lite")
    data = render_set(Path(args.lfw), CACHE / f"lowres-{pack}-{SAMPLES}-{STRANGERS}.pkl")
    config = load_config(None)
    pm = make_plugin_manager(config, resolve_face_models(config), entry_points=False)
    plugin = pm.get_plugin("recognizer")
    # The half being decided, and the other half's strangers (the cohort).
    keep = {n for n, k in zip(data["names"], data["kinds"], strict=True)
            if hash_half(n) == (args.half == "tune") or k == 1}  # fmt: skip
    rules = {k: RULES[k] for k in ("default",)}
    install_weights()
    table = variants()
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        saved = CACHE / f"lowres-emb-{pack}-{name}-{args.half}.pkl"
        if saved.exists():
            with saved.open("rb") as f:
                emb = pickle.load(f)
            if "quality" in emb:  # caches written before the key was renamed
                emb["sample_quality"] = emb.pop("quality")
        else:
            emb = embed_data(data, pm, plugin, table[name], keep)
            with saved.open("wb") as f:
                pickle.dump(emb, f)
        spent = time.perf_counter() - t0
        for scheme in args.weights.split(","):
            wdata = weighted(emb, scheme)
            results = evaluate(wdata, args.half, args.rosters, args.roster_size, rules)
            gen, imp, look = results["default"]
            print(f"\n== {name}, weights {scheme} (half {args.half}, embedded in {spent:.0f} s)")
            print("  " + gen.line("genuine"))
            print("  " + imp.line("impostor (all)"))
            print("  " + look.line("impostor (look-alike)"))
            stats = centroid_stats(wdata, args.half, args.rosters, args.roster_size)
            print("  " + stats, flush=True)


if __name__ == "__main__":
    main()
