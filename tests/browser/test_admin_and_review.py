"""Reviewers and admins in Chromium: review a conflict by keyboard, create and configure a project, the live job
header, rollback, the simulator link, the add-user form's password rule. Screenshots go to /tmp/shots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.auth.models import User
from app.core.db import session_scope, utcnow
from app.ingest.models import Item
from app.jobs.models import Job
from app.labels.models import Annotation, Review
from app.projects.models import Project
from app.queue.models import Hardness
from app.registry.models import ModelVersion
from app.registry.service import promote
from app.users.service import add_member, create_account
from tests.browser.conftest import PASSWORD, log_in
from tests.utils.dashboard_data import seed_training

SHOTS = Path("/tmp/shots")
ANN_BOX = [0.2, 0.3, 0.45, 0.7, 0]


@pytest.fixture(scope="module")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="module")
def site(live_site):
    """The live site plus a reviewer, a conflicting detection item, training jobs and two models."""
    with session_scope(live_site.sessions) as db:
        cones = db.scalar(select(Project).where(Project.name == live_site.detection_project))
        roadwork = db.scalar(select(Project).where(Project.name == live_site.binary_project))
        users = {u.username: u for u in db.scalars(select(User))}
        create_account(
            db_session=db,
            username="rev",
            password=PASSWORD,
            role="reviewer",
            project_ids=[cones.id, roadwork.id],
        )
        add_member(db_session=db, project_id=cones.id, user_id=users["root"].id)
        item = db.scalar(select(Item).where(Item.project_id == cones.id).order_by(Item.id))
        db.add(
            Annotation(
                item_id=item.id, project_id=cones.id, annotator_id=users["ann"].id, label=1, boxes=[ANN_BOX]
            )
        )
        db.add(
            Annotation(item_id=item.id, project_id=cones.id, annotator_id=users["root"].id, label=0, boxes=[])
        )
        db.get(Hardness, item.id).status = "review"
        seed_training(db, roadwork)
    return live_site


def test_a_reviewer_decides_a_conflicting_item_with_the_keyboard(page: Page, site, shots) -> None:
    log_in(page, site, f"/projects/{site.detection_project}/label", username="rev")
    page.get_by_role("link", name="Review", exact=True).click()
    page.wait_for_url(f"{site.url}/projects/{site.detection_project}/review")
    expect(page.locator("#review-items li")).to_have_count(1)
    expect(page.locator("#review-items li").first).to_contain_text("conflict")
    panels = page.locator("#review-panels .review-panel")
    expect(panels).to_have_count(3)  # ann, root, the cascade
    expect(panels.nth(0)).to_contain_text("ann")
    expect(panels.nth(0).locator(".review-box")).to_have_count(1)
    expect(panels.nth(1)).to_contain_text("root")
    page.keyboard.press("j")  # one item only: stays selected
    page.keyboard.press("2")  # Yes
    expect(page.locator("#review-choice")).to_contain_text("Yes with ann's 1 box(es)")
    expect(panels.nth(0)).to_have_class("card review-panel chosen")
    page.screenshot(path=str(shots / "review-conflict.png"), full_page=True)
    page.keyboard.press("n")
    page.keyboard.type("cones at the roadside")
    page.keyboard.press("Enter")
    expect(page.locator("#review-status")).to_contain_text("Decided")
    expect(page.locator("#review-empty")).to_be_visible()
    with session_scope(site.sessions) as db:
        review = db.scalar(select(Review))
        assert (review.label, review.boxes, review.note) == (1, [ANN_BOX], "cones at the roadside")
        assert db.get(User, review.reviewer_id).username == "rev"


def test_an_admin_creates_a_project_and_changes_its_settings(page: Page, site, shots) -> None:
    log_in(page, site, "/")
    page.get_by_role("link", name="Create project").click()
    page.get_by_label("Name").fill("signs")
    page.get_by_label("Kind").select_option("detection")
    page.get_by_label("Box classes").fill("stop_sign, yield_sign")
    page.get_by_label("Threshold").fill("0.4")
    page.get_by_label("Overlap").fill("2")
    page.screenshot(path=str(shots / "project-new.png"), full_page=True)
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(f"{site.url}/projects/signs/settings?created=1")
    keys = page.locator("#key-scheme")
    expect(keys).to_contain_text("box class stop_sign")
    expect(keys.locator("tr", has_text="stop_sign").locator("kbd")).to_have_text("Q")
    expect(page.get_by_label("Question")).to_have_value(
        "Does this image show positive? Answer yes or no. Box every stop sign, yield sign."
    )
    page.get_by_label("Question").fill("Box every traffic sign.")
    page.get_by_label("Instructions").fill("Only **upright** signs.")
    page.get_by_label("Daily goal").fill("150")
    page.get_by_label("Strategy").select_option("uncertainty")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#form-status")).to_contain_text("Saved")
    page.locator("#member-select").select_option(label="ann (annotator)")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#members tbody")).to_contain_text("ann")
    page.screenshot(path=str(shots / "project-settings.png"), full_page=True)
    with session_scope(site.sessions) as db:
        made = db.scalar(select(Project).where(Project.name == "signs"))
        assert (made.kind, made.box_classes, made.threshold, made.overlap) == (
            "detection",
            ["stop_sign", "yield_sign"],
            0.4,
            2,
        )
        assert (made.question, made.instructions, made.daily_goal, made.strategy) == (
            "Box every traffic sign.",
            "Only **upright** signs.",
            150,
            "uncertainty",
        )
    page.get_by_role("button", name="Remove ann").click()
    expect(page.locator("#members tbody")).to_contain_text("No members yet")


def test_a_bad_project_definition_is_explained_on_the_form(page: Page, site) -> None:
    log_in(page, site, "/admin/projects/new")
    page.get_by_label("Name").fill("broken")
    page.get_by_label("Kind").select_option("detection")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#form-errors")).to_contain_text("box_classes")


def test_the_job_header_updates_live(page: Page, site, shots) -> None:
    with session_scope(site.sessions) as db:
        job = db.scalar(select(Job).where(Job.status == "running"))
        job.status, job.attempts, job.started_at, job.worker_id = "queued", 0, None, None
        job_id = job.id
    log_in(page, site, f"/jobs/{job_id}")
    expect(page.locator("[data-attempts]")).to_have_text("0")
    expect(page.locator("[data-worker]")).to_have_text("—")
    expect(page.locator("[data-device]")).to_have_text("device setting auto")
    with session_scope(site.sessions) as db:
        job = db.get(Job, job_id)
        job.status, job.attempts, job.worker_id = "running", 1, "celery@gpu-box-7"
        job.started_at = job.heartbeat_at = utcnow()
        job.log_tail += "\n16:00:01 device: cpu"  # as the worker logs it: a gpu-queue job on a CPU worker
    expect(page.locator("[data-attempts]")).to_have_text("1", timeout=8000)
    expect(page.locator("[data-worker]")).to_have_text("celery@gpu-box-7")
    expect(page.locator("[data-device]")).to_have_text("device cpu")
    expect(page.locator("[data-started-at] time")).to_be_visible()
    expect(page.locator("[data-status]").first).to_have_text("running")
    with session_scope(site.sessions) as db:
        job = db.get(Job, job_id)
        job.status, job.finished_at = "failed", utcnow()
    expect(page.locator("[data-finished-at] time")).to_be_visible(timeout=8000)
    page.screenshot(path=str(shots / "job-header.png"), full_page=True)


def test_an_admin_rolls_production_back_from_the_models_page(page: Page, site, shots) -> None:
    with session_scope(site.sessions) as db:
        project = db.scalar(select(Project).where(Project.name == site.binary_project))
        promote(db_session=db, project=project, version=2, user_id=None)
    log_in(page, site, f"/projects/{site.binary_project}/models")
    page.on("dialog", lambda dialog: dialog.accept())
    button = page.get_by_role("button", name="Roll back to v1")
    page.screenshot(path=str(shots / "models-rollback.png"), full_page=True)
    button.click()
    expect(page.locator('tr[data-version="1"] [data-status]')).to_have_text("production")
    expect(page.get_by_role("button", name="Roll back to v1")).to_have_count(0)
    with session_scope(site.sessions) as db:
        stages = dict(db.execute(select(ModelVersion.version, ModelVersion.stage)).tuples().all())
        assert stages[1] == "production" and stages[2] != "production"


def test_the_navigation_leads_to_the_simulator(page: Page, site) -> None:
    log_in(page, site, f"/projects/{site.binary_project}")
    page.get_by_role("link", name="Simulator").click()
    page.wait_for_url(f"{site.url}/simulate")
    expect(page.locator("h1")).to_have_text("Active-learning simulator")


def test_the_add_user_form_refuses_a_short_password(page: Page, site, shots) -> None:
    log_in(page, site, "/admin/users")
    page.get_by_label("Username").fill("shorty")
    password = page.locator("form.create-user input[name=password]")
    password.fill("abcde")
    page.get_by_role("button", name="Add user").click()
    assert password.evaluate("el => el.validity.tooShort")  # the browser holds the form back
    expect(page.locator("#password-rule")).to_have_text("at least 8 characters")
    password.evaluate("el => el.removeAttribute('minlength')")  # a client that skips the check
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("alert")).to_contain_text("password: at least 8 characters")
    expect(page.get_by_label("Username")).to_have_value("shorty")  # kept for the second try
    page.screenshot(path=str(shots / "add-user-short-password.png"), full_page=True)
    with session_scope(site.sessions) as db:
        assert db.scalar(select(User).where(User.username == "shorty")) is None


def test_a_user_without_projects_is_told_to_ask_an_admin(page: Page, site) -> None:
    with session_scope(site.sessions) as db:
        create_account(db_session=db, username="lonely", password=PASSWORD, role="annotator")
    log_in(page, site, "/", username="lonely")
    expect(page.locator(".empty")).to_contain_text("Ask an admin to add you")
    expect(page.get_by_role("link", name="Create project")).to_have_count(0)
