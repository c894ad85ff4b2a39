"""The retraining policy page and the overview's run timeline: admins edit and decide, reviewers only read."""

from __future__ import annotations

from app.loop.models import LoopRun
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as
from tests.utils.loop import seed_loop_run


def test_the_policy_page_and_the_overview_timeline_show_runs_and_only_admins_get_the_decision_buttons(
    app, db
):
    project = make_project(db, "roadwork")
    admin, _ = client_as(app, db, "admin")
    reviewer, _ = client_as(app, db, "reviewer", project=project)
    empty = admin.get("/projects/roadwork/policy")
    assert empty.status_code == 200 and "No policy yet" in empty.text and "registry:production" in empty.text
    run_id = seed_loop_run(db, project)
    run = db.get(LoopRun, run_id)
    run.state, run.reason = "held", "v3 held for approval, a slice fell: is_night=true: MCC -1.000"
    run.timeline = [{"at": "2026-11-30T12:00:00", "event": "held", "detail": run.reason}]
    db.commit()
    page = admin.get("/projects/roadwork/policy").text
    assert "Save policy" in page and "Pause" in page and f'data-run-approve="{run_id}"' in page
    overview = admin.get("/projects/roadwork").text
    assert "Retraining runs" in overview and "is_night=true" in overview and "data-run-approve" in overview
    seen_by_reviewer = reviewer.get("/projects/roadwork")
    assert seen_by_reviewer.status_code == 200 and "is_night=true" in seen_by_reviewer.text
    assert "data-run-approve" not in seen_by_reviewer.text
    assert reviewer.get("/projects/roadwork/policy").status_code == 403
    assert 'href="/projects/roadwork/policy"' in admin.get("/projects/roadwork/settings").text
