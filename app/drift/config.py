"""Drift-check settings, read from HARDCASE_DRIFT_* env vars; the defaults are the documented ones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DriftSettings(BaseSettings):
    """Windows are either the latest N predictions of a model (`count`) or the latest hours (`time`);
    the reference window is the one right before the recent window, so a check answers "did the
    scores of this model change lately?"."""

    model_config = SettingsConfigDict(env_prefix="HARDCASE_DRIFT_", env_file=".env", extra="ignore")

    window: Literal["count", "time"] = Field("count", description="count: latest N predictions; time: hours")
    recent_size: int = Field(500, ge=2, description="count mode: predictions in the recent window")
    reference_size: int = Field(2000, ge=2, description="count mode: predictions in the reference window")
    recent_hours: float = Field(24.0, gt=0, description="time mode: length of the recent window")
    reference_hours: float = Field(168.0, gt=0, description="time mode: length of the reference window")
    max_window: int = Field(5000, ge=2, description="time mode: at most this many (latest) rows per window")
    p_value: float = Field(0.05, gt=0, lt=1, description="alarm when the test's p-value is below this")
    min_samples: int = Field(50, ge=2, description="skip a check while either window holds fewer rows")
    embedding_max: int = Field(300, ge=2, description="rows per window for the MMD test (cost is quadratic)")
    embedding_permutations: int = Field(100, ge=10, description="MMD permutation-test samples")
    priority_boost: float = Field(
        0.5, ge=0, description="added once to the priority of pending items scored in a drifting window"
    )
    interval_s: int = Field(3600, ge=10, description="how often the worker's beat runs the checks")

    @model_validator(mode="after")
    def _check_sizes(self) -> DriftSettings:
        if self.min_samples > min(self.recent_size, self.reference_size):
            raise ValueError("min_samples: must not exceed recent_size and reference_size")
        return self
