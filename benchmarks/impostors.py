"""False accepts of faces and tracks of people who are not enrolled, look-alikes included.

    python benchmarks/impostors.py [--lfw ../shared/faces-lfw] [--rosters 40]

Every person of the large labelled set (``ROLLCALL_LFW_DIR``, default
../shared/faces-lfw) gets a template from 3 photos, built as ``rollcall student
add`` builds it. Their other photos, and the one-photo strangers, are shown
through simulated webcam galleries (25 tiles, a third of the webcams poor, JPEG
compressed) for 12 samples each: one *track* per person, the per-sample
embeddings cached under benchmarks/results/cache.

People and strangers are split in two halves by a hash of the name (``--half
tune`` or ``report``): thresholds are chosen on one and reported on the other. For
``--rosters`` random classes of 30 students drawn from the half, every other
person and stranger of the half is an impostor; the *look-alikes* are, for each
student, the non-enrolled person of the half most similar to them. Printed per
decision rule: per-face false-accept rate (a sample above the match threshold
for some student), per-track false accepts by acceptance path (vote, long-track
centroid) and review, and the genuine tracks accepted, sent to review and lost.
The faces of the other half's strangers are the cohort of non-students.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "results" / "cache"
SAMPLES = 12  # per track, 5 s apart (the long-track centroid rule needs 10)
TILES = 25
STRANGERS = 500  # of the one-photo strangers, every other one by name


def lfw_dir() -> Path:
    return Path(os.environ.get("ROLLCALL_LFW_DIR", ROOT.parent / "shared" / "faces-lfw"))


def gallery_samples(
    names: list[str],
    shown: dict[str, list[np.ndarray]],
    detect: Callable[[np.ndarray], list],
    *,
    hard_fraction: float,
) -> Iterator[tuple[int, np.ndarray, list, list[tuple[str, int]]]]:
    """``names`` in Zoom galleries of TILES, SAMPLES frames each (5 s apart, JPEG 40):
    per frame ``(k, frame, faces found, [(name, index of their face), ...])``, a
    person's face being the detection nearest their tile's centre, within the tile."""
    from rollcall.synthetic.meeting import MeetingRenderer, MeetingScript, participants_from_faces

    for start in range(0, len(names), TILES):
        group = names[start : start + TILES]
        participants = participants_from_faces(
            {n: shown[n] for n in group}, seed=start, hard_fraction=hard_fraction
        )
        script = MeetingScript(
            duration_s=5.0 * SAMPLES, participants=tuple(participants), fps=1, seed=start
        )
        renderer = MeetingRenderer(script)
        for k in range(SAMPLES):
            frame = renderer.frame(5 * k)
            ok, jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 40])
            frame = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
            found = detect(frame)
            if not found:
                continue
            seen = []
            for place in renderer.placements(5.0 * k):
                r = place.rect
                centre = np.array([r.x + r.w / 2, r.y + r.h / 2])
                dists = [np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre) for f in found]
                j = int(np.argmin(dists))
                if dists[j] <= max(r.w, r.h) / 2:
                    seen.append((place.key, j))
            yield k, frame, found, seen
        print(f"rendered {min(start + TILES, len(names))}/{len(names)}", flush=True)


def _load(lfw: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    from rollcall.synthetic.meeting import load_faces_dir

    people = load_faces_dir(lfw / "people")
    strangers = {}
    for f in sorted((lfw / "strangers").glob("*.jpg"))[:: max(1, 1000 // STRANGERS)]:
        strangers[f.stem] = [cv2.imread(str(f), cv2.IMREAD_COLOR)]
    return people, strangers


def embed_set(lfw: Path, cache: Path) -> dict[str, np.ndarray]:
    """Templates and tracks of every person (cached): names, templates, photo embeddings,
    track samples."""
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in data.files}
    from rollcall.config import load_config
    from rollcall.enrollment.enroll import _template, enrollment_embedding
    from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
    from rollcall.types import SampledFrame

    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    people, strangers = _load(lfw)

    def detect(image):
        return pm.hook.rollcall_detect_faces(frame=SampledFrame(0, 0.0, image)) or []

    names, kinds, templates, photos = [], [], [], []
    for name, images in [*people.items(), *strangers.items()]:
        vecs = []
        for image in images[:3]:
            found = detect(image)
            if not found:
                continue
            best = max(found, key=lambda f: f.score)
            if name in people:
                vecs.append(enrollment_embedding(pm, image, best))
            else:  # a stranger's photo is only compared with (look-alikes, cohort)
                frame = SampledFrame(0, 0.0, image)
                vecs.append(pm.hook.rollcall_embed_faces(frame=frame, faces=[best])[0])
        if not vecs:
            continue
        names.append(name)
        kinds.append(0 if name in people else 1)
        templates.append(_template(np.stack(vecs)))
        photos.append(np.stack([vecs[i % len(vecs)] for i in range(3)]))
    shown = {n: (people[n][3:] if n in people else strangers[n]) for n in names}
    tracks = np.zeros((len(names), SAMPLES, templates[0].shape[0]), np.float32)
    have = np.zeros((len(names), SAMPLES), bool)
    index = {n: i for i, n in enumerate(names)}
    for k, frame, found, seen in gallery_samples(names, shown, detect, hard_fraction=0.33):
        emb = pm.hook.rollcall_embed_faces(frame=SampledFrame(0, 0.0, frame), faces=found)
        for key, j in seen:
            tracks[index[key], k] = emb[j]
            have[index[key], k] = True
    out = {
        "names": np.array(names),
        "kinds": np.array(kinds),
        "templates": np.stack(templates),
        "photos": np.stack(photos),
        "tracks": tracks,
        "have": have,
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **out)
    return out


@dataclass
class Tally:
    faces: int = 0
    faces_accepted: int = 0
    tracks: int = 0
    accepted: Counter = None  # path -> tracks
    review: int = 0

    def __post_init__(self):
        self.accepted = Counter()

    def line(self, label: str) -> str:
        acc = sum(self.accepted.values())
        paths = ", ".join(f"{p} {c}" for p, c in sorted(self.accepted.items())) or "-"
        return (
            f"{label:<22} faces {self.faces:>6} accepted {self.faces_accepted / max(self.faces, 1):.4f} | "
            f"tracks {self.tracks:>5} accepted {acc / max(self.tracks, 1):.4f} ({paths}) "
            f"review {self.review / max(self.tracks, 1):.4f}"
        )


def track_of(i: int, data: dict, roster_templates: np.ndarray, threshold: float):
    from rollcall.plugins.recognizer import match_open_set
    from rollcall.types import TrackSummary

    samples = data["tracks"][i][data["have"][i]]
    tr = TrackSummary(track_id=int(i))
    for k, emb in enumerate(samples):
        m = match_open_set(emb[None], roster_templates, threshold)[0]
        tr.times.append(5.0 * k)
        if m.student_index >= 0:
            tr.votes[m.student_index] += 1
            tr.similarity_sum[m.student_index] += m.similarity
        tr.embedding_sum = emb.copy() if tr.embedding_sum is None else tr.embedding_sum + emb
    return tr, samples


RULES: dict[str, tuple[str, dict]] = {
    # name: (rule, DecisionMargins fields); "legacy" is the rule before margins. Each
    # track is decided alone, as if it were the student's only track in the recording.
    "legacy": ("legacy", {}),
    "default": ("margins", {"student": 0.08, "cohort": 0.0, "centroid_above": 0.05}),
    "default, margin over students 0.12": (
        "margins",
        {"student": 0.12, "cohort": 0.0, "centroid_above": 0.05},
    ),
    "margins only, no corroboration": (
        "margins",
        {"student": 0.08, "cohort": 0.0, "centroid_above": -0.05},
    ),
}


def evaluate(
    data: dict,
    half: str,
    n_rosters: int,
    roster_size: int,
    rules: dict[str, tuple[str, dict]],
    *,
    cohort_size: int = 200,
) -> dict[str, tuple[Tally, Tally, Tally]]:
    """Tallies (genuine, impostor, look-alike impostor) per rule on one half."""
    from rollcall.plugins import recognizer as rec

    names = data["names"]
    kinds = data["kinds"]
    split = np.array([hash_half(str(n)) for n in names])
    mine = split if half == "tune" else ~split
    people = np.flatnonzero(mine & (kinds == 0))
    others = np.flatnonzero(mine)
    # Stand-in for the unknown faces of a course's earlier meetings: strangers of the
    # other half (never the people being decided).
    pool = np.flatnonzero(~mine & (kinds == 1))
    cohort = data["templates"][pool[:cohort_size]] if cohort_size else None
    threshold = 0.40
    rng = np.random.default_rng(0)
    out = {name: (Tally(), Tally(), Tally()) for name in rules}
    for _ in range(n_rosters):
        roster = np.sort(rng.choice(people, roster_size, replace=False))
        templates = data["templates"][roster]
        photos = data["photos"][roster]
        enrolled = set(roster.tolist())
        impostors = [i for i in others if i not in enrolled]
        lookalikes = set()
        for t in templates:
            sims = data["templates"][impostors] @ t
            lookalikes.add(int(impostors[int(np.argmax(sims))]))
        deciders = {
            name: rec.TrackDecider(
                templates,
                photos,
                cohort,
                threshold=threshold,
                min_samples=3,
                vote_share=0.5,
                margins=rec.DecisionMargins(**fields),
                rule=rule,
            )
            for name, (rule, fields) in rules.items()
        }
        for i in [*roster.tolist(), *impostors]:
            tr, samples = track_of(i, data, templates, threshold)
            if tr.n == 0:
                continue
            genuine = i in enrolled
            sims = samples @ templates.T
            if genuine:
                own = int(np.flatnonzero(roster == i)[0])
                face_hits = int(((sims[:, own] >= threshold) & (sims.argmax(1) == own)).sum())
            else:
                face_hits = int((sims.max(1) >= threshold).sum())
            for name, decider in deciders.items():
                decision = decider.decide([tr]).get(tr.track_id)
                gen, imp, look = out[name]
                tallies = [gen] if genuine else ([imp, look] if i in lookalikes else [imp])
                for tally in tallies:
                    tally.faces += len(samples)
                    tally.faces_accepted += face_hits
                    tally.tracks += 1
                    if decision is None:
                        continue
                    right = not genuine or roster[decision.student_index] == i
                    if decision.state == "accepted" and right:
                        tally.accepted[decision.path] += 1
                    elif decision.state == "review" and right:
                        tally.review += 1
    return out


def hash_half(name: str) -> bool:
    """A stable split of the people by name: True = the tuning half."""
    import hashlib

    return hashlib.sha256(name.encode()).digest()[0] < 128


def print_tallies(results, half: str, n_rosters: int, roster_size: int, cohort: int) -> None:
    print(
        f"\nhalf {half}: {n_rosters} rosters of {roster_size} students, threshold 0.40, "
        f"cohort of {cohort} non-student faces"
    )
    for name, (gen, imp, look) in results.items():
        print(f"rule {name}")
        print("  " + gen.line("genuine"))
        print("  " + imp.line("impostor (all)"))
        print("  " + look.line("impostor (look-alike)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", default=str(lfw_dir()))
    ap.add_argument("--rosters", type=int, default=40)
    ap.add_argument("--roster-size", type=int, default=30)
    ap.add_argument("--half", choices=("tune", "report"), default="report")
    ap.add_argument("--cohort", type=int, default=200, help="non-student faces (0 = none)")
    args = ap.parse_args()
    pack = os.environ.get("ROLLCALL_MODELS_PACK", "lite")
    data = embed_set(Path(args.lfw), CACHE / f"impostors-{pack}-{SAMPLES}.npz")
    results = evaluate(
        data, args.half, args.rosters, args.roster_size, RULES, cohort_size=args.cohort
    )
    print_tallies(results, args.half, args.rosters, args.roster_size, args.cohort)


if __name__ == "__main__":
    main()
