"""The FastAPI application factory: one app per settings object (tests build several)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.auth.permissions import public
from app.core.blobs import BlobStore
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_sessionmaker
from app.core.errors import install_error_handlers
from app.core.limits import RequestLimits
from app.core.openapi import install_error_documentation
from app.core.security_headers import install_security_headers
from app.dashboard.routes import router as dashboard_router
from app.datasets.routes import router as datasets_router
from app.drift.routes import router as drift_router
from app.ingest.routes import items_router
from app.ingest.routes import router as ingest_router
from app.jobs.routes import router as jobs_router
from app.labels.routes import router as labels_router
from app.loop.pages import router as loop_pages_router
from app.loop.routes import router as loop_router
from app.lsbackend.routes import import_router as ls_import_router
from app.lsbackend.routes import router as lsbackend_router
from app.metrics.middleware import RequestMetrics
from app.metrics.routes import router as metrics_router
from app.projects.routes import router as projects_router
from app.queue.routes import router as queue_router
from app.registry.routes import router as registry_router
from app.users.routes import auth_router, members_router, users_router
from app.web.admin import router as admin_pages_router
from app.web.pages import router as pages_router
from app.web.project_pages import router as project_pages_router
from app.web.templating import FRONTEND_DIR
from app.webhooks.pages import router as webhooks_pages_router
from app.webhooks.routes import router as webhooks_router

ROUTERS = [
    projects_router,
    ingest_router,
    drift_router,
    dashboard_router,
    pages_router,
    project_pages_router,
    admin_pages_router,
    auth_router,
    users_router,
    members_router,
    queue_router,
    labels_router,
    datasets_router,
    jobs_router,
    registry_router,
    loop_router,
    loop_pages_router,
    webhooks_router,
    webhooks_pages_router,
    metrics_router,
    lsbackend_router,
    ls_import_router,
    items_router,  # last: its /items/{external_id:path} would shadow the GET routes under /items/{item_id}/
]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    if app.state.settings.gc_freeze:
        # The ~170k objects of a started app never die; without this every full collection walks them all,
        # and request work that allocates many containers (a 1,000-item batch) triggers such collections.
        gc.collect()
        gc.freeze()
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Hardcase",
        version="0.1.0",
        description="Active learning for vision models in production.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.resolved_database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine)
    app.state.sessionmaker.configure(info={"settings": settings})  # events enqueue on this app's broker
    app.state.blobs = BlobStore(settings.resolved_blob_dir)
    install_error_handlers(app)
    install_error_documentation(app)
    app.add_middleware(
        RequestLimits, max_body_bytes=settings.max_body_bytes, max_json_depth=settings.max_json_depth
    )
    install_security_headers(app, https=settings.secure_cookies)
    app.add_middleware(RequestMetrics)  # outermost: times every request, refused ones too
    app.mount("/static", StaticFiles(directory=FRONTEND_DIR / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", tags=["ops"], dependencies=[Depends(public)])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
