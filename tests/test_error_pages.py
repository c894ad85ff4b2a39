"""A browser that hits a page it may not see gets an HTML error page; the JSON API keeps its JSON errors."""

from __future__ import annotations

from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as

HTML = {"accept": "text/html,application/xhtml+xml"}


def test_a_forbidden_page_renders_html_for_a_browser_and_json_for_the_api(app, db):
    project = make_project(db)
    annotator, _ = client_as(app, db, "annotator", project=project)
    page = annotator.get("/projects/roadwork", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "access" in page.text and "reviewer" in page.text
    api = annotator.get("/api/v1/projects/roadwork/agreement", headers=HTML)
    assert api.status_code == 403 and api.json()["errors"][0]["field"] == "role"


def test_a_page_of_a_project_the_user_is_not_a_member_of_is_an_html_404(app, db):
    make_project(db)
    outsider, _ = client_as(app, db, "annotator")
    page = outsider.get("/projects/roadwork/label", headers=HTML)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "unknown project" in page.text


def test_an_unknown_project_page_is_an_html_404(app, db):
    admin, _ = client_as(app, db, "admin")
    page = admin.get("/projects/nope", headers=HTML)
    assert page.status_code == 404 and "unknown project" in page.text
