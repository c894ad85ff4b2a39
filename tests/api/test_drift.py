"""Drift checks on stored predictions: alarm on shifted scores, quiet on unshifted ones, stored and served."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import utcnow
from app.drift import service
from app.drift.config import DriftSettings
from app.drift.models import DriftCheck
from app.ingest.models import Item, Prediction
from app.projects.models import Project
from app.queue.models import Hardness
from tests.utils.factories import make_key, make_project
from workers.drift import run_drift_checks

SMALL = DriftSettings(recent_size=80, reference_size=160, min_samples=40, embedding_max=80, p_value=0.05)


def store_scores(
    db: Session,
    project: Project,
    model: str,
    reference: np.ndarray,
    recent: np.ndarray,
    *,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[int]:
    """One item and prediction per score, received one minute apart (reference first); returns recent item ids."""
    start = utcnow() - timedelta(minutes=len(reference) + len(recent) + 5)
    scores = np.concatenate([reference, recent])
    vectors = None if embeddings is None else np.concatenate(embeddings)
    recent_ids = []
    for index, score in enumerate(scores):
        item = Item(project_id=project.id, external_id=f"{model}-{index}", meta={})
        db.add(item)
        db.flush()
        db.add(
            Prediction(
                item_id=item.id,
                project_id=project.id,
                model=model,
                score=float(score),
                boxes=[],
                embedding=None if vectors is None else [float(v) for v in vectors[index]],
                received_at=start + timedelta(minutes=index),
            )
        )
        db.add(
            Hardness(project_id=project.id, item_id=item.id, priority=0.2, status="pending", reasons=["x"])
        )
        if index >= len(reference):
            recent_ids.append(item.id)
    db.commit()
    return recent_ids


def scores(rng: np.random.Generator, n: int, a: float = 2.0, b: float = 5.0) -> np.ndarray:
    return rng.beta(a, b, size=n)


def test_unshifted_scores_store_a_quiet_check_and_boost_nothing(db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(0)
    store_scores(db, project, "det", scores(rng, 160), scores(rng, 80))
    checks = service.check_project(db_session=db, project=project, settings=SMALL)
    db.commit()
    assert [(c.model, c.kind, c.method, c.is_drift) for c in checks] == [("det", "score", "ks", False)]
    check = checks[0]
    assert check.n_reference == 160 and check.n_recent == 80 and check.p_value > 0.05
    assert service.as_utc(check.recent_start) > service.as_utc(check.reference_end)
    assert db.scalar(select(func.max(Hardness.priority))) == pytest.approx(0.2)
    assert service.drift_alarms(db_session=db, project=project) == []


def test_shifted_scores_raise_an_alarm_and_boost_recent_pending_items_once(db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(1)
    recent_ids = store_scores(db, project, "det", scores(rng, 160), scores(rng, 80, a=5.0, b=2.0))
    leased = db.get(Hardness, recent_ids[0])
    leased.status = "leased"
    db.commit()

    check = service.check_project(db_session=db, project=project, settings=SMALL)[0]
    db.commit()
    assert check.is_drift and check.p_value < 1e-6 and check.distance > 0.5
    assert check.boosted_items == 79  # the leased one is left alone
    boosted = db.get(Hardness, recent_ids[-1])
    assert boosted.priority == pytest.approx(0.7)
    assert boosted.reasons[0].startswith("drift: det scores shifted") and boosted.reasons[1] == "x"
    assert db.get(Hardness, recent_ids[0]).priority == pytest.approx(0.2)

    again = service.check_project(db_session=db, project=project, settings=SMALL)[0]
    db.commit()
    assert again.is_drift and again.boosted_items == 0
    assert db.get(Hardness, recent_ids[-1]).priority == pytest.approx(0.7)
    alarms = service.drift_alarms(db_session=db, project=project)
    assert [a.id for a in alarms] == [again.id]


def test_embedding_drift_is_checked_with_mmd_where_embeddings_were_ingested(db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(2)
    same = scores(rng, 240)
    embeddings = (rng.normal(size=(160, 6)), rng.normal(size=(80, 6)) + 1.0)
    store_scores(db, project, "clf", same[:160], same[160:], embeddings=embeddings)
    settings = SMALL.model_copy(update={"embedding_permutations": 50})
    checks = {c.kind: c for c in service.check_project(db_session=db, project=project, settings=settings)}
    assert checks["embedding"].method == "mmd" and checks["embedding"].is_drift
    assert checks["embedding"].n_reference == 80  # evenly thinned to embedding_max
    assert not checks["score"].is_drift


def test_too_few_predictions_store_no_check(db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(3)
    store_scores(db, project, "det", scores(rng, 30), scores(rng, 80))
    assert service.check_project(db_session=db, project=project, settings=SMALL) == []
    assert db.scalar(select(func.count()).select_from(DriftCheck)) == 0


def test_time_windows_take_the_latest_hours_and_the_hours_before(db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(4)
    store_scores(db, project, "det", scores(rng, 160), scores(rng, 80))
    settings = DriftSettings(window="time", recent_hours=80 / 60, reference_hours=2.0, min_samples=40)
    reference, recent = service.score_windows(db_session=db, project=project, model="det", settings=settings)
    # predictions arrived one a minute from 245 minutes ago: 75 in the last 80 min, 120 in the 2 h before
    assert abs(len(recent) - 75) <= 1 and abs(len(reference) - 120) <= 1
    assert reference.end < recent.start


def test_window_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="min_samples"):
        DriftSettings(recent_size=20, min_samples=50)


def test_drift_task_body_checks_all_projects_and_commits(db: Session, sessions: sessionmaker) -> None:
    project = make_project(db)
    rng = np.random.default_rng(5)
    store_scores(db, project, "det", scores(rng, 160), scores(rng, 80, a=5.0, b=2.0))
    overrides = {"recent_size": 80, "reference_size": 160, "min_samples": 40}
    summary = run_drift_checks(sessions=sessions, overrides=overrides)
    assert summary["checks"] == 1 and summary["alarms"][0].startswith("det/score")
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    assert db.scalar(select(func.count()).select_from(DriftCheck)) == 1
    with pytest.raises(ValueError, match="project"):
        run_drift_checks(sessions=sessions, project="nope", overrides=overrides)


def test_drift_api_serves_latest_checks_and_alarms_to_a_read_key(client: TestClient, db: Session) -> None:
    project = make_project(db)
    rng = np.random.default_rng(6)
    store_scores(db, project, "det", scores(rng, 160), scores(rng, 80, a=5.0, b=2.0))
    store_scores(db, project, "clf", scores(rng, 160), scores(rng, 80))
    service.check_project(db_session=db, project=project, settings=SMALL)
    db.commit()

    assert client.get("/api/v1/projects/roadwork/drift").status_code == 401
    ingest_only = make_key(db, scopes=["ingest"])
    assert (
        client.get("/api/v1/projects/roadwork/drift", headers={"X-API-Key": ingest_only}).status_code == 403
    )
    body = client.get(
        "/api/v1/projects/roadwork/drift", headers={"X-API-Key": make_key(db, scopes=["read"])}
    ).json()
    assert {(c["model"], c["is_drift"]) for c in body["latest"]} == {("clf", False), ("det", True)}
    assert [a["model"] for a in body["alarms"]] == ["det"] and body["alarms"][0]["boosted_items"] == 80
    assert len(body["history"]) == 2 and body["project"] == "roadwork"
