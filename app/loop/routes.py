"""Retraining policy (admins write, members read) and loop run endpoints (start by hand, approve, reject)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.auth import permissions as can
from app.deps import IdPath, ProjectDep, SessionDep, SettingsDep
from app.loop import flows, service
from app.loop.schemas import LoopRunRead, PolicyRead, PolicyWrite, RunDecision, RunStart

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["retraining"])


def _policy(session, project, settings) -> PolicyRead:
    policy = service.require_policy(db_session=session, project=project)
    return service.policy_read(db_session=session, project=project, policy=policy, settings=settings)


@router.get("/policy", response_model=PolicyRead, dependencies=[Depends(can.read_project)])
def read_policy(project: ProjectDep, session: SessionDep, settings: SettingsDep) -> PolicyRead:
    return _policy(session, project, settings)


@router.put("/policy", response_model=PolicyRead)
def write_policy(
    body: PolicyWrite, user: can.ProjectAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> PolicyRead:
    service.save_policy(
        db_session=session, project=project, policy_in=body, user_id=user.id, settings=settings
    )
    session.commit()
    return _policy(session, project, settings)


@router.post("/policy/pause", response_model=PolicyRead)
def pause_policy(
    user: can.ProjectAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> PolicyRead:
    service.set_paused(db_session=session, project=project, paused=True, user_id=user.id)
    session.commit()
    return _policy(session, project, settings)


@router.post("/policy/resume", response_model=PolicyRead)
def resume_policy(
    user: can.ProjectAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> PolicyRead:
    service.set_paused(db_session=session, project=project, paused=False, user_id=user.id)
    session.commit()
    return _policy(session, project, settings)


@router.get("/loop/runs", response_model=list[LoopRunRead], dependencies=[Depends(can.read_project)])
def list_runs(project: ProjectDep, session: SessionDep) -> list[LoopRunRead]:
    runs = service.list_runs(db_session=session, project=project)
    return service.run_reads(db_session=session, project=project, runs=runs)


@router.post("/loop/runs", response_model=LoopRunRead, status_code=201)
def start_run(
    body: RunStart, user: can.ProjectAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> LoopRunRead:
    """Starts a run by hand (409 while another runs, when paused, or past the daily cap)."""
    run = service.start_run(
        db_session=session, project=project, trigger="manual", detail={"note": body.note}, user_id=user.id
    )
    session.commit()
    flows.send_advance(settings, run.id)
    return service.run_reads(db_session=session, project=project, runs=[run])[0]


@router.get("/loop/runs/{run_id}", response_model=LoopRunRead, dependencies=[Depends(can.read_loop_run)])
def read_run(run_id: IdPath, project: ProjectDep, session: SessionDep) -> LoopRunRead:
    run = service.get_run(db_session=session, project=project, run_id=run_id)
    return service.run_reads(db_session=session, project=project, runs=[run])[0]


@router.post("/loop/runs/{run_id}/approve", response_model=LoopRunRead)
def approve_run(
    run_id: IdPath,
    body: RunDecision,
    user: can.LoopRunAdmin,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
) -> LoopRunRead:
    """Promotes a held run's candidate (the registry's gate still applies); the queue re-ranks after."""
    run = flows.lock_run(session, run_id)
    flows.approve(db_session=session, project=project, run=run, user_id=user.id, note_text=body.note)
    session.commit()
    flows.send_rerank(settings, project.id)
    return service.run_reads(db_session=session, project=project, runs=[run])[0]


@router.post("/loop/runs/{run_id}/reject", response_model=LoopRunRead)
def reject_run(
    run_id: IdPath, body: RunDecision, user: can.LoopRunAdmin, project: ProjectDep, session: SessionDep
) -> LoopRunRead:
    run = flows.lock_run(session, run_id)
    flows.reject(db_session=session, run=run, user_id=user.id, note_text=body.note)
    session.commit()
    return service.run_reads(db_session=session, project=project, runs=[run])[0]
