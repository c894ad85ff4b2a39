"""Imports every domain's models so Base.metadata is complete (Alembic, tests)."""

from app.auth.models import ApiKey, User
from app.core.db import Base
from app.datasets.models import DatasetItem, DatasetVersion, HoldoutItem
from app.drift.models import DriftCheck
from app.ingest.models import Item, Prediction
from app.jobs.models import Job, JobMetric
from app.projects.models import Project
from app.registry.models import HoldoutScore, ModelVersion, StageChange

__all__ = [
    "ApiKey",
    "Base",
    "DatasetItem",
    "DatasetVersion",
    "DriftCheck",
    "HoldoutItem",
    "HoldoutScore",
    "Item",
    "Job",
    "JobMetric",
    "ModelVersion",
    "Prediction",
    "Project",
    "StageChange",
    "User",
]
