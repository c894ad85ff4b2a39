"""Webhook endpoints (admin CRUD), emitting events into a delivery log in the caller's transaction, and the
bookkeeping of the worker's HTTP attempts. The API never posts to a webhook URL; only the worker does."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.after_commit import on_commit
from app.core.config import Settings, get_settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.jobs.models import Job
from app.metrics import events as metrics_events
from app.projects.models import Project
from app.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    TEST_EVENT,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.webhooks.schemas import WebhookCreate, WebhookUpdate

log = logging.getLogger("hardcase.webhooks")

DELIVER_TASK = "hardcase.deliver_webhook"
SECRET_PREFIX = "whsec_"
HINT_CHARS = 10
STAGE_EVENTS = {"promote": "model.promoted", "rollback": "model.rolled_back"}


# --- endpoints ----------------------------------------------------------------------------------------------


def endpoint_read(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events or []),
        "description": endpoint.description,
        "is_active": endpoint.is_active,
        "secret_hint": endpoint.secret[:HINT_CHARS] + "…",
        "created_at": endpoint.created_at,
    }


def create_endpoint(
    *, db_session: Session, project: Project, webhook_in: WebhookCreate, user_id: int | None
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        project_id=project.id,
        url=webhook_in.url,
        secret=SECRET_PREFIX + secrets.token_urlsafe(32),
        events=webhook_in.events,
        description=webhook_in.description,
        created_by=user_id,
    )
    db_session.add(endpoint)
    db_session.flush()
    return endpoint


def list_endpoints(*, db_session: Session, project: Project) -> list[WebhookEndpoint]:
    query = (
        select(WebhookEndpoint).where(WebhookEndpoint.project_id == project.id).order_by(WebhookEndpoint.id)
    )
    return list(db_session.scalars(query))


def get_endpoint(*, db_session: Session, project: Project, endpoint_id: int) -> WebhookEndpoint:
    found = db_session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.project_id == project.id
        )
    )
    if found is None:
        raise ApiError(404, "webhook_id", f"project {project.name!r} has no webhook {endpoint_id}")
    return found


def update_endpoint(
    *, db_session: Session, endpoint: WebhookEndpoint, webhook_in: WebhookUpdate
) -> WebhookEndpoint:
    for field, value in webhook_in.model_dump(exclude_unset=True).items():
        if value is None:
            raise ApiError(422, field, f"{field} may not be null")
        setattr(endpoint, field, value)
    db_session.flush()
    return endpoint


def delete_endpoint(*, db_session: Session, endpoint: WebhookEndpoint) -> None:
    db_session.delete(endpoint)
    db_session.flush()


# --- emitting -----------------------------------------------------------------------------------------------


def _settings_of(db_session: Session) -> Settings:
    """The API's sessions carry its settings (tests run apps with different brokers); workers use the env."""
    return db_session.info.get("settings") or get_settings()


def enqueue_delivery(settings: Settings, delivery_id: int, countdown: float | None = None) -> None:
    from app.jobs.dispatch import PUBLISH_RETRY_POLICY, celery_client

    celery_client(settings).send_task(
        DELIVER_TASK,
        args=[delivery_id],
        queue="cpu",
        countdown=countdown,
        ignore_result=True,
        retry_policy=PUBLISH_RETRY_POLICY,  # bounded: requests emit events
    )


def _enqueue_after_commit(db_session: Session, delivery_ids: list[int]) -> None:
    settings = _settings_of(db_session)

    def send() -> None:
        for delivery_id in delivery_ids:
            try:
                enqueue_delivery(settings, delivery_id)
            except Exception as exc:  # kombu raises several types; the sweep resends pending deliveries
                log.warning(
                    "webhook delivery %s not enqueued (%s); the sweep will resend it", delivery_id, exc
                )

    on_commit(db_session, send)


def _envelope(event: str, project_name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "event": event,
        "created_at": utcnow().isoformat(),
        "project": project_name,
        "data": data,
    }


