"""Webhook delivery (cpu queue): one signed POST per try, retried with exponential back-off, every try logged."""

from __future__ import annotations

import logging
import time

import httpx

from app.core.config import Settings
from app.core.db import session_scope
from app.webhooks import service
from app.webhooks.signing import body_bytes, signed_headers
from workers.celery_app import celery_app
from workers.context import worker_sessionmaker, worker_settings

log = logging.getLogger("hardcase.webhooks")
ERROR_CHARS = 500
RESEND_GRACE_S = 300.0


def post_signed(attempt: service.PlannedAttempt, settings: Settings) -> tuple[int | None, str | None, int]:
    """(status code or None, error or None, milliseconds); never follows redirects to another address."""
    body = body_bytes(attempt.payload)
    headers = signed_headers(attempt.secret, body, event=attempt.event, delivery_id=attempt.delivery_id)
    start = time.perf_counter()
    try:
        response = httpx.post(
            attempt.url,
            content=body,
            headers=headers,
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS], _ms_since(start)
    error = None if response.is_success else (response.text or response.reason_phrase)[:ERROR_CHARS]
    return response.status_code, error, _ms_since(start)


def _ms_since(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)


def attempt_delivery(*, sessions, delivery_id: int, settings: Settings) -> float | None:
    """One try of a delivery; returns the back-off before the next try, None when it is finished."""
    with session_scope(sessions) as session:
        attempt = service.plan_attempt(db_session=session, delivery_id=delivery_id)
    if attempt is None:
        return None
    status_code, error, duration_ms = post_signed(attempt, settings)  # no transaction open meanwhile
    with session_scope(sessions) as session:
        wait = service.record_attempt(
            db_session=session,
            attempt=attempt,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            settings=settings,
        )
    log.info("webhook delivery %s try %s: %s", delivery_id, attempt.number, status_code or error)
    return wait


@celery_app.task(name=service.DELIVER_TASK, bind=True, max_retries=None)
def deliver_webhook(self, delivery_id: int) -> None:
    wait = attempt_delivery(
        sessions=worker_sessionmaker(), delivery_id=delivery_id, settings=worker_settings()
    )
    if wait is not None:
        raise self.retry(countdown=wait)


@celery_app.task(name="hardcase.resend_overdue_webhooks")
def resend_overdue_webhooks() -> int:
    """Deliveries whose task never reached the broker (it was down at commit) or was lost are sent again."""
    with session_scope(worker_sessionmaker()) as session:
        overdue = service.overdue_deliveries(db_session=session, grace_s=RESEND_GRACE_S)
    for delivery_id in overdue:
        service.enqueue_delivery(worker_settings(), delivery_id)
    return len(overdue)
