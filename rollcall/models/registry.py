"""Which face-model packs rollcall knows, what they contain, and how far to trust them.

A *pack* is a folder of ONNX files holding at least a face detector (SCRFD,
five keypoints) and a face recognizer (ArcFace-style, 112x112 aligned crop in,
one embedding out), exactly as insightface lays out ``~/.insightface/models/<pack>/``.
This module only describes packs; :mod:`rollcall.models.resolve` finds or downloads them.

Registered packs
----------------
``buffalo_sc``, ``buffalo_s``, ``buffalo_l``
    insightface's standard packs, published as zip archives on the insightface
    GitHub release ``v0.7`` (the same archives are mirrored under the release tag
    ``model-zoo``, which is where insightface 2.1's own downloader looks).

    *Hashes.* insightface does not ship checksums with these archives. The sha256
    values below are pinned from public manifests of unrelated projects that
    downloaded the official archives and agree with each other (five or more
    independent sources for every archive and for the detector/recognizer files).
    They could not be recomputed here because this workplace has no internet
    access, hence ``hashes_verified=False``. The one exception is
    ``det_500m.onnx``: its pinned hash equals the sha256 of
    ``../shared/models/lite/det_500m.onnx`` (same file, same 2,524,817 bytes),
    which *was* checked here. Files whose hash could not be found
    (the landmark and gender/age models of ``buffalo_s``) carry ``sha256=None``;
    they are covered by the pinned archive hash at download time, and
    :mod:`rollcall.models.resolve` records the hash of every file it extracts next to the
    files (trust on first use), so later changes are still detected.

    *Thresholds.* insightface publishes no per-model verification threshold. The
    values used are the defaults of the installed insightface 2.1 itself:
    ``insightface/gui/core/constants.py`` ``DEFAULT_THRESHOLD = 0.4`` (its face
    search / recognition threshold) and ``insightface/gui/pages/album_page.py``
    ``DEFAULT_ALBUM_COSINE_THRESHOLD = 0.48`` (its face clustering threshold).
    They are *not* calibrated for rollcall: the packs cannot be run offline here.
    Override them in config after running ``benchmarks/calibrate.py``.

``lite``
    The offline folder pack of ``../shared/models/lite`` (SCRFD-500M detector,
    identical to the buffalo packs' ``det_500m.onnx``, and a 128-d MobileFaceNet
    recognizer). No archive is published; it is found through a models dir only.
    Hashes come from ``../shared/models/SHA256SUMS`` and were checked here.

Unregistered folder packs
-------------------------
:func:`get_pack` also accepts the path of a folder of ONNX files (or the name of
such a folder inside the configured models dir). Its detector and recognizer
are picked by file name and ONNX signature (see :func:`folder_pack`); nothing is
known about its hashes or thresholds, so the thresholds must come from config.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from rollcall.models.errors import ModelError

#: Release that has served the buffalo packs since 2022 (what most users and docs cite).
INSIGHTFACE_RELEASE_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7"
#: Release tag insightface 2.1's own downloader uses; it mirrors the same archives.
INSIGHTFACE_MODEL_ZOO_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo"
#: Environment variable naming a folder that holds ``<pack>/`` folders (or one pack's files).
ENV_MODELS_DIR = "ROLLCALL_MODELS_DIR"
ENV_MODELS_PACK = "ROLLCALL_MODELS_PACK"

Role = Literal["detector", "recognizer", "landmark_2d106", "landmark_3d68", "genderage", "other"]
ROLES: tuple[str, ...] = (
    "detector",
    "recognizer",
    "landmark_2d106",
    "landmark_3d68",
    "genderage",
    "other",
)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a pack.

    ``sha256``/``size`` are ``None`` when not known; such a file is only checked
    for existence (and, once downloaded by rollcall, against the hash recorded at
    download time). ``required=False`` marks files rollcall does not load (landmark
    and gender/age models): they may be absent, but are verified when present.
    """

    name: str
    role: Role
    sha256: str | None = None
    size: int | None = None
    required: bool = True

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"ModelFile {self.name!r}: role {self.role!r} is not one of {ROLES}")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError(
                f"ModelFile {self.name!r}: sha256 must be 64 lowercase hex digits, got {self.sha256!r}"
            )
        if self.size is not None and self.size <= 0:
            raise ValueError(f"ModelFile {self.name!r}: size must be positive, got {self.size}")
        if Path(self.name).name != self.name or self.name in ("", ".", ".."):
            raise ValueError(f"ModelFile name must be a plain file name, got {self.name!r}")


