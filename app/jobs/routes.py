"""Job endpoints: create (validated up front), list, read, cancel, the kinds catalogue and a live SSE stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.auth import permissions as can
from app.core.config import Settings
from app.deps import IdPath, LimitQuery, ProjectDep, SessionDep, SettingsDep
from app.jobs import base_models, service
from app.jobs.dispatch import send_job
from app.jobs.models import FINISHED
from app.jobs.schemas import BaseModelRead, JobCreate, JobDetail, JobKindRead, JobRead

router = APIRouter(prefix="/api/v1", tags=["jobs"])


def enqueue_with(settings: Settings) -> service.Enqueue:
    return lambda job: send_job(settings, job.id, job.queue)


@router.get("/jobs/kinds", response_model=list[JobKindRead], dependencies=[Depends(can.read_catalogue)])
def list_kinds(session: SessionDep, settings: SettingsDep) -> list[dict]:
    """Every job kind with its config fields and whether a live worker can run it."""
    return service.job_kinds(db_session=session, settings=settings)


@router.get("/base-models", response_model=list[BaseModelRead], dependencies=[Depends(can.read_catalogue)])
def list_base_models(
    session: SessionDep,
    settings: SettingsDep,
    kind: str | None = Query(None, description="only bases this job kind can start from"),
) -> list[dict]:
    """Built-in architectures, the models directory and the local HF cache; a project's list adds its
    registry versions as warm starts."""
    return base_models.list_base_models(db_session=session, settings=settings, project=None, kind=kind)


@router.get(
    "/projects/{project}/base-models",
    response_model=list[BaseModelRead],
    dependencies=[Depends(can.read_project)],
)
def list_project_base_models(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    kind: str | None = Query(None, description="only bases this job kind can start from"),
) -> list[dict]:
    return base_models.list_base_models(db_session=session, settings=settings, project=project, kind=kind)


@router.post("/projects/{project}/jobs", response_model=JobDetail, status_code=201)
def create_job(
    body: JobCreate, user: can.ProjectAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> JobDetail:
    job = service.create_job(
        db_session=session,
        project=project,
        job_in=body,
        user_id=user.id,
        settings=settings,
        require_runnable=True,
    )
    session.commit()
    service.enqueue_job(db_session=session, job=job, enqueue=enqueue_with(settings))
    session.commit()
    session.refresh(job)
    return service.job_detail(db_session=session, job=job)


@router.get(
    "/projects/{project}/jobs", response_model=list[JobRead], dependencies=[Depends(can.read_project)]
)
def list_project_jobs(
    project: ProjectDep,
    session: SessionDep,
    status: str | None = Query(None, description="queued, running, succeeded, failed or cancelled"),
    limit: LimitQuery = 100,
) -> list[JobRead]:
    jobs = service.list_jobs(db_session=session, project=project, status=status, limit=limit)
    return service.job_reads(db_session=session, jobs=jobs)


@router.get("/jobs/{job_id}", response_model=JobDetail, dependencies=[Depends(can.read_job)])
def read_job(job_id: IdPath, session: SessionDep) -> JobDetail:
    return service.job_detail(db_session=session, job=service.get_job(db_session=session, job_id=job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobDetail, dependencies=[Depends(can.admin_job)])
def cancel_job(job_id: IdPath, session: SessionDep) -> JobDetail:
    job = service.request_cancel(db_session=session, job=service.get_job(db_session=session, job_id=job_id))
    session.commit()
    return service.job_detail(db_session=session, job=job)


def _snapshot(request: Request, job_id: int, after_id: int) -> tuple[dict, list[dict]]:
    with request.app.state.sessionmaker() as session:
        job = service.get_job(db_session=session, job_id=job_id)
        read = service.job_reads(db_session=session, jobs=[job])[0]
        metrics = service.metric_series(db_session=session, job_id=job_id, after_id=after_id)
        rows = [{"id": m.id, "step": m.step, "name": m.name, "value": m.value} for m in metrics]
        return json.loads(read.model_dump_json()), rows


def _event(name: str, data) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get("/jobs/{job_id}/events", dependencies=[Depends(can.read_job)])
async def job_events(
    job_id: IdPath,
    request: Request,
    session: SessionDep,
    interval_s: float = Query(1.0, ge=0.1, le=30.0, description="seconds between polls of the job row"),
    max_s: float = Query(3600.0, gt=0, le=86400.0, description="the stream closes after this long"),
) -> StreamingResponse:
    """Server-sent events: `progress` (the job as the list returns it) every poll, `metrics`
    (new metric rows), and a final `end` when the job finished; polling GET /jobs/{id} is the fallback."""
    service.get_job(db_session=session, job_id=job_id)
    # The request's session lives until the stream ends; on SQLite an open transaction holds the write lock.
    session.close()

    async def stream() -> AsyncIterator[str]:
        after_id, waited = 0, 0.0
        while True:
            job, metrics = await run_in_threadpool(_snapshot, request, job_id, after_id)
            if metrics:
                after_id = metrics[-1]["id"]
                yield _event("metrics", metrics)
            yield _event("progress", job)
            if job["status"] in FINISHED:
                yield _event("end", {"status": job["status"]})
                return
            if waited >= max_s or await request.is_disconnected():
                return
            await asyncio.sleep(interval_s)
            waited += interval_s

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
