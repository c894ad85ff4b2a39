"""Recording what happened: decorators for the ingest, lease and annotation services, and domain events."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from app.metrics import definitions as m

F = TypeVar("F", bound=Callable[..., Any])


def counts_ingest(fn: F) -> F:
    """Counts the accepted, rejected items and new predictions of each `ingest_batch(project=...)` call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        summary = fn(*args, **kwargs)
        project = kwargs["project"].name
        m.INGEST_ITEMS.labels(project).inc(summary.accepted)
        m.INGEST_REJECTED.labels(project).inc(len(summary.errors))
        m.INGEST_PREDICTIONS.labels(project).inc(summary.predictions_created)
        return summary

    return wrapper  # type: ignore[return-value]


def times_lease(fn: F) -> F:
    """Observes how long each lease (`lease_next_item` or `lease_and_describe`, `project=...`) took."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        m.LEASE_SECONDS.labels(kwargs["project"].name).observe(time.perf_counter() - start)
        return result

    return wrapper  # type: ignore[return-value]


def counts_annotation(fn: F) -> F:
    """Counts each annotation `submit_annotation(project=...)` stored."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        m.ANNOTATIONS.labels(kwargs["project"].name).inc()
        return result

    return wrapper  # type: ignore[return-value]


def record_event(event: str, project: str, data: dict[str, Any]) -> None:
    """Domain events (the ones webhooks carry), recorded once their transaction committed."""
    if event == "job.finished":
        duration = data["job"].get("duration_s")
        if duration is not None:
            m.JOB_SECONDS.labels(data["job"]["kind"], data["job"]["status"]).observe(max(duration, 0.0))
    elif event in ("model.promoted", "model.rolled_back"):
        m.STAGE_CHANGES.labels(project, event).inc()
    elif event == "drift.alarm":
        m.DRIFT_ALARMS.labels(project, data["kind"]).inc()


def record_webhook_attempt(event: str, outcome: str) -> None:
    m.WEBHOOK_ATTEMPTS.labels(event, outcome).inc()