@dataclass(frozen=True)
class ModelPack:
    """A detector + recognizer pack and the thresholds that go with its embeddings.

    ``match_threshold``: cosine similarity at or above which a face is accepted as
    a roster student. ``unknown_cluster_threshold``: cosine similarity at or above
    which two unmatched faces are grouped as the same unknown person.
    ``threshold_source`` says where both numbers come from (published default,
    calibration run, config). ``hashes_verified`` is True only when the pinned
    sha256 values were recomputed from the real files by whoever wrote the entry;
    ``hash_source`` says where they come from. ``local_dir`` is set only for
    unregistered folder packs (the folder they were read from).
    """

    name: str
    files: tuple[ModelFile, ...]
    archive_url: str | None
    archive_sha256: str | None
    embedding_dim: int
    match_threshold: float
    unknown_cluster_threshold: float
    threshold_source: str
    detector_file: str
    recognizer_file: str
    archive_size: int | None = None
    hashes_verified: bool = False
    hash_source: str = ""
    description: str = ""
    license: str = ""
    local_dir: Path | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"pack {self.name!r}: duplicate file names in {names}")
        for attr in ("detector_file", "recognizer_file"):
            wanted = getattr(self, attr)
            if wanted not in names:
                raise ValueError(f"pack {self.name!r}: {attr}={wanted!r} is not one of {names}")
        if self.archive_sha256 is not None and not _SHA256_RE.match(self.archive_sha256):
            raise ValueError(f"pack {self.name!r}: archive_sha256 must be 64 lowercase hex digits")
        for attr in ("match_threshold", "unknown_cluster_threshold"):
            value = getattr(self, attr)
            if not -1.0 <= float(value) <= 1.0:
                raise ValueError(
                    f"pack {self.name!r}: {attr} must be a cosine in [-1, 1], got {value}"
                )
        if self.embedding_dim <= 0:
            raise ValueError(f"pack {self.name!r}: embedding_dim must be positive")

    def file(self, name: str) -> ModelFile:
        """The :class:`ModelFile` called ``name`` (KeyError if the pack has none)."""
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"pack {self.name!r} has no file {name!r}")

    @property
    def detector(self) -> ModelFile:
        return self.file(self.detector_file)

    @property
    def recognizer(self) -> ModelFile:
        return self.file(self.recognizer_file)

    @property
    def required_files(self) -> tuple[ModelFile, ...]:
        """Files that must be present: the detector, the recognizer and any other required file."""
        return tuple(
            f
            for f in self.files
            if f.required or f.name in (self.detector_file, self.recognizer_file)
        )


# --------------------------------------------------------------------------- registry

_HASHES_FROM_PUBLIC_MANIFESTS = (
    "sha256 pinned from public manifests of unrelated projects that downloaded the official "
    "insightface v0.7 / model-zoo archives (five or more independent sources agree on every "
    "pinned value); not recomputed here (no internet). det_500m.onnx matches "
    "../shared/models/lite/det_500m.onnx, which was checked here."
)
_INSIGHTFACE_THRESHOLDS = (
    "published default, uncalibrated for rollcall: match 0.40 = insightface 2.1 "
    "gui/core/constants.py DEFAULT_THRESHOLD (face search/recognition), unknown clusters "
    "0.48 = insightface 2.1 gui/pages/album_page.py DEFAULT_ALBUM_COSINE_THRESHOLD (face "
    "clustering). insightface publishes no per-model threshold and these packs cannot be run "
    "offline here; calibrate with benchmarks/calibrate.py and set them in config.toml"
)
_INSIGHTFACE_LICENSE = (
    "insightface pretrained models: non-commercial research use only "
    "(https://github.com/deepinsight/insightface#license)"
)

