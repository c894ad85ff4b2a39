"""Admins create projects over the API; bad definitions and duplicates get a 4xx naming the field."""

from __future__ import annotations

from tests.utils.labeled_data import client_as


def test_an_admin_creates_a_detection_project(app, db):
    admin, _ = client_as(app, db, "admin")
    body = {"name": "cones", "kind": "detection", "box_classes": ["cone", "barrier"], "threshold": 0.4}
    response = admin.post("/api/v1/projects", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["box_classes"] == ["cone", "barrier"]
    again = admin.post("/api/v1/projects", json=body)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "name"


def test_project_definitions_are_validated(app, db):
    admin, _ = client_as(app, db, "admin")
    no_classes = admin.post("/api/v1/projects", json={"name": "det", "kind": "detection"})
    assert no_classes.status_code == 422 and "box_classes" in no_classes.json()["detail"]
    bad_name = admin.post("/api/v1/projects", json={"name": "Has Spaces"})
    assert bad_name.status_code == 422 and bad_name.json()["errors"][0]["field"] == "name"


def test_annotators_cannot_create_projects(app, db):
    annotator, _ = client_as(app, db, "annotator")
    assert annotator.post("/api/v1/projects", json={"name": "x"}).status_code == 403
