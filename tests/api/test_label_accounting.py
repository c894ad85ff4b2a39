"""Labels-per-MCC accounting on the project overview: the learning curve of the registry's versions, the next
0.01 MCC's cost, and the labels the simulator says the ranking saved (real PostgreSQL and SQLite)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.dashboard.label_accounting import label_accounting, labels_text
from app.datasets.models import DatasetItem, DatasetVersion
from app.ingest.models import Item
from app.projects.models import Project
from app.registry.models import ModelVersion
from ml.learning_curve import PowerLaw
from tests.api.test_dashboard import log_in
from tests.utils.factories import make_project

LAW = PowerLaw(a=0.85, b=2.0, c=0.5)


def seed_versions(
    db: Session, project: Project, label_counts: list[int], *, stats: bool = True, law: PowerLaw = LAW
) -> None:
    """One dataset version and one model version per label count, MCC on LAW with a ±0.04 CI; the last is
    production. With `stats=False` the first version has no split counts (older freezes) and its rows say."""
    for number, n in enumerate(label_counts, start=1):
        split_classes = {"train": {"negative": n - n // 4, "positive": n // 4}, "holdout": {"negative": 30}}
        version = DatasetVersion(
            project_id=project.id,
            version=number,
            content_hash=f"{number:064d}",
            item_count=n + 30,
            stats={"split_classes": split_classes} if stats or number > 1 else {},
        )
        db.add(version)
        db.flush()
        if not stats and number == 1:
            for index in range(n + 2):
                item = Item(project_id=project.id, external_id=f"v{number}-{index}", meta={})
                db.add(item)
                db.flush()
                split, label = ("holdout", 0) if index >= n else ("train", index % 2)
                db.add(DatasetItem(dataset_version_id=version.id, item_id=item.id, label=label, split=split))
        mcc = float(law(n))
        db.add(
            ModelVersion(
                project_id=project.id,
                name=f"{project.name}-classifier_lora",
                version=number,
                kind="classifier_lora",
                dataset_version_id=version.id,
                threshold=0.5,
                metrics={"mcc": mcc, "n": 30, "mcc_ci": {"ci_low": mcc - 0.04, "ci_high": mcc + 0.04}},
                stage="production" if number == len(label_counts) else "archived",
                artifact_dir="/nonexistent",
                artifact_archive="/nonexistent.zip",
                artifact_sha256="0" * 64,
            )
        )
    db.commit()


def write_roadwork_report(settings: Settings, project: str, run: str = "roadwork-run") -> None:
    folder = settings.data_dir / "simulate" / run
    folder.mkdir(parents=True)
    report = {
        "config": {"dataset": "roadwork", "project": project, "seeds": 20, "max_labels": 40},
        "metric": "mcc",
        "targets": [0.24],
        "strategies": {"random": {"labels": [4, 40], "mean": [0.0, 0.24], "std": [0.0, 0.1]}},
        "table": [{"strategy": "random"}],
        "labels_saved": {
            "strategy": "hybrid",
            "budget": 40,
            "target_mcc": 0.24,
            "labels": 14.5,
            "labels_std": 4.2,
            "saved": 25.5,
            "ratio": 0.36,
            "ratio_std": 0.1,
        },
    }
    (folder / "curves.json").write_text(json.dumps(report))


def test_overview_plots_the_curve_and_prices_the_next_point_01_with_three_versions(
    client: TestClient, db: Session, settings: Settings
) -> None:
    """Versions at 100, 200 and 400 labels (the first counted from its rows, not its stats): the page draws
    the SVG curve and states the fit's next-0.01 cost, close to the true curve's ≈ 136 labels."""
    project = make_project(db, "roadwork")
    seed_versions(db, project, [100, 200, 400], stats=False)
    accounting = label_accounting(db_session=db, project=project, settings=settings)
    assert [p.labels for p in accounting.points] == [100, 200, 400]
    assert accounting.fit is not None
    true_cost = LAW.labels_for(float(LAW(400)) + 0.01) - 400
    assert abs(accounting.fit.next_cost - true_cost) < 0.25 * true_cost
    low, high = accounting.fit.interval
    assert low <= accounting.fit.next_cost <= high
    log_in(client, db, "rita", "reviewer")
    html = client.get("/projects/roadwork").text
    assert 'id="label-accounting"' in html and "MCC against labels used" in html
    assert f'data-next-cost="{labels_text(accounting.fit.next_cost)}"' in html
    assert "more labels" in html and "Not enough versions yet" not in html
    section = html[
        html.index('id="label-accounting"') : html.index("</section>", html.index('id="label-accounting"'))
    ]
    assert section.count("<circle") >= 3 and 'class="band"' in section
    assert "<script" not in section and "onclick" not in section


def test_overview_says_not_enough_versions_below_three_label_counts(
    client: TestClient, db: Session, settings: Settings
) -> None:
    project = make_project(db, "roadwork")
    seed_versions(db, project, [100, 200])
    assert label_accounting(db_session=db, project=project, settings=settings).fit is None
    log_in(client, db, "rita", "reviewer")
    html = client.get("/projects/roadwork").text
    assert "Not enough versions yet" in html and "(2 so far)" in html
    assert "more labels" not in html


def test_overview_shows_the_simulator_saving_of_its_own_project_only(
    client: TestClient, db: Session, settings: Settings
) -> None:
    make_project(db, "roadwork")
    make_project(db, "other")
    write_roadwork_report(settings, "roadwork")
    log_in(client, db, "rita", "reviewer")
    html = client.get("/projects/roadwork").text
    assert "25.5 labels saved" in html and "/simulate?run=roadwork-run" in html
    assert "Not enough versions yet" in html and "(0 so far)" in html
    assert "labels saved" not in client.get("/projects/other").text


def test_simulate_page_shows_a_roadwork_report(client: TestClient, db: Session, settings: Settings) -> None:
    """The roadwork report has the simulator's report shape: the /simulate page draws and tabulates it."""
    write_roadwork_report(settings, "roadwork")
    log_in(client, db, "rita", "reviewer")
    page = client.get("/simulate?run=roadwork-run")
    assert page.status_code == 200 and "roadwork" in page.text and "mcc 0.24" in page.text


def test_overview_says_a_levelled_off_curve_buys_no_more_mcc(
    client: TestClient, db: Session, settings: Settings
) -> None:
    """Three versions with the same MCC: the fit is flat and the page says labels alone will not buy +0.01."""
    project = make_project(db, "roadwork")
    seed_versions(db, project, [100, 200, 400], law=PowerLaw(a=0.7, b=0.0, c=0.5))
    log_in(client, db, "rita", "reviewer")
    html = client.get("/projects/roadwork").text
    assert 'data-next-cost="∞"' in html and "not expected to buy it" in html