# Files shared by several packs (same bytes in each, per the manifests cited above).
_DET_500M = ModelFile(
    "det_500m.onnx",
    "detector",
    "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
    2_524_817,
)
_W600K_MBF = ModelFile(
    "w600k_mbf.onnx",
    "recognizer",
    "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    13_616_099,
)


def _build_registry() -> Mapping[str, ModelPack]:
    packs = (
        ModelPack(
            name="buffalo_sc",
            files=(_DET_500M, _W600K_MBF),
            archive_url=f"{INSIGHTFACE_RELEASE_URL}/buffalo_sc.zip",
            archive_sha256="57d31b56b6ffa911c8a73cfc1707c73cab76efe7f13b675a05223bf42de47c72",
            archive_size=14_969_382,
            embedding_dim=512,
            match_threshold=0.40,
            unknown_cluster_threshold=0.48,
            threshold_source=_INSIGHTFACE_THRESHOLDS,
            detector_file="det_500m.onnx",
            recognizer_file="w600k_mbf.onnx",
            hashes_verified=False,
            hash_source=_HASHES_FROM_PUBLIC_MANIFESTS,
            description="SCRFD-500MF detector + MobileFaceNet@WebFace600K recognizer (512-d), 16 MB",
            license=_INSIGHTFACE_LICENSE,
        ),
        ModelPack(
            name="buffalo_s",
            files=(
                _DET_500M,
                _W600K_MBF,
                # Same names as buffalo_l's files; no published hash was found for
                # buffalo_s's copies, so they rely on the archive hash + first-use record.
                ModelFile("1k3d68.onnx", "landmark_3d68", None, None, required=False),
                ModelFile("2d106det.onnx", "landmark_2d106", None, None, required=False),
                ModelFile("genderage.onnx", "genderage", None, None, required=False),
            ),
            archive_url=f"{INSIGHTFACE_RELEASE_URL}/buffalo_s.zip",
            archive_sha256="d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e",
            archive_size=127_607_557,
            embedding_dim=512,
            match_threshold=0.40,
            unknown_cluster_threshold=0.48,
            threshold_source=_INSIGHTFACE_THRESHOLDS,
            detector_file="det_500m.onnx",
            recognizer_file="w600k_mbf.onnx",
            hashes_verified=False,
            hash_source=_HASHES_FROM_PUBLIC_MANIFESTS,
            description=(
                "SCRFD-500MF detector + MobileFaceNet@WebFace600K recognizer (512-d) "
                "+ 2d106/3d68 landmarks + gender/age, 159 MB"
            ),
            license=_INSIGHTFACE_LICENSE,
        ),
        ModelPack(
            name="buffalo_l",
            files=(
                ModelFile(
                    "det_10g.onnx",
                    "detector",
                    "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
                    16_923_827,
                ),
                ModelFile(
                    "w600k_r50.onnx",
                    "recognizer",
                    "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
                    174_383_860,
                ),
                ModelFile(
                    "1k3d68.onnx",
                    "landmark_3d68",
                    "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc",
                    143_607_619,
                    required=False,
                ),
                ModelFile(
                    "2d106det.onnx",
                    "landmark_2d106",
                    "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
                    5_030_888,
                    required=False,
                ),
                ModelFile(
                    "genderage.onnx",
                    "genderage",
                    "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb",
                    1_322_532,
                    required=False,
                ),
            ),
            archive_url=f"{INSIGHTFACE_RELEASE_URL}/buffalo_l.zip",
            archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
            archive_size=288_621_354,
            embedding_dim=512,
            match_threshold=0.40,
            unknown_cluster_threshold=0.48,
            threshold_source=_INSIGHTFACE_THRESHOLDS,
            detector_file="det_10g.onnx",
            recognizer_file="w600k_r50.onnx",
            hashes_verified=False,
            hash_source=_HASHES_FROM_PUBLIC_MANIFESTS,
            description=(
                "SCRFD-10GF detector + ResNet50@WebFace600K recognizer (512-d) "
                "+ 2d106/3d68 landmarks + gender/age, 326 MB"
            ),
            license=_INSIGHTFACE_LICENSE,
        ),
        ModelPack(
            name="lite",
            files=(
                _DET_500M,
                ModelFile(
                    "mobilefacenet.onnx",
                    "recognizer",
                    "85cdeb7368ed6a1e9cbaaa6f283c6b2439f1fa533c17450bfdc7f357d285d5d1",
                    3_998_450,
                ),
            ),
            archive_url=None,  # not published anywhere: found through a models dir only
            archive_sha256=None,
            embedding_dim=128,
            # benchmarks/calibrate.py --trials 4 on ../shared/faces (lighting-standardised, low-res
            # enrollment copies): 132 impostor faces, max 0.37, none >= 0.375; genuine faces
            # 0.815 accepted at 0.40. Tracks may also be accepted by their centroid at
            # match_threshold - 0.05 with a 0.08 margin (rollcall/plugins/recognizer.py).
            match_threshold=0.40,
            unknown_cluster_threshold=0.45,
            # (validated end to end on 4 synthetic meetings: per-minute precision 1.0,
            # recall 0.92). tests/test_models.py pins this threshold_source text.
            # Re-measured at these values by benchmarks/calibrate.py --galleries 8 --frames 8
            # on the tuning half of ../shared/faces-lfw (222 enrolled people, 505 strangers,
            # classes of 20, a quarter masked): per face genuine accept 0.765, false accept
            # 0.013, misidentified 0; per track (8 samples) genuine accept 0.765, false
            # accept 0.013 (1 of 78 stranger tracks), misidentified 0; masked faces 0.36.
            threshold_source="calibrated on ../shared/faces, see benchmarks/calibrate.py",
            detector_file="det_500m.onnx",
            recognizer_file="mobilefacenet.onnx",
            hashes_verified=True,
            hash_source="../shared/models/SHA256SUMS (recomputed here, all OK)",
            description=(
                "SCRFD-500MF detector (= buffalo det_500m.onnx) + MobileFaceNet recognizer "
                "(128-d, ArcFace loss), 6.5 MB; offline folder pack"
            ),
            license=(
                "detector: insightface non-commercial research; recognizer weights: "
                "license unverified, treat as research-only"
            ),
        ),
    )
    return MappingProxyType({p.name: p for p in packs})


