"""What a scrape returns: the in-process (or multiprocess) metrics plus gauges read from the database."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.drift.models import DriftCheck
from app.jobs.models import Job
from app.projects.models import Project
from app.queue.models import STATUSES as QUEUE_STATUSES
from app.queue.models import Hardness

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class DatabaseCollector:
    """Queue, job and drift state per project, counted by three grouped queries at scrape time, so every
    API process and worker agrees (the database is the truth)."""

    def __init__(self, db_session: Session) -> None:
        self.db_session = db_session

    def collect(self) -> Iterator[Metric]:
        names = dict(self.db_session.execute(select(Project.id, Project.name)).tuples().all())
        yield from self._queue(names)
        yield from self._jobs(names)
        yield from self._drift(names)

    def _queue(self, names: dict[int, str]) -> Iterator[Metric]:
        counts = {(pid, status): 0 for pid in names for status in QUEUE_STATUSES}
        rows = self.db_session.execute(
            select(Hardness.project_id, Hardness.status, func.count()).group_by(
                Hardness.project_id, Hardness.status
            )
        )
        counts.update({(pid, status): n for pid, status, n in rows if pid in names})
        depth = GaugeMetricFamily(
            "hardcase_queue_depth", "Items waiting for a label (pending)", labels=["project"]
        )
        leased = GaugeMetricFamily(
            "hardcase_queue_leased", "Items leased to an annotator now", labels=["project"]
        )
        items = GaugeMetricFamily(
            "hardcase_queue_items", "Ranked items by queue status", labels=["project", "status"]
        )
        for (pid, status), n in sorted(counts.items()):
            items.add_metric([names[pid], status], n)
            if status == "pending":
                depth.add_metric([names[pid]], n)
            elif status == "leased":
                leased.add_metric([names[pid]], n)
        yield from (depth, leased, items)

    def _jobs(self, names: dict[int, str]) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "hardcase_jobs", "Training jobs by state", labels=["project", "kind", "state"]
        )
        rows = self.db_session.execute(
            select(Job.project_id, Job.kind, Job.status, func.count()).group_by(
                Job.project_id, Job.kind, Job.status
            )
        )
        for pid, kind, status, n in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
            if pid in names:
                jobs.add_metric([names[pid], kind, status], n)
        yield jobs

    def _drift(self, names: dict[int, str]) -> Iterator[Metric]:
        latest = (
            select(func.max(DriftCheck.id))
            .group_by(DriftCheck.project_id, DriftCheck.model, DriftCheck.kind)
            .scalar_subquery()
        )
        rows = self.db_session.execute(
            select(DriftCheck.project_id, func.count())
            .where(DriftCheck.id.in_(latest), DriftCheck.is_drift)
            .group_by(DriftCheck.project_id)
        )
        alarming = dict(rows.tuples().all())
        gauge = GaugeMetricFamily(
            "hardcase_drift_alarming", "Models and tests whose latest drift check alarms", labels=["project"]
        )
        for pid, name in sorted(names.items()):
            gauge.add_metric([name], alarming.get(pid, 0))
        yield gauge


def in_multiprocess_mode() -> bool:
    """True when this process writes its metrics to PROMETHEUS_MULTIPROC_DIR (decided at import time)."""
    return values.ValueClass is not values.MutexValue


class _ProcessMetrics:
    """This process's metrics, minus families the multiprocess files already report."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if family.name not in self.skip:
                yield family


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def scrape_registry(db_session: Session) -> CollectorRegistry:
    """A registry for one scrape. With PROMETHEUS_MULTIPROC_DIR set, the files of every process writing there
    (API workers, Celery's prefork children) are merged; this process's own metrics come from memory unless it
    writes to the files too."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    shared: list[Metric] = []
    if directory and os.path.isdir(directory):
        shared = list(MultiProcessCollector(None, path=directory).collect())
        registry.register(_Families(shared))
    if not in_multiprocess_mode():
        registry.register(_ProcessMetrics({family.name for family in shared}))
    registry.register(DatabaseCollector(db_session))
    return registry
