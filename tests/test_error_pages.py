"""A browser that hits a page it may not see gets an HTML error page; the JSON API keeps its JSON errors."""

from __future__ import annotations

from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as

HTML = {"accept": "text/html,application/xhtml+xml"}


def test_a_forbidden_page_renders_html_for_a_browser_and_json_for_the_api(app, db):
    make_project(db)
    annotator, _ = client_as(app, db, "annotator")
    page = annotator.get("/projects/roadwork/label", headers=HTML)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "access" in page.text and "roadwork" in page.text
    api = annotator.get("/api/v1/projects/roadwork/progress", headers=HTML)
    assert api.status_code == 403 and api.json()["errors"][0]["field"] == "project"


def test_an_unknown_project_page_is_an_html_404(app, db):
    admin, _ = client_as(app, db, "admin")
    page = admin.get("/projects/nope", headers=HTML)
    assert page.status_code == 404 and "unknown project" in page.text