#: Read-only mapping name -> pack. Immutable: packs are frozen and the mapping is a proxy.
REGISTRY: Mapping[str, ModelPack] = _build_registry()


def known_packs() -> tuple[str, ...]:
    """Names of the registered packs, sorted."""
    return tuple(sorted(REGISTRY))


def models_dir_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder named by ``ROLLCALL_MODELS_DIR`` (``~`` expanded), or None when unset/empty."""
    value = (os.environ if environ is None else environ).get(ENV_MODELS_DIR, "").strip()
    return Path(value).expanduser() if value else None


def get_pack(
    name: str,
    *,
    models_dir: Path | None = None,
    match_threshold: float | None = None,
    unknown_cluster_threshold: float | None = None,
) -> ModelPack:
    """Look up a pack by name, or describe an unregistered pack folder.

    1. A registered name returns its registry entry. Thresholds given here (from
       config) replace the registry's, and ``threshold_source`` says so.
    2. Otherwise, if ``name`` is the path of a folder, or ``<models_dir>/<name>/``
       is a folder, it is an unregistered folder pack (see :func:`folder_pack`);
       ``match_threshold`` is then required.
    3. Otherwise :class:`ModelError` lists the known packs and where folders were looked for.
    """
    pack = REGISTRY.get(name)
    if pack is not None:
        return with_thresholds(pack, match_threshold, unknown_cluster_threshold)

    # A name counts as a path only when it looks like one ("/x", "./x", "~/x", "a/b"),
    # so that a bare unknown name is never resolved against the current directory.
    candidates: list[Path] = []
    looks_like_path = name.startswith(("~", ".")) or os.sep in name or "/" in name
    if looks_like_path:
        candidates.append(Path(name).expanduser())
    elif models_dir is not None and name:
        candidates.append(Path(models_dir).expanduser() / name)
    for folder in candidates:
        if folder.is_dir():
            return folder_pack(
                folder,
                match_threshold=match_threshold,
                unknown_cluster_threshold=unknown_cluster_threshold,
            )

    if candidates:
        where = f"{candidates[0]} is not a folder either"
    else:
        where = f"no models dir is set ({ENV_MODELS_DIR} or [models] dir in config.toml)"
    raise ModelError(
        f"unknown model pack {name!r}: known packs are {', '.join(known_packs())}; "
        f"{where}. Use one of the known names, or give the path of a folder holding a "
        "detector (det_*.onnx / *scrfd*.onnx) and a 112x112 recognizer .onnx, together with "
        "[models] match_threshold in config.toml"
    )


def with_thresholds(
    pack: ModelPack,
    match_threshold: float | None = None,
    unknown_cluster_threshold: float | None = None,
) -> ModelPack:
    """``pack`` with config thresholds applied (unchanged when both are None)."""
    if match_threshold is None and unknown_cluster_threshold is None:
        return pack
    was = f"registry: match {pack.match_threshold}, clusters {pack.unknown_cluster_threshold}"
    return dataclasses.replace(
        pack,
        match_threshold=pack.match_threshold if match_threshold is None else float(match_threshold),
        unknown_cluster_threshold=(
            pack.unknown_cluster_threshold
            if unknown_cluster_threshold is None
            else float(unknown_cluster_threshold)
        ),
        threshold_source=f"config.toml [models] (overrides {was}; {pack.threshold_source})",
    )


# --------------------------------------------------------------------------- folder packs

_DETECTOR_NAME_RE = re.compile(r"(^det_|scrfd|retinaface)", re.IGNORECASE)


@dataclass(frozen=True)
class OnnxSignature:
    """Input and output shapes of an ONNX graph (symbolic dims as strings, unknown as '?')."""

    inputs: tuple[tuple[int | str, ...], ...]
    outputs: tuple[tuple[int | str, ...], ...]

    @property
    def looks_like_detector(self) -> bool:
        """insightface's router rule: an image input and 5+ outputs (SCRFD has 6 or 9)."""
        return (
            len(self.inputs) == 1
            and len(self.inputs[0]) == 4
            and self.inputs[0][1] == 3
            and len(self.outputs) >= 5
        )

    @property
    def looks_like_recognizer(self) -> bool:
        """One Nx3x112x112 input and one NxD output (ArcFace-style embedding)."""
        return (
            len(self.inputs) == 1
            and len(self.inputs[0]) == 4
            and tuple(self.inputs[0][1:]) == (3, 112, 112)
            and len(self.outputs) == 1
            and len(self.outputs[0]) == 2
            and isinstance(self.outputs[0][1], int)
        )


