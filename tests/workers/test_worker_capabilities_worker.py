"""A REAL Celery worker advertises what it can run at start-up (its queues, every job kind whose packages it
imports, whether it has a GPU), refreshes it while it lives and withdraws it when it stops."""

from __future__ import annotations

import pytest

from app.jobs.models import WorkerCapability
from ml.training.kinds import JOB_KINDS
from tests.utils.labeled_data import client_as
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import worker_settings  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]


def rows(sessions) -> list[WorkerCapability]:
    with sessions() as session:
        return list(session.query(WorkerCapability))


def test_a_worker_advertises_its_kinds_and_queues_and_withdraws_them_on_shutdown(
    app,
    db,
    sessions,
    worker_settings,  # noqa: F811
):
    admin, _ = client_as(app, db, "admin")
    with celery_worker(worker_settings, queues="cpu,gpu"):
        [row] = wait_until(lambda: rows(sessions) or None, timeout_s=60, message="capabilities advertised")
        assert row.queues == ["cpu", "gpu"] and row.worker_id.startswith("test-")
        assert row.kinds == dict.fromkeys(JOB_KINDS)  # the test environment has every [train] package
        first_seen = row.seen_at
        wait_until(lambda: rows(sessions)[0].seen_at > first_seen or None, timeout_s=30, message="refreshed")
        kinds = admin.get("/api/v1/jobs/kinds").json()
        assert all(k["available"] and k["availability_note"] is None for k in kinds)  # a live worker runs all
    wait_until(lambda: rows(sessions) == [] or None, timeout_s=30, message="withdrawn")
