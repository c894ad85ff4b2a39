"""GET /metrics in the Prometheus text format, for admins and API keys with the `metrics` scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import permissions as can
from app.auth.models import ApiKey
from app.core.errors import ApiError
from app.deps import SessionDep
from app.metrics.collector import scrape_registry

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response)
def metrics(caller: Annotated[can.Caller, Depends(can.read_metrics)], session: SessionDep) -> Response:
    """Scraped by Prometheus with `Authorization: Bearer <key with the metrics scope>`."""
    if isinstance(caller, ApiKey) and caller.project_id is not None:
        raise ApiError(403, "X-API-Key", "metrics cover every project: use a key made without --project")
    body = generate_latest(scrape_registry(session))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
