"""Imports every domain's models so Base.metadata is complete (Alembic, tests)."""

from app.auth.models import ApiKey, LoginFailure, User, UserSession
from app.core.db import Base
from app.datasets.models import DatasetItem, DatasetVersion, HoldoutItem
from app.drift.models import DriftCheck
from app.ingest.models import Item, Prediction
from app.jobs.models import Job, JobMetric, WorkerCapability
from app.labels.models import Annotation, Flag, Review
from app.loop.models import LoopRun, RetrainingPolicy
from app.lsbackend.models import LabelStudioAnnotation
from app.projects.models import Project
from app.queue.models import Hardness, QueueCursor, QueueSkip
from app.registry.models import HoldoutScore, ModelVersion, StageChange
from app.users.models import ProjectMember
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "Annotation",
    "ApiKey",
    "Base",
    "DatasetItem",
    "DatasetVersion",
    "DriftCheck",
    "Flag",
    "Hardness",
    "HoldoutItem",
    "HoldoutScore",
    "Item",
    "Job",
    "JobMetric",
    "WorkerCapability",
    "LabelStudioAnnotation",
    "LoginFailure",
    "LoopRun",
    "ModelVersion",
    "Prediction",
    "Project",
    "ProjectMember",
    "QueueCursor",
    "QueueSkip",
    "RetrainingPolicy",
    "Review",
    "StageChange",
    "User",
    "UserSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
