"""Dashboard pages: numbers on the overview, access by role, the SVG helper."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.auth.passwords import hash_password
from app.core.config import Settings
from app.core.db import utcnow
from app.dashboard.overview import active_seconds, project_overview
from app.dashboard.svg import Series, bar_chart, line_chart, nice_ticks, reliability_diagram
from app.ingest.models import Item, Prediction
from app.labels.models import Annotation
from app.projects.models import Project
from app.queue.models import Hardness
from app.users.models import ProjectMember
from tests.utils.dashboard_data import drift_alarm, seed_training
from tests.utils.factories import make_project

PASSWORD = "pw-1234"
PASSWORD_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per module


def make_user(db: Session, username: str, role: str) -> User:
    user = User(username=username, password_hash=PASSWORD_HASH, role=role)
    db.add(user)
    db.flush()
    return user


def log_in(client: TestClient, db: Session, username: str, role: str, *, member: bool = True) -> str:
    """Creates the user (a member of every project so far) and logs in through the real form."""
    user = make_user(db, username, role)
    if member:
        db.add_all(ProjectMember(project_id=p.id, user_id=user.id) for p in db.scalars(select(Project)))
    db.commit()
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "login_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    home = client.get("/projects/none-such", follow_redirects=False)
    match = re.search(r'name="csrf-token" content="([^"]*)"', home.text)
    return match.group(1) if match else ""


def seed_project(db: Session, *, n_items: int = 12) -> Project:
    """A pool with queue states, two annotators' labels over two days, predictions and a drift alarm."""
    project = make_project(db, "roadwork")
    now = utcnow()
    alice = make_user(db, "alice", "annotator")
    bob = make_user(db, "bob", "annotator")
    statuses = ["done"] * 5 + ["leased"] * 2 + ["pending"] * (n_items - 8) + ["review"]
    for index, status in enumerate(statuses):
        item = Item(project_id=project.id, external_id=f"img-{index}", meta={})
        db.add(item)
        db.flush()
        db.add(Hardness(project_id=project.id, item_id=item.id, priority=1.0 - index / 100, status=status))
        for model, score in (("det", 0.9), ("clf", 0.2)):
            db.add(Prediction(item_id=item.id, project_id=project.id, model=model, score=score, boxes=[]))
        if status == "done":
            for user, minutes in ((alice, index), (bob, 60 * 24 + index)):
                db.add(
                    Annotation(
                        item_id=item.id,
                        project_id=project.id,
                        annotator_id=user.id,
                        label=1 if index < 3 or (user is bob and index == 4) else 0,
                        duration_ms=4000 if user is alice else 8000,
                        created_at=now - timedelta(minutes=minutes),
                    )
                )
    db.add(
        drift_alarm(
            project.id,
            "det",
            now=now,
            p_value=0.0001,
            n_reference=400,
            n_recent=100,
            distance=0.6,
            boosted_items=7,
            reference_days=2,
            recent_hours=5,
        )
    )
    db.commit()
    return project


def test_overview_counts_pool_queue_balance_and_annotators(db: Session) -> None:
    project = seed_project(db)
    overview = project_overview(db_session=db, project=project)
    assert overview.pool_size == 12
    assert overview.queue["done"] == 5 and overview.queue["leased"] == 2 and overview.queue["pending"] == 4
    assert overview.label_balance == {"negative": 3, "positive": 7}
    assert sum(count for _, count in overview.throughput) == 10
    assert overview.throughput[-1][1] == 5 and overview.throughput[-2][1] == 5
    rows = {row.username: row for row in overview.annotators}
    assert rows["alice"].labels == 5 and rows["alice"].median_seconds == 4.0
    assert rows["bob"].median_seconds == 8.0
    assert rows["alice"].agreement == 0.8 and rows["bob"].agreement == 0.8  # they split on one of five
    # five labels one minute apart: 4 min of gaps + one median duration (4 s) of work
    assert abs(rows["alice"].labels_per_hour - 5 / ((4 * 60 + 4) / 3600)) < 1e-6


