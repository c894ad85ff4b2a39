"""Drift API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DriftCheckRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    id: int
    model: str
    kind: str
    method: str
    reference_start: datetime
    reference_end: datetime
    recent_start: datetime
    recent_end: datetime
    n_reference: int
    n_recent: int
    p_value: float
    threshold: float
    distance: float | None
    is_drift: bool
    boosted_items: int
    created_at: datetime


class DriftReport(BaseModel):
    """The current state (newest check per model and kind), the alarms among them and the recent history."""

    project: str
    latest: list[DriftCheckRead]
    alarms: list[DriftCheckRead]
    history: list[DriftCheckRead]
