"""Every page runs in Chromium under the real Content-Security-Policy without a single violation."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Page
from sqlalchemy import select

from app.core.db import session_scope
from app.jobs.models import Job
from app.main import create_app
from app.projects.models import Project
from tests.browser.conftest import PASSWORD
from tests.utils.dashboard_data import seed_training

# Records violations in the page itself as well: Chromium also reports them on the console, but an event
# is exact about which directive was broken. Init scripts come from the driver, so the CSP does not apply.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`));
"""
NOT_PAGES = {"/login", "/jobs/{job_id}/charts"}  # the login form is visited logged out; charts is a fragment


def _api_routes(routes, prefix: str = ""):
    """Routes as FastAPI serves them; newer FastAPI keeps included routers as wrappers around the original."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes, prefix + route.include_context.prefix)


def page_paths(site, job_id: int) -> list[str]:
    """Every server-rendered GET page of the app, with its path parameters filled in."""
    values = {"project": site.binary_project, "job_id": str(job_id)}
    paths = []
    for path, route in _api_routes(create_app(site.settings).routes):
        if route.include_in_schema or "GET" not in route.methods or path in NOT_PAGES:
            continue
        names = re.findall(r"{(\w+)(?::\w+)?}", path)
        unknown = [n for n in names if n not in values]
        assert not unknown, f"{path}: give this test a value for {unknown}"
        paths.append(re.sub(r"{(\w+)(?::\w+)?}", lambda m: values[m.group(1)], path))
    paths.append(f"/projects/{site.detection_project}/label")  # the box-drawing variant of the label page
    paths.append("/projects/no-such-project")  # the HTML error page
    return sorted(set(paths))


@pytest.fixture(scope="module")
def csp_site(live_site):
    with session_scope(live_site.sessions) as db:
        project = db.scalar(select(Project).where(Project.name == live_site.binary_project))
        seed_training(db, project)
        job_id = db.scalar(select(Job.id).where(Job.status == "running"))
    return live_site, job_id


def _violations(page: Page, console: list[str]) -> list[str]:
    page.wait_for_load_state("networkidle")
    recorded = page.evaluate("window.__csp || []")
    return recorded + [text for text in console if "Content Security Policy" in text]


def test_every_page_runs_without_a_csp_violation(page: Page, csp_site) -> None:
    site, job_id = csp_site
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.add_init_script(RECORD_VIOLATIONS)

    response = page.goto(site.url + "/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert _violations(page, console) == []
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(site.url + "/")

    visited = {}
    for path in page_paths(site, job_id):
        console.clear()
        response = page.goto(site.url + path)
        assert response.headers.get("content-security-policy"), path
        visited[path] = _violations(page, console)
    assert {path: found for path, found in visited.items() if found} == {}
    assert len(visited) >= 10, sorted(visited)