def _queue_deliveries(
    db_session: Session, endpoints: list[WebhookEndpoint], envelope: dict[str, Any]
) -> list[WebhookDelivery]:
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint.id,
            project_id=endpoint.project_id,
            event=envelope["event"],
            event_id=envelope["id"],
            payload=envelope,
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
        for endpoint in endpoints
    ]
    if deliveries:
        db_session.add_all(deliveries)
        db_session.flush()
        _enqueue_after_commit(db_session, [d.id for d in deliveries])
    return deliveries


def emit(*, db_session: Session, project_id: int, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Records `event` for every active endpoint of the project subscribed to it, in the caller's transaction;
    the deliveries are handed to the worker once that transaction commits (nothing is sent if it rolls back)."""
    project_name = db_session.scalar(select(Project.name).where(Project.id == project_id)) or ""
    on_commit(db_session, lambda: metrics_events.record_event(event, project_name, data))
    endpoints = [
        endpoint
        for endpoint in db_session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id, WebhookEndpoint.is_active)
        )
        if event in (endpoint.events or [])
    ]
    return _queue_deliveries(db_session, endpoints, _envelope(event, project_name, data))


def send_test_event(*, db_session: Session, project: Project, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` event to this endpoint alone, whatever it subscribes to (the dashboard's button)."""
    data = {"message": "a test event from Hardcase", "webhook_id": endpoint.id}
    return _queue_deliveries(db_session, [endpoint], _envelope(TEST_EVENT, project.name, data))[0]


def emit_model_stage(*, db_session: Session, model, action: str, replaced=None) -> None:
    """model.promoted / model.rolled_back, from the registry's stage change."""
    from app.registry.service import artifact_url

    project = db_session.get(Project, model.project_id)
    model_data = {
        "name": model.name,
        "version": model.version,
        "kind": model.kind,
        "threshold": model.threshold,
        "artifact_url": artifact_url(project, model),
        "artifact_sha256": model.artifact_sha256,
    }
    data = {"model": model_data, "replaced_version": replaced.version if replaced is not None else None}
    emit(db_session=db_session, project_id=model.project_id, event=STAGE_EVENTS[action], data=data)


def emit_job_finished(*, db_session: Session, job_id: int) -> None:
    """job.finished with the job's final state (read back from the row, whichever way it ended)."""
    from app.registry.models import ModelVersion

    job = db_session.execute(
        select(Job.project_id, Job.kind, Job.status, Job.error, Job.started_at, Job.finished_at).where(
            Job.id == job_id
        )
    ).one_or_none()
    if job is None:
        return
    started, finished = _aware(job.started_at), _aware(job.finished_at)
    version = db_session.scalar(select(ModelVersion.version).where(ModelVersion.job_id == job_id))
    data = {
        "job": {
            "id": job_id,
            "kind": job.kind,
            "status": job.status,
            "error": _last_line(job.error),
            "started_at": started.isoformat() if started else None,
            "finished_at": finished.isoformat() if finished else None,
            "duration_s": (finished - started).total_seconds() if started and finished else None,
        },
        "model_version": version,
    }
    emit(db_session=db_session, project_id=job.project_id, event="job.finished", data=data)


def emit_drift_alarms(*, db_session: Session, checks: list) -> None:
    """drift.alarm for each check that starts an alarm: the previous check of its model and kind did not."""
    from app.drift.models import DriftCheck

    for check in checks:
        if not check.is_drift:
            continue
        previous = db_session.scalar(
            select(DriftCheck.is_drift)
            .where(
                DriftCheck.project_id == check.project_id,
                DriftCheck.model == check.model,
                DriftCheck.kind == check.kind,
                DriftCheck.id != check.id,
            )
            .order_by(DriftCheck.created_at.desc(), DriftCheck.id.desc())
            .limit(1)
        )
        if previous:
            continue  # already alarming: one event per alarm, not one per check
        data = {
            "check_id": check.id,
            "model": check.model,
            "kind": check.kind,
            "method": check.method,
            "p_value": check.p_value,
            "threshold": check.threshold,
            "distance": check.distance,
            "n_reference": check.n_reference,
            "n_recent": check.n_recent,
            "boosted_items": check.boosted_items,
        }
        emit(db_session=db_session, project_id=check.project_id, event="drift.alarm", data=data)


def _last_line(text: str | None) -> str | None:
    """A traceback's last line says what failed; the log page has the rest."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else None


def _aware(moment):
    from app.jobs.service import as_utc

    return as_utc(moment)


# --- the delivery log ---------------------------------------------------------------------------------------


def delivery_read(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    row = {c.name: getattr(delivery, c.name) for c in WebhookDelivery.__table__.columns}
    row["attempt_log"] = attempts
    return row


def list_deliveries(
    *, db_session: Session, project: Project, endpoint_id: int | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(WebhookDelivery).where(WebhookDelivery.project_id == project.id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    deliveries = list(db_session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = db_session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(attempts))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        for attempt in rows:
            attempts[attempt.delivery_id].append(attempt)
    return [delivery_read(d, attempts[d.id]) for d in deliveries]


# --- the worker's side --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedAttempt:
    delivery_id: int
    number: int
    url: str
    secret: str
    event: str
    payload: dict[str, Any]


def plan_attempt(*, db_session: Session, delivery_id: int) -> PlannedAttempt | None:
    """What to send next for a pending delivery; None when it is finished, gone, or its endpoint was disabled."""
    delivery = db_session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status != PENDING:
        return None
    endpoint = db_session.get(WebhookEndpoint, delivery.endpoint_id)
    if not endpoint.is_active and delivery.event != TEST_EVENT:
        delivery.status, delivery.finished_at = FAILED, utcnow()
        delivery.last_error = "the endpoint was disabled before delivery"
        return None
    return PlannedAttempt(
        delivery.id,
        delivery.attempts + 1,
        endpoint.url,
        endpoint.secret,
        delivery.event,
        dict(delivery.payload),
    )


def backoff_s(settings: Settings, attempts_made: int) -> float:
    """Exponential back-off: base, 2×base, 4×base … capped (kept below the broker's visibility timeout)."""
    cap = min(settings.webhook_retry_max_s, settings.visibility_timeout_s * 0.9)
    return min(settings.webhook_retry_base_s * 2 ** (attempts_made - 1), cap)


def record_attempt(
    *,
    db_session: Session,
    attempt: PlannedAttempt,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    settings: Settings,
) -> float | None:
    """Logs one HTTP try; returns the seconds until the next one, or None when the delivery is finished."""
    ok = status_code is not None and 200 <= status_code < 300
    db_session.add(
        WebhookAttempt(
            delivery_id=attempt.delivery_id,
            number=attempt.number,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    last = ok or attempt.number >= settings.webhook_max_attempts
    wait = None if last else backoff_s(settings, attempt.number)
    values: dict[str, Any] = {
        "attempts": attempt.number,
        "last_status_code": status_code,
        "last_error": error,
        "next_attempt_at": None if last else utcnow() + timedelta(seconds=wait),
    }
    if last:
        values.update(status=SUCCEEDED if ok else FAILED, finished_at=utcnow())
    db_session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == attempt.delivery_id, WebhookDelivery.status == PENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    outcome = "succeeded" if ok else ("failed" if last else "retried")
    on_commit(db_session, lambda: metrics_events.record_webhook_attempt(attempt.event, outcome))
    return wait


def overdue_deliveries(*, db_session: Session, grace_s: float) -> list[int]:
    """Pending deliveries whose next try is long past due: their task was lost (broker down at commit time)."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    query = select(WebhookDelivery.id).where(
        WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at < cutoff
    )
    return list(db_session.scalars(query.order_by(WebhookDelivery.id).limit(500)))
