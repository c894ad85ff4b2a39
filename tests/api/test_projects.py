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


def test_a_project_without_a_question_asks_about_its_own_classes(app, db):
    admin, _ = client_as(app, db, "admin")
    body = {"name": "pets", "kind": "multiclass", "classes": ["cat", "dog", "guinea_pig"]}
    made = admin.post("/api/v1/projects", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["question"] == "Which of these fits the image: cat, dog, guinea pig?"
    asked = admin.post("/api/v1/projects", json={"name": "own", "question": "Is the lane closed?"})
    assert asked.json()["question"] == "Is the lane closed?"
    cones = admin.post("/api/v1/projects", json={"name": "det", "kind": "detection", "box_classes": ["cone"]})
    assert "roadwork" not in cones.json()["question"] and "cone" in cones.json()["question"]
