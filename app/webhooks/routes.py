"""Webhook endpoints of a project (admins): CRUD, a test event, and the delivery log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from app.auth import permissions as can
from app.deps import IdPath, LimitQuery, ProjectDep, SessionDep
from app.webhooks import service
from app.webhooks.schemas import DeliveryRead, WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate

router = APIRouter(prefix="/api/v1/projects/{project}/webhooks", tags=["webhooks"])


@router.get("", response_model=list[WebhookRead], dependencies=[Depends(can.admin_project)])
def list_webhooks(project: ProjectDep, session: SessionDep) -> list[dict]:
    return [service.endpoint_read(e) for e in service.list_endpoints(db_session=session, project=project)]


@router.post("", response_model=WebhookCreated, status_code=201)
def create_webhook(
    webhook_in: WebhookCreate, user: can.ProjectAdmin, project: ProjectDep, session: SessionDep
) -> dict:
    """The answer carries the signing secret, once: the receiver verifies every event with it."""
    endpoint = service.create_endpoint(
        db_session=session, project=project, webhook_in=webhook_in, user_id=user.id
    )
    session.commit()
    return {**service.endpoint_read(endpoint), "secret": endpoint.secret}


@router.get("/deliveries", response_model=list[DeliveryRead], dependencies=[Depends(can.admin_project)])
def list_project_deliveries(project: ProjectDep, session: SessionDep, limit: LimitQuery = 50) -> list[dict]:
    return service.list_deliveries(db_session=session, project=project, limit=limit)


@router.get("/{webhook_id}", response_model=WebhookRead, dependencies=[Depends(can.admin_project)])
def read_webhook(webhook_id: IdPath, project: ProjectDep, session: SessionDep) -> dict:
    return service.endpoint_read(
        service.get_endpoint(db_session=session, project=project, endpoint_id=webhook_id)
    )


@router.patch("/{webhook_id}", response_model=WebhookRead, dependencies=[Depends(can.admin_project)])
def update_webhook(
    webhook_id: IdPath, webhook_in: WebhookUpdate, project: ProjectDep, session: SessionDep
) -> dict:
    endpoint = service.get_endpoint(db_session=session, project=project, endpoint_id=webhook_id)
    service.update_endpoint(db_session=session, endpoint=endpoint, webhook_in=webhook_in)
    session.commit()
    return service.endpoint_read(endpoint)


@router.delete("/{webhook_id}", status_code=204, dependencies=[Depends(can.admin_project)])
def delete_webhook(webhook_id: IdPath, project: ProjectDep, session: SessionDep) -> Response:
    endpoint = service.get_endpoint(db_session=session, project=project, endpoint_id=webhook_id)
    service.delete_endpoint(db_session=session, endpoint=endpoint)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/test",
    response_model=DeliveryRead,
    status_code=202,
    dependencies=[Depends(can.admin_project)],
)
def send_test_event(webhook_id: IdPath, project: ProjectDep, session: SessionDep) -> dict:
    """Queues a signed `webhook.test` event for this endpoint; the worker posts it (watch the delivery log)."""
    endpoint = service.get_endpoint(db_session=session, project=project, endpoint_id=webhook_id)
    delivery = service.send_test_event(db_session=session, project=project, endpoint=endpoint)
    session.commit()
    return service.delivery_read(delivery, [])


@router.get(
    "/{webhook_id}/deliveries", response_model=list[DeliveryRead], dependencies=[Depends(can.admin_project)]
)
def list_deliveries(
    webhook_id: IdPath, project: ProjectDep, session: SessionDep, limit: LimitQuery = 50
) -> list[dict]:
    service.get_endpoint(db_session=session, project=project, endpoint_id=webhook_id)
    return service.list_deliveries(db_session=session, project=project, endpoint_id=webhook_id, limit=limit)
