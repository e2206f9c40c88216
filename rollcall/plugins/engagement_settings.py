"""The engagement analyzer's settings, ``[plugins.engagement]``: the score's weights and
thresholds (no heavy imports: config reads it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollcall.plugin_settings import PluginSettings


class EngagementSettings(PluginSettings):
    """The engagement analyzer plugin: the score's weights and thresholds."""

    weight_visible: float = Field(0.4, ge=0.0, le=1.0)
    weight_facing: float = Field(0.4, ge=0.0, le=1.0)
    weight_stable: float = Field(0.2, ge=0.0, le=1.0)
    max_yaw_deg: float = Field(30.0, gt=0.0, le=90.0)
    max_pitch_deg: float = Field(25.0, gt=0.0, le=90.0)
    stable_motion: float = Field(0.25, gt=0.0, le=10.0)  # face widths per sample
    engaged_min_score: float = Field(60.0, ge=0.0, le=100.0)
    partly_min_score: float = Field(30.0, ge=0.0, le=100.0)
    head_pose: Literal["auto", "fsanet", "keypoints"] = "auto"

    def level(self, score: float) -> str:
        if score >= self.engaged_min_score:
            return "engaged"
        if score >= self.partly_min_score:
            return "partly"
        return "not engaged"

    def score(self, visible: float, facing: float, stable: float) -> float:
        w = self.weight_visible + self.weight_facing + self.weight_stable
        total = self.weight_visible * visible + self.weight_facing * facing
        return round(100.0 * (total + self.weight_stable * stable) / w, 1)
