"""The emotion analyzer's settings, ``[plugins.emotion]`` (no heavy imports: config reads it)."""

from __future__ import annotations

from pydantic import Field

from rollcall.plugin_settings import PluginSettings


class EmotionSettings(PluginSettings):
    """The emotion analyzer plugin (disabled unless an admin enables it)."""

    min_face_px: int = Field(40, ge=16, le=1024)  # smaller faces are skipped
    min_confidence: float = Field(0.4, ge=0.0, le=1.0)  # top probability below this: skipped
