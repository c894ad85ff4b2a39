"""GET /metrics in the Prometheus text format, for admins and unscoped API keys with the `metrics` scope."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.auth import permissions as can
from app.deps import SessionDep
from app.metrics.collector import scrape_registry

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, dependencies=[Depends(can.read_metrics)])
def metrics(session: SessionDep) -> Response:
    """Scraped by Prometheus with `Authorization: Bearer <key with the metrics scope, made without --project>`."""
    return Response(generate_latest(scrape_registry(session)), media_type=CONTENT_TYPE_LATEST)
