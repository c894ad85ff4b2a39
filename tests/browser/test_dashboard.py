"""The dashboard in Chromium on PostgreSQL: overview, a live job page and the models page, with screenshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.auth.models import User
from app.core.db import session_scope, utcnow
from app.ingest.models import Item
from app.jobs.models import Job, JobMetric
from app.labels.models import Annotation
from app.projects.models import Project
from tests.browser.conftest import log_in
from tests.utils.dashboard_data import drift_alarm, seed_training


@pytest.fixture(scope="module")
def dashboard_site(live_site):
    """The live site plus a holdout, two models, a finished and a running job, labels and a drift alarm."""
    with session_scope(live_site.sessions) as db:
        project = db.scalar(select(Project).where(Project.name == live_site.binary_project))
        users = {u.username: u for u in db.scalars(select(User))}
        items = list(db.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.id)))
        now = utcnow()
        for index, item in enumerate(items[:12]):
            for name, offset in (("ann", index * 2), ("root", 60 * 24 + index * 3)):
                db.add(
                    Annotation(
                        item_id=item.id,
                        project_id=project.id,
                        annotator_id=users[name].id,
                        label=int(index % 3 == 0),
                        duration_ms=3500 + 400 * index,
                        created_at=now - timedelta(minutes=offset),
                    )
                )
        db.add(
            drift_alarm(
                project.id,
                "yolo-cones",
                now=now,
                p_value=3e-7,
                n_reference=2000,
                n_recent=500,
                distance=0.31,
                boosted_items=42,
                reference_days=3,
                recent_hours=20,
            )
        )
        db.flush()
        seed_training(db, project)
        running = db.scalar(select(Job).where(Job.status == "running"))
        running_id = running.id
    return live_site, running_id


def test_overview_shows_queue_numbers_alarm_and_charts(page: Page, dashboard_site, screenshots) -> None:
    site, _ = dashboard_site
    log_in(page, site, f"/projects/{site.binary_project}")
    expect(page.locator('[data-stat="pool"]')).to_have_text("65")  # 25 photos + 40 holdout items
    expect(page.locator("#drift-alarms")).to_contain_text("yolo-cones")
    expect(page.locator("#annotators tbody tr")).to_have_count(2)
    assert page.locator("svg.bar-chart").count() == 2
    page.screenshot(path=str(screenshots / "dashboard-overview.png"), full_page=True)


def test_job_page_updates_progress_and_curves_live(page: Page, dashboard_site, screenshots) -> None:
    site, job_id = dashboard_site
    log_in(page, site, f"/jobs/{job_id}")
    expect(page.locator("[data-steps]")).to_have_text("30 / 120")
    with session_scope(site.sessions) as db:
        job = db.get(Job, job_id)
        job.progress_step = 60
        job.log_tail += "\n12:00:09 step 60 loss 0.22"
        db.add(JobMetric(job_id=job_id, step=60, name="train_loss", value=0.22))
        db.add(JobMetric(job_id=job_id, step=60, name="val_mcc", value=0.7))
    expect(page.locator("[data-steps]")).to_have_text("60 / 120", timeout=8000)
    expect(page.locator("[data-log]")).to_contain_text("step 60 loss 0.22")
    expect(page.locator(".progress")).to_have_attribute("aria-valuenow", "50")
    expect(page.locator("svg.line-chart")).to_have_count(2)
    page.screenshot(path=str(screenshots / "dashboard-job.png"), full_page=True)


def test_models_page_compares_versions_and_draws_calibration(page: Page, dashboard_site, screenshots) -> None:
    site, _ = dashboard_site
    log_in(page, site, f"/projects/{site.binary_project}/models?version=2")
    expect(page.locator("#models tbody tr")).to_have_count(2)
    expect(page.locator('tr[data-version="2"] [data-promote]')).to_be_visible()
    expect(page.locator("svg.reliability circle")).not_to_have_count(0)
    page.screenshot(path=str(screenshots / "dashboard-models.png"), full_page=True)


def test_jobs_page_form_follows_the_chosen_kind(page: Page, dashboard_site, screenshots) -> None:
    site, _ = dashboard_site
    log_in(page, site, f"/projects/{site.binary_project}/jobs")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    page.locator("[data-kind-select]").select_option("yolo")
    expect(page.locator('fieldset[data-kind="yolo"]')).to_be_visible()
    expect(page.locator('fieldset[data-kind="classifier_lora"]')).to_be_hidden()
    page.screenshot(path=str(screenshots / "dashboard-jobs.png"), full_page=True)
