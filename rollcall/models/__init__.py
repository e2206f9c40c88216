"""Face-model packs: what rollcall knows about them and where their files are.

No weights live in this package. :mod:`rollcall.models.registry` describes the known
packs (files, hashes, embedding size, thresholds and where those numbers come
from); :mod:`rollcall.models.resolve` finds a pack in the configured models dir or the
insightface cache, or downloads it, and verifies it.

Typical use::

    from rollcall.models import get_pack, models_dir_from_env, resolve_pack

    pack = get_pack("lite", match_threshold=cfg_threshold)  # thresholds from config, if any
    resolved = resolve_pack(pack, models_dir=models_dir_from_env(), allow_download=False)
    FaceAnalysis(name=str(resolved.root), providers=["CPUExecutionProvider"])
"""

from rollcall.models.errors import ModelError
from rollcall.models.registry import (
    ENV_MODELS_DIR,
    ENV_MODELS_PACK,
    INSIGHTFACE_MODEL_ZOO_URL,
    INSIGHTFACE_RELEASE_URL,
    REGISTRY,
    ModelFile,
    ModelPack,
    folder_pack,
    get_pack,
    known_packs,
    models_dir_from_env,
    with_thresholds,
)
from rollcall.models.resolve import (
    ResolvedPack,
    default_cache_dir,
    packs_in_models_dir,
    resolve_pack,
)

__all__ = [
    "ENV_MODELS_DIR",
    "ENV_MODELS_PACK",
    "INSIGHTFACE_MODEL_ZOO_URL",
    "INSIGHTFACE_RELEASE_URL",
    "REGISTRY",
    "ModelError",
    "ModelFile",
    "ModelPack",
    "ResolvedPack",
    "default_cache_dir",
    "folder_pack",
    "get_pack",
    "known_packs",
    "models_dir_from_env",
    "packs_in_models_dir",
    "resolve_pack",
    "with_thresholds",
]
