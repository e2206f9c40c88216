"""Building the pluggy plugin manager: built-in plugins plus installed ones.

Built-ins are the detector, recognizer and attendance plugins; third-party
plugins register through the ``rollcall.plugins`` entry-point group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pluggy

from pipeline import hookspecs
from pipeline.config import Config

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "rollcall.plugins"


@dataclass(frozen=True, slots=True)
class FaceModels:
    """The resolved model files and the thresholds that belong to them."""

    pack_name: str
    detector_path: Path
    recognizer_path: Path
    match_threshold: float
    cluster_threshold: float

    @property
    def model_key(self) -> str:
        """Names the embedding space; embeddings from another key are never mixed in."""
        size = self.recognizer_path.stat().st_size
        return f"{self.pack_name}/{self.recognizer_path.name}#{size}"


def resolve_face_models(config: Config, *, progress: bool = True) -> FaceModels:
    """Find (or download) the configured model pack; raises ``models.ModelError``."""
    from models import get_pack, resolve_pack

    m = config.models
    models_dir = Path(m.dir).expanduser() if m.dir else None
    pack = get_pack(
        m.pack,
        models_dir=models_dir,
        match_threshold=m.match_threshold or None,
        unknown_cluster_threshold=config.recognition.unknown_cluster_threshold or None,
    )
    resolved = resolve_pack(
        pack,
        models_dir=models_dir,
        cache_dir=Path(m.cache_dir).expanduser(),
        allow_download=m.allow_download,
        download_base_url=m.download_base_url,
        progress=progress,
    )
    return FaceModels(
        pack_name=pack.name,
        detector_path=resolved.detector_path,
        recognizer_path=resolved.recognizer_path,
        match_threshold=pack.match_threshold,
        cluster_threshold=pack.unknown_cluster_threshold,
    )


def builtin_plugins(config: Config, models: FaceModels) -> list[object]:
    from plugins.attendance import AttendancePlugin
    from plugins.detector import DetectorPlugin
    from plugins.recognizer import RecognizerPlugin

    a, r = config.analysis, config.recognition
    return [
        DetectorPlugin(
            models.detector_path,
            threshold=a.det_threshold,
            min_face_px=a.min_face_px,
            max_side=a.max_side,
            threads=config.models.threads,
        ),
        RecognizerPlugin(
            models.recognizer_path,
            threshold=models.match_threshold,
            min_track_samples=r.min_track_samples,
            vote_share=r.vote_share,
            threads=config.models.threads,
        ),
        AttendancePlugin(
            min_seconds_per_minute=config.attendance.min_seconds_per_minute,
            absent_below_pct=config.attendance.absent_below_pct,
            late_after_pct=config.attendance.late_after_pct,
            left_early_pct=config.attendance.left_early_pct,
            max_gap_s=r.max_gap_s,
        ),
    ]


def make_plugin_manager(
    config: Config, models: FaceModels, *, entry_points: bool = True
) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for plugin in builtin_plugins(config, models):
        pm.register(plugin, name=plugin.name)
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a broken third-party plugin must not stop the pipeline
            log.error("could not load plugins from entry points: %s", exc)
    return pm
