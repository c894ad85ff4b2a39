"""A vlm_distill job names its teacher like a base model: checked at submission, 422 naming config.teacher."""

from __future__ import annotations

from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

JOBS = "/api/v1/projects/roadwork/jobs"


def test_a_teacher_that_is_not_here_or_a_registry_version_is_refused_at_submission(app, db):
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, 12)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    for teacher, words in [
        ("no-such-org/no-such-vlm", "not available"),
        ("registry:v1", "registry version"),
    ]:
        body = {"kind": "vlm_distill", "dataset_version": 1, "config": {"teacher": teacher}}
        response = admin.post(JOBS, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == "config.teacher" and words in error["message"]
    body = {"kind": "vlm_distill", "dataset_version": 1, "config": {"teacher": "builtin:tiny-qwen2-vl"}}
    assert admin.post(JOBS, json=body).status_code == 201
