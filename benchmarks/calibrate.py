"""Genuine-accept and false-accept rates per face and per track, over faces-lfw.

    python benchmarks/calibrate.py [--lfw ../shared/faces-lfw] [--galleries 16] [--frames 12]

Calibrates on the *tuning* half of ``ROLLCALL_LFW_DIR`` (default
../shared/faces-lfw; ``benchmarks/accuracy.py`` measures on the other half):
about 200 labelled people and 500 one-photo strangers. Enrollment templates
are built exactly as ``rollcall student add`` builds them (3 photos per
person, low-resolution and masked copies). Each gallery is a class: a roster
of 20 enrolled people, 15 of whom are on screen with their *other* photos,
next to 10 people who are not enrolled (other labelled people and strangers),
through random webcam profiles (a third of them cheap), with a mask on a
quarter of the faces. ``--frames`` frames a few seconds apart make one track
per tile.

Decisions go through the pipeline's own hooks (``rollcall_match_faces`` per
frame, ``rollcall_identify_tracks`` per track) at the configured pack's
thresholds, so the rates follow whatever decision rule is installed. It
prints, for all faces and for masked faces alone:

- per face: genuine accept (an enrolled face matched to its own student),
  misidentification (matched to another student) and false accept (a face of
  someone not enrolled matched to any student);
- per track: the same for tracks;
- the similarity distribution (genuine, best impostor) and the per-face rates
  at candidate thresholds, to choose ``match_threshold``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rollcall.config import load_config
from rollcall.enrollment.enroll import detect_and_embed, enrollment_embedding
from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models
from rollcall.synthetic.evaluation import lfw_dir, load_lfw
from rollcall.synthetic.meeting import MeetingRenderer, MeetingScript, participants_from_faces
from rollcall.synthetic.occlusion import add_random_occlusions, detector_keypoints
from rollcall.types import Roster, TrackSummary

ROOT = Path(__file__).resolve().parents[1]
ROSTER, ON_SCREEN, OUTSIDERS = 20, 15, 10


@dataclass
class Tally:
    """Counts for one kind of probe (faces or tracks) and one condition."""

    genuine: int = 0
    genuine_accepted: int = 0
    misidentified: int = 0  # an enrolled person taken for another student
    outsiders: int = 0
    outsiders_accepted: int = 0
    sims: list[tuple[float, float]] = field(default_factory=list)  # (genuine or nan, best other)

    def add(self, enrolled: bool, accepted_as_self: bool, accepted_as_other: bool) -> None:
        if enrolled:
            self.genuine += 1
            self.genuine_accepted += accepted_as_self
            self.misidentified += accepted_as_other
        else:
            self.outsiders += 1
            self.outsiders_accepted += accepted_as_other

    def line(self, label: str) -> str:
        gar = self.genuine_accepted / max(self.genuine, 1)
        mis = self.misidentified / max(self.genuine, 1)
        far = self.outsiders_accepted / max(self.outsiders, 1)
        return (
            f"{label:<22} genuine accept {gar:.3f} ({self.genuine_accepted}/{self.genuine})  "
            f"misidentified {mis:.4f} ({self.misidentified})  false accept {far:.4f} "
            f"({self.outsiders_accepted}/{self.outsiders})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lfw", type=Path, default=lfw_dir(ROOT))
    ap.add_argument("--galleries", type=int, default=16)
    ap.add_argument("--frames", type=int, default=12, help="frames (track samples) per gallery")
    ap.add_argument("--mask-share", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    config = load_config(None)
    models = resolve_face_models(config)
    pm = make_plugin_manager(config, models, entry_points=False)
    people, strangers = load_lfw(args.lfw, "tune")
    names = sorted(n for n in people if len(people[n]) >= 4)
    rng = np.random.default_rng(args.seed)
    templates = {}
    for n in names:
        vecs = []
        for image in people[n][:3]:
            found, _ = detect_and_embed(pm, image)
            if found:
                best = max(found, key=lambda f: f.score)
                vecs.append(enrollment_embedding(pm, image, best))
        t = np.mean(vecs, axis=0)
        templates[n] = t / np.linalg.norm(t)
    print(f"{len(templates)} people enrolled, {len(strangers)} strangers (tuning half)", flush=True)
    keypoints = detector_keypoints(pm)
    faces = {"all faces": Tally(), "masked faces": Tally()}
    tracks = {"all tracks": Tally(), "masked tracks": Tally()}
    stranger_names = sorted(strangers)
    for g in range(args.galleries):
        roster_names = list(rng.permutation(sorted(templates))[:ROSTER])
        roster = Roster(
            student_keys=tuple(range(ROSTER)),
            student_ids=tuple(roster_names),
            names=tuple(roster_names),
            templates=np.stack([templates[n] for n in roster_names]).astype(np.float32),
            photo_embeddings=tuple(np.zeros((0, 0), np.float32) for _ in roster_names),
        )
        shown_people = roster_names[:ON_SCREEN]
        others = [n for n in templates if n not in roster_names]
        outsiders = list(rng.permutation(others)[: OUTSIDERS // 2])
        outsiders += list(rng.permutation(stranger_names)[: OUTSIDERS - len(outsiders)])
        shown = {n: people[n][3:] for n in shown_people}
        shown.update({n: people[n][3:] if n in people else strangers[n] for n in outsiders})
        parts = participants_from_faces(shown, seed=args.seed * 100 + g, hard_fraction=0.33)
        parts = add_random_occlusions(
            parts, keypoints, duration_s=1e6, seed=g, mask_share=args.mask_share
        )
        script = MeetingScript(
            duration_s=5.0 * args.frames,
            participants=tuple(parts),
            fps=0.2,
            seed=g,
            speaker_highlight=False,
        )
        renderer = MeetingRenderer(script)
        masked = {p.key for p in parts if p.occlusions}
        summaries: dict[str, TrackSummary] = {}
        for i in range(args.frames):
            frame_no = i
            t = frame_no / script.fps
            found, emb = detect_and_embed(pm, renderer.frame(frame_no))
            if not found:
                continue
            matches = pm.hook.rollcall_match_faces(embeddings=emb, roster=roster)
            for place in renderer.placements(t):
                rect, person = place.rect, place.key
                centre = np.array([rect.x + rect.w / 2, rect.y + rect.h / 2])
                dists = [np.linalg.norm((f.bbox[:2] + f.bbox[2:]) / 2 - centre) for f in found]
                j = int(np.argmin(dists))
                if dists[j] > max(rect.w, rect.h) / 2:
                    continue
                own = roster_names.index(person) if person in roster_names else -1
                got = matches[j].student_index
                for tally in (
                    faces["all faces"],
                    *([faces["masked faces"]] if person in masked else []),
                ):
                    tally.add(own >= 0, got == own and own >= 0, got >= 0 and got != own)
                    sims = roster.templates @ emb[j]
                    genuine = float(sims[own]) if own >= 0 else float("nan")
                    tally.sims.append(
                        (genuine, float(np.delete(sims, own).max() if own >= 0 else sims.max()))
                    )
                tr = summaries.setdefault(person, TrackSummary(track_id=len(summaries)))
                tr.times.append(t)
                if got >= 0:
                    tr.votes[got] += 1
                    tr.similarity_sum[got] += matches[j].similarity
                tr.embedding_sum = (
                    emb[j].copy() if tr.embedding_sum is None else tr.embedding_sum + emb[j]
                )
        decided = pm.hook.rollcall_identify_tracks(tracks=list(summaries.values()), roster=roster)
        decided = decided or {}
        for person, tr in summaries.items():
            own = roster_names.index(person) if person in roster_names else -1
            got = decided.get(tr.track_id, -1)
            for tally in (
                tracks["all tracks"],
                *([tracks["masked tracks"]] if person in masked else []),
            ):
                tally.add(own >= 0, got == own and own >= 0, got >= 0 and got != own)
        print(f"gallery {g + 1}/{args.galleries}", flush=True)
    print(
        f"\npack {models.pack_name}: match_threshold {models.match_threshold} "
        f"(registry or config); {args.galleries} classes of {ROSTER} enrolled, "
        f"{ON_SCREEN + OUTSIDERS} tiles, {args.frames} samples per track"
    )
    for label, tally in (*faces.items(), *tracks.items()):
        print(tally.line(label))
    sims = np.array(faces["all faces"].sims)
    g, imp = sims[:, 0][~np.isnan(sims[:, 0])], sims[:, 1]
    print("\ngenuine similarity  p5/p25/p50:", np.round(np.percentile(g, [5, 25, 50]), 3))
    print(
        "best impostor       p95/p99/max:",
        np.round(np.percentile(imp, [95, 99]), 3),
        round(float(imp.max()), 3),
    )
    for th in np.arange(0.30, 0.56, 0.025):
        print(
            f"threshold {th:.3f}: genuine faces above {np.mean(g >= th):.3f}, "
            f"best impostor above {np.mean(imp >= th):.4f}"
        )


if __name__ == "__main__":
    main()