def test_active_time_caps_long_pauses_between_sessions() -> None:
    start = utcnow()
    times = [start, start + timedelta(seconds=30), start + timedelta(hours=3)]
    assert active_seconds(times, [10.0, 10.0, 10.0]) == 10.0 + 30.0 + 10.0


def test_overview_page_shows_numbers_alarm_and_charts_to_a_reviewer(client: TestClient, db: Session) -> None:
    seed_project(db)
    log_in(client, db, "rita", "reviewer")
    page = client.get("/projects/roadwork")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'data-stat="pool">12<' in html and 'data-stat="labeled">5<' in html
    assert 'data-stat="pending">4<' in html and 'data-stat="leased">2<' in html
    assert "Drift alarms" in html and "7 recent items moved up the queue" in html
    assert html.count("<svg") >= 2 and "alice" in html and "bob" in html


def test_overview_page_is_refused_to_an_annotator(client: TestClient, db: Session) -> None:
    seed_project(db)
    log_in(client, db, "anna", "annotator")
    assert client.get("/projects/roadwork").status_code == 403


def test_dashboard_pages_of_other_projects_are_not_found_for_a_reviewer(
    client: TestClient, db: Session
) -> None:
    project = seed_project(db)
    _, running = seed_training(db, project)
    log_in(client, db, "rex", "reviewer", member=False)
    for path in (
        "/projects/roadwork",
        "/projects/roadwork/jobs",
        f"/jobs/{running.id}",
        "/projects/roadwork/models",
    ):
        assert client.get(path).status_code == 404, path


def test_overview_page_sends_a_stranger_to_the_login_page(client: TestClient, db: Session) -> None:
    seed_project(db)
    response = client.get("/projects/roadwork", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97)[0] <= 3 + 20 and nice_ticks(3, 97)[-1] >= 80


def test_svg_charts_escape_labels_and_draw_every_part() -> None:
    line = line_chart(
        [Series("mcc <val>", [0, 1, 2], [0.1, None, 0.5], band_low=[0, 0, 0.4], band_high=[0.2, 0.2, 0.6])],
        hlines=[(0.3, "production")],
    )
    assert "&lt;val&gt;" in line and "<polygon" in line and "production" in line
    assert line.count("M") >= 2  # the None splits the line in two pieces
    bars = bar_chart([("a", 3), ("b", -1)])
    assert bars.count('class="bar"') == 2
    diagram = reliability_diagram(
        [{"bin_low": 0.0, "bin_high": 0.1, "mean_confidence": 0.05, "accuracy": 0.1, "count": 9}]
    )
    assert "<circle" in diagram and 'class="diagonal"' in diagram
    assert "no data yet" in line_chart([]) and "no data yet" in bar_chart([])


def test_jobs_page_lists_jobs_with_progress_and_a_generated_form(client: TestClient, db: Session) -> None:
    project = seed_project(db)
    done, running = seed_training(db, project)
    log_in(client, db, "root", "admin")
    html = client.get("/projects/roadwork/jobs").text
    assert f'data-job-id="{running.id}"' in html and 'aria-valuenow="25"' in html
    assert 'data-kind="classifier_lora"' in html and 'name="learning_rate"' in html
    assert 'data-json-post="/api/v1/projects/roadwork/jobs"' in html


def test_job_page_shows_progress_log_and_curves(client: TestClient, db: Session) -> None:
    project = seed_project(db)
    _, running = seed_training(db, project)
    log_in(client, db, "rita", "reviewer")
    html = client.get(f"/jobs/{running.id}").text
    assert "30 / 120" in html and "step 30 loss 0.41" in html
    assert html.count('class="chart line-chart"') == 2  # loss and MCC
    fragment = client.get(f"/jobs/{running.id}/charts").text
    assert fragment.count("<svg") == 2 and "<html" not in fragment
    assert "Cancel job" not in html  # cancelling is for admins


def test_models_page_compares_against_production_and_offers_promotion(
    client: TestClient, db: Session
) -> None:
    project = seed_project(db)
    seed_training(db, project)
    log_in(client, db, "root", "admin")
    html = client.get("/projects/roadwork/models").text
    assert 'data-version="1"' in html and 'data-version="2"' in html
    assert "/api/v1/projects/roadwork/models/2/promote" in html
    assert "/models/1/promote" not in html  # already production
    assert "P(better)" in html and 'class="chart reliability"' in html and "MCC by camera_id" in html
    assert client.get("/projects/roadwork/models?version=9").status_code == 404


