"""The retraining policy page (admins, linked from project settings): the policy form, switches and the runs."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.auth import permissions as can
from app.deps import ProjectDep, SessionDep, SettingsDep
from app.loop import service
from app.loop.schemas import PolicyJob, PolicyWrite
from app.loop.service import PRODUCTION_REFERENCE
from app.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/projects/{project}/policy", response_class=HTMLResponse)
def policy_page(
    request: Request, _admin: can.PageAdmin, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> Response:
    policy = service.get_policy(db_session=session, project=project)
    read = (
        service.policy_read(db_session=session, project=project, policy=policy, settings=settings)
        if policy
        else None
    )
    example = [PolicyJob(kind="classifier_lora", base_model=PRODUCTION_REFERENCE)]
    form = (read or PolicyWrite(jobs=example)).model_dump(mode="json")
    runs = service.list_runs(db_session=session, project=project, limit=20)
    return render(
        request,
        "policy.html",
        project=project,
        policy=read,
        form=form,
        jobs_json=json.dumps(form["jobs"], indent=2),
        runs=service.run_reads(db_session=session, project=project, runs=runs),
    )
