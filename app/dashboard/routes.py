"""Dashboard pages (server-rendered; the live parts poll the JSON APIs)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.auth import permissions as can
from app.core.errors import ApiError
from app.dashboard import charts, label_accounting, simulation
from app.dashboard.forms import kind_forms
from app.dashboard.overview import project_overview
from app.datasets import service as dataset_service
from app.deps import IdPath, OptionalIdQuery, ProjectDep, SessionDep, SettingsDep
from app.drift import service as drift_service
from app.jobs import base_models
from app.jobs import service as job_service
from app.jobs.models import FINISHED
from app.loop.service import loop_runs
from app.projects.models import Project
from app.registry import service as registry_service
from app.web.templating import render

router = APIRouter(include_in_schema=False)

# Annotators label; the dashboard (jobs, models, datasets, drift) is for reviewers and admins, and only of
# projects they are members of: every page declares a rule from app/auth/permissions.


@router.get("/projects/{project}", response_class=HTMLResponse)
def overview_page(
    request: Request,
    _user: can.DashboardReviewer,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    overview = project_overview(db_session=session, project=project)
    accounting = label_accounting.label_accounting(db_session=session, project=project, settings=settings)
    return render(
        request,
        "dashboard/overview.html",
        project=project,
        overview=overview,
        alarms=drift_service.drift_alarms(db_session=session, project=project),
        drift=drift_service.latest_checks(db_session=session, project=project),
        throughput_chart=charts.throughput_chart(overview.throughput),
        balance_chart=charts.balance_chart(overview.label_balance),
        loop_runs=loop_runs(db_session=session, project=project),
        accounting=accounting,
        accounting_chart=charts.label_accounting_chart(accounting.points, accounting.fit),
        labels_text=label_accounting.labels_text,
        inf=float("inf"),
    )


@router.get("/projects/{project}/datasets", response_class=HTMLResponse)
def datasets_page(
    request: Request, _user: can.DashboardReviewer, project: ProjectDep, session: SessionDep
) -> Response:
    from ml.exports import EXPORT_FORMATS

    return render(
        request,
        "dashboard/datasets.html",
        project=project,
        versions=dataset_service.list_versions(db_session=session, project=project),
        holdout=dataset_service.holdout_summary(db_session=session, project=project),
        export_formats=EXPORT_FORMATS,
    )


@router.get("/projects/{project}/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    _user: can.DashboardReviewer,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    dataset_version: OptionalIdQuery = None,
) -> Response:
    jobs = job_service.list_jobs(db_session=session, project=project, limit=200)
    versions = dataset_service.list_versions(db_session=session, project=project)
    return render(
        request,
        "dashboard/jobs.html",
        project=project,
        jobs=job_service.job_reads(db_session=session, jobs=jobs),
        versions=versions,
        selected_version=dataset_version or (versions[0].version if versions else None),
        kinds=kind_forms(job_service.job_kinds(db_session=session, settings=settings)),
        base_models=base_models.base_model_choices(db_session=session, settings=settings, project=project),
    )


def _project_job(session: SessionDep, job_id: int):
    job = job_service.get_job(db_session=session, job_id=job_id)
    return job, session.get(Project, job.project_id)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, _user: can.JobPageReviewer, job_id: IdPath, session: SessionDep) -> Response:
    job, project = _project_job(session, job_id)
    detail = job_service.job_detail(db_session=session, job=job)
    return render(
        request,
        "dashboard/job.html",
        project=project,
        job=detail,
        charts=charts.job_metric_charts(detail.metrics),
        finished=detail.status in FINISHED,
    )


@router.get("/jobs/{job_id}/charts", response_class=HTMLResponse)
def job_charts_fragment(
    request: Request, _user: can.JobPageReviewer, job_id: IdPath, session: SessionDep
) -> Response:
    """The job's curves as an HTML fragment: the job page swaps it in while the job runs."""
    job, _ = _project_job(session, job_id)
    series = job_service.series_by_name(job_service.metric_series(db_session=session, job_id=job.id))
    return render(request, "dashboard/_job_charts.html", charts=charts.job_metric_charts(series))


@router.get("/projects/{project}/models", response_model=None, response_class=HTMLResponse)
def models_page(
    request: Request,
    _user: can.DashboardReviewer,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    version: OptionalIdQuery = None,
) -> Response:
    rows = registry_service.comparison_rows(
        db_session=session, project=project, min_holdout_items=settings.min_holdout_items
    )
    selected = _selected_model(rows, version)
    metrics = selected["metrics"] if selected else {}
    return render(
        request,
        "dashboard/models.html",
        project=project,
        min_holdout_items=settings.min_holdout_items,
        rows=rows,
        selected=selected,
        reliability=charts.reliability_chart(metrics) if selected else None,
        slice_charts=charts.slice_mcc_charts(metrics.get("slices") or {}),
        history=registry_service.stage_history(db_session=session, project=project)[:20],
    )


def _selected_model(rows: list[dict], version: int | None) -> dict | None:
    """The requested version, else production, else the newest."""
    if version is not None:
        found = next((r for r in rows if r["version"] == version), None)
        if found is None:
            raise ApiError(404, "version", f"no model version {version}")
        return found
    return next((r for r in rows if r["stage"] == "production"), rows[0] if rows else None)


@router.get("/simulate", response_class=HTMLResponse)
def simulation_page(
    request: Request, _user: can.PageReviewer, settings: SettingsDep, run: str | None = None
) -> Response:
    root = simulation.simulations_root(settings)
    runs = simulation.list_runs(root)
    chosen = run if run is not None else (runs[0] if runs else None)
    report = simulation.load_report(root, chosen) if chosen is not None else None
    return render(
        request,
        "dashboard/simulate.html",
        root=root,
        runs=runs,
        run=chosen,
        report=report,
        chart=charts.learning_curves_chart(report) if report else None,
        columns=simulation.table_columns(report.get("table", [])) if report else [],
        efficiency=simulation.efficiency_tables(root, runs),
    )
