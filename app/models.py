"""Imports every domain's models so Base.metadata is complete (Alembic, tests)."""

from app.auth.models import ApiKey, User
from app.core.db import Base
from app.drift.models import DriftCheck
from app.ingest.models import Item, Prediction
from app.projects.models import Project

__all__ = ["ApiKey", "Base", "DriftCheck", "Item", "Prediction", "Project", "User"]