def inspect_onnx(path: Path) -> OnnxSignature:
    """Read the input/output shapes of an ONNX file without running it."""
    import onnx  # a dependency of insightface; imported lazily because it is slow to import

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...
        raise ModelError(f"{path} is not a readable ONNX model: {exc}") from exc

    def shapes(values: Sequence[object]) -> tuple[tuple[int | str, ...], ...]:
        out = []
        for v in values:
            dims = v.type.tensor_type.shape.dim  # type: ignore[attr-defined]
            out.append(
                tuple(d.dim_value if d.dim_value > 0 else (d.dim_param or "?") for d in dims)
            )
        return tuple(out)

    init_names = {i.name for i in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in init_names]
    return OnnxSignature(inputs=shapes(real_inputs), outputs=shapes(model.graph.output))


def folder_pack(
    folder: Path,
    *,
    match_threshold: float | None,
    unknown_cluster_threshold: float | None = None,
) -> ModelPack:
    """Describe an unregistered folder of ONNX files as a :class:`ModelPack`.

    Detector: the single ``det_*.onnx`` / ``*scrfd*`` / ``*retinaface*`` file; if
    there is not exactly one, the single file whose graph has an image input and 5
    or more outputs (SCRFD has 6 or 9). Recognizer: the single remaining file with
    an Nx3x112x112 input and one NxD output; D is the embedding size. Hashes and
    sizes are unknown (``sha256=None``). ``match_threshold`` must come from config;
    ``unknown_cluster_threshold`` defaults to it.
    """
    folder = Path(folder).expanduser()
    onnx_files = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if not onnx_files:
        raise ModelError(
            f"model pack folder {folder} holds no .onnx files; it needs a face detector "
            "(e.g. det_500m.onnx) and a 112x112 face recognizer"
        )

    signatures: dict[Path, OnnxSignature] = {}

    def sig(p: Path) -> OnnxSignature:
        if p not in signatures:
            signatures[p] = inspect_onnx(p)
        return signatures[p]

    named = [p for p in onnx_files if _DETECTOR_NAME_RE.search(p.name)]
    detectors = named if len(named) == 1 else [p for p in onnx_files if sig(p).looks_like_detector]
    if len(detectors) != 1:
        found = ", ".join(p.name for p in detectors) or "none"
        raise ModelError(
            f"cannot tell which file in {folder} is the face detector (candidates: {found}); "
            "keep exactly one SCRFD detector named det_*.onnx in the folder"
        )
    detector = detectors[0]
    recognizers = [p for p in onnx_files if p != detector and sig(p).looks_like_recognizer]
    if len(recognizers) != 1:
        found = ", ".join(p.name for p in recognizers) or "none"
        raise ModelError(
            f"cannot tell which file in {folder} is the face recognizer (candidates with a "
            f"112x112 input and one embedding output: {found}); keep exactly one in the folder"
        )
    recognizer = recognizers[0]
    if match_threshold is None:
        raise ModelError(
            f"{folder} is not a registered model pack (known: {', '.join(known_packs())}), so "
            "rollcall has no matching threshold for its embeddings: set [models] match_threshold "
            "(and [recognition] unknown_cluster_threshold, else it is the match threshold) in "
            "config.toml, calibrated with benchmarks/calibrate.py"
        )
    dim = sig(recognizer).outputs[0][1]
    assert isinstance(dim, int)  # guaranteed by looks_like_recognizer
    files = tuple(
        ModelFile(
            p.name,
            "detector" if p == detector else "recognizer" if p == recognizer else "other",
            None,
            None,
            required=p in (detector, recognizer),
        )
        for p in onnx_files
    )
    cluster = match_threshold if unknown_cluster_threshold is None else unknown_cluster_threshold
    return ModelPack(
        name=folder.name,
        files=files,
        archive_url=None,
        archive_sha256=None,
        embedding_dim=dim,
        match_threshold=float(match_threshold),
        unknown_cluster_threshold=float(cluster),
        threshold_source="config.toml [models] (unregistered folder pack)",
        detector_file=detector.name,
        recognizer_file=recognizer.name,
        hashes_verified=False,
        hash_source="none: unregistered folder pack, files are only checked for existence",
        description=f"unregistered folder pack {folder}",
        local_dir=folder.resolve(),
    )