def test_datasets_page_lists_versions_with_export_links(client: TestClient, db: Session) -> None:
    project = seed_project(db)
    seed_training(db, project)
    log_in(client, db, "rita", "reviewer")
    html = client.get("/projects/roadwork/datasets").text
    assert "/api/v1/projects/roadwork/datasets/1/export" in html and 'value="yolo"' in html
    assert "negative 24" in html and 'id="freeze-form"' in html


def write_simulation(root, name: str = "mnist-run") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    strategies = {
        "random": {"labels": [20, 30, 40], "mean": [0.4, 0.3, 0.25], "std": [0.02, 0.02, 0.01]},
        "bald": {"labels": [20, 30, 40], "mean": [0.4, 0.2, 0.08], "std": [0.03, 0.02, 0.01]},
    }
    table = [
        {
            "strategy": "random",
            "error<=0.1": None,
            "error<=0.1 vs random": None,
            "paper (10% / 5%)": [255, 835],
        },
        {"strategy": "bald", "error<=0.1": 40, "error<=0.1 vs random": None, "paper (10% / 5%)": [145, 335]},
    ]
    document = {
        "config": {"dataset": "mnist", "protocol": "gal2017", "seeds": 2, "max_labels": 40},
        "metric": "error",
        "targets": [0.1],
        "strategies": strategies,
        "table": table,
    }
    (folder / "curves.json").write_text(json.dumps(document))


def test_simulation_page_draws_curves_and_the_labels_to_reach_table(
    client: TestClient, db: Session, settings: Settings
) -> None:
    write_simulation(settings.data_dir / "simulate")
    log_in(client, db, "rita", "reviewer")
    html = client.get("/simulate").text
    assert html.count('class="band"') == 2 and "error 0.1" in html
    assert "255 / 835" in html and "&gt; 40" in html and ">40<" in html
    assert client.get("/simulate?run=mnist-run").status_code == 200
    assert client.get("/simulate?run=../..").status_code == 422
    assert client.get("/simulate?run=other").status_code == 404


def test_simulation_page_shows_the_label_efficiency_tables_the_protocol_runs_write(
    client: TestClient, db: Session, settings: Settings
) -> None:
    """Reports written by ml.simulate's protocol and feature runs appear as labels-to-10%/5% tables (mean ± std
    over seeds, the paper's row beside ours, runs still going marked), with the protocol and its citations."""
    from ml.simulate.efficiency import Trace, efficiency_section, report_document, write_json_atomic

    traces = [
        Trace("bald", 0, [20, 30, 40], [0.2, 0.09, 0.04], finished=True),
        Trace("bald", 1, [20, 30, 40], [0.2, 0.12, 0.05], finished=True),
        Trace("random", 0, [20, 30], [0.3, 0.2]),
        Trace("random", 1, [20, 30], [0.3, 0.2]),
    ]
    for name, paper in (("gal-paper", True), ("ssl-al", False)):
        section = efficiency_section(traces, title=f"Table {name}", budget=40, paper=paper, recipe="recipe")
        document = report_document(traces, {"dataset": "mnist", "seeds": 2, "max_labels": 40}, section)
        write_json_atomic(settings.data_dir / "simulate" / name / "curves.json", document)
    log_in(client, db, "rita", "reviewer")
    html = client.get("/simulate").text
    assert "Table gal-paper" in html and "Table ssl-al" in html
    assert "35 ± 5" in html and "145 / 335" in html and "not yet (2 seeds unfinished)" in html
    assert "Munjal et al." in html and "Lüth et al." in html and "random arm is always shown" in html


def test_simulation_page_explains_how_to_make_a_report_when_there_is_none(
    client: TestClient, db: Session
) -> None:
    log_in(client, db, "rita", "reviewer")
    assert "No simulator report yet" in client.get("/simulate").text
