"""Ranking settings: admin-only PATCH, overlap re-status, the vectorised re-rank equals incremental scoring."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.ranking import MEASURE_COLUMNS, rerank_project, strategy_of
from app.queue.service import item_payload
from ml.scoring import hardness_for_item
from tests.utils.accounts import (
    item_ids,
    logged_in,
    make_user,
    seed_project,
    spread_scores,
)
from tests.utils.factories import make_key, make_project

SCORES = {
    "torn": {"det": 0.9, "clf": 0.1, "vlm": 0.6},
    "edge": {"det": 0.55, "clf": 0.5},
    "sure": {"det": 0.99, "clf": 0.97, "vlm": 0.98},
    "no": {"det": 0.02},
}


def rows(db) -> dict[int, dict]:
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    found = {
        h.item_id: {c: getattr(h, c) for c in (*MEASURE_COLUMNS, "reasons", "likely_positive")}
        for h in db.scalars(select(Hardness))
    }
    db.commit()
    return found


def test_annotators_cannot_patch_the_project(app, client, db):
    project, _ = seed_project(db, client, spread_scores(1))
    make_user(db, "ann", project=project)
    response = logged_in(app, "ann").patch("/api/v1/projects/roadwork", json={"threshold": 0.3})
    assert response.status_code == 403


def test_the_full_rerank_reproduces_incremental_scores(client, db):
    project, _ = seed_project(db, client, SCORES)
    incremental = rows(db)
    rerank_project(db_session=db, project=db.get(Project, project.id))
    db.commit()
    full = rows(db)
    for item_id, values in incremental.items():
        for column, value in values.items():
            if column != "reasons":
                assert full[item_id][column] == (pytest.approx(value) if isinstance(value, float) else value)
        assert full[item_id]["reasons"] is None  # rebuilt per item when shown, not for 1M rows in bulk


def test_a_threshold_change_reranks_and_overlap_restatuses(app, client, db, sessions):
    project, _ = seed_project(db, client, SCORES)
    make_user(db, "boss", role="admin")
    admin = logged_in(app, "boss")
    item_id = admin.post("/api/v1/projects/roadwork/queue/next").json()["item"]["id"]
    admin.post(f"/api/v1/projects/roadwork/items/{item_id}/annotations", json={"label": 1})
    response = admin.patch("/api/v1/projects/roadwork", json={"overlap": 2})
    assert response.status_code == 200 and response.json()["rerank"] == "not needed"
    db.rollback()  # end the read snapshot (SQLite WAL) and expire: see what others committed
    assert db.get(Hardness, item_id).status == "pending"
    db.commit()
    bad = admin.patch("/api/v1/projects/roadwork", json={"strategy_weights": {"vibes": 1.0}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "strategy_weights"
    changed = admin.patch("/api/v1/projects/roadwork", json={"threshold": 0.95})
    assert changed.status_code == 200 and changed.json()["rerank"] == "queued"
    assert changed.json()["threshold"] == 0.95


def test_rerank_after_a_threshold_change_moves_items_near_the_new_threshold_up(client, db):
    project, _ = seed_project(db, client, SCORES)
    before = rows(db)
    stored = db.get(Project, project.id)
    stored.threshold = 0.97
    rerank_project(db_session=db, project=stored)
    db.commit()
    after = rows(db)
    sure = next(i for i, v in before.items() if v["mean_score"] and v["mean_score"] > 0.97)
    assert after[sure]["priority"] > before[sure]["priority"]
    shown = item_payload(db_session=db, project=stored, item_id=sure)["hardness"]["reasons"]
    db.commit()
    assert any("near threshold" in r for r in shown)


def _post(client, key: str, items: list[dict]) -> None:
    response = client.post(
        "/api/v1/projects/roadwork/predictions", json={"items": items}, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.text


def _frame(external_id: str, predictions: list[dict]) -> dict:
    return {
        "external_id": external_id,
        "image": {"url": f"https://x/{external_id}.jpg"},
        "predictions": predictions,
    }


def test_ingest_ranks_each_item_from_its_latest_prediction_per_model(client, db):
    project = make_project(db)
    key = make_key(db)
    _post(client, key, [_frame("a", [{"model": "det", "model_version": "1", "score": 0.95}])])
    _post(
        client,
        key,
        [
            _frame(
                "a",
                [
                    {"model": "det", "model_version": "2", "score": 0.5},
                    {"model": "clf", "model_version": "1", "probs": [0.4, 0.6]},
                ],
            )
        ],
    )
    row = db.get(Hardness, item_ids(db, project)["a"])
    db.commit()
    expected = hardness_for_item(
        {"clf": 0.6, "det": 0.5}, threshold=0.5, strategy=strategy_of(project), item_key=row.item_id
    )
    assert row.n_models == 2
    assert row.priority == pytest.approx(expected.priority)
    assert row.mean_score == pytest.approx(0.55)
    rerank_project(db_session=db, project=project)  # the full re-rank also takes the latest per model
    db.commit()
    db.expire_all()
    again = db.get(Hardness, row.item_id)
    assert again.mean_score == pytest.approx(0.55) and again.priority == pytest.approx(expected.priority)
    db.commit()


def test_detection_items_store_box_disagreement_and_show_it_as_a_reason(client, db):
    project = make_project(db, kind="detection", box_classes=["cone"])
    key = make_key(db)
    cone = [0.1, 0.1, 0.3, 0.3, "cone", 0.9]
    elsewhere = [0.6, 0.6, 0.9, 0.9, "cone", 0.8]
    _post(
        client,
        key,
        [
            _frame(
                "torn",
                [
                    {"model": "yolo", "score": 0.9, "boxes": [cone]},
                    {"model": "rtdetr", "score": 0.8, "boxes": [elsewhere]},
                ],
            ),
            _frame(
                "same",
                [
                    {"model": "yolo", "score": 0.9, "boxes": [cone]},
                    {"model": "rtdetr", "score": 0.9, "boxes": [cone]},
                ],
            ),
            _frame("bare", [{"model": "yolo", "score": 0.1}, {"model": "rtdetr", "score": 0.2}]),
        ],
    )
    ids = item_ids(db, project)
    scores = {name: db.get(Hardness, ids[name]).box_disagreement for name in ids}
    db.commit()
    assert scores == {"torn": 1.0, "same": 0.0, "bare": 0.0}
    shown = item_payload(db_session=db, project=db.get(Project, project.id), item_id=ids["torn"])
    db.commit()
    assert "boxes disagree (100% unmatched)" in shown["hardness"]["reasons"]


def test_a_note_stored_on_the_row_is_shown_before_the_computed_reasons(client, db):
    project, _ = seed_project(db, client, {"torn": {"det": 0.9, "clf": 0.1}})
    item_id = item_ids(db, project)["torn"]
    db.get(Hardness, item_id).reasons = ["drift: det scores shifted"]
    db.commit()
    shown = item_payload(db_session=db, project=db.get(Project, project.id), item_id=item_id)["hardness"][
        "reasons"
    ]
    db.commit()
    assert shown[0] == "drift: det scores shifted"
    assert any("models disagree" in reason for reason in shown[1:])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_leases_are_served_in_the_new_order_while_a_rerank_is_still_running(
    client, db, sessions, monkeypatch
):
    """A re-rank commits chunk by chunk: while it ranks its second chunk, an annotator's lease (SKIP LOCKED)
    gets the first chunk's hardest item. In one long transaction that row stayed locked until the end, so
    the lease skipped it (and near the end of a big re-rank found nothing at all)."""
    import app.queue.ranking as ranking
    from app.queue.service import lease_next_item

    project, _ = seed_project(db, client, {"a": {"det": 0.5, "vlm": 0.5}, "b": {"det": 0.99, "vlm": 0.98}})
    ann = make_user(db, "ann", project=project)
    first = min(rows(db))
    leased: list = []
    original = ranking.rank

    def rank_then_lease_once(*args, **kwargs):
        if len(leased) == 0 and not (args[3] == first).any():  # ranking the second chunk
            with sessions() as other:
                stored = other.get(Project, project.id)
                user = other.get(type(ann), ann.id)
                leased.append(lease_next_item(db_session=other, project=stored, user=user, lease_minutes=5))
        return original(*args, **kwargs)

    monkeypatch.setattr(ranking, "rank", rank_then_lease_once)
    stored = db.get(Project, project.id)
    stored.threshold = 0.3  # every priority changes, so every row is rewritten (and locked until committed)
    summary = rerank_project(db_session=db, project=stored, chunk=1, workers=1)
    db.commit()
    assert summary.items == 2
    assert leased and leased[0] is not None and leased[0].item_id == first


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_rerank_in_parallel_chunks_writes_what_a_serial_one_writes(client, db, monkeypatch):
    """Several chunks at once (each in its own session and thread) give every item the same measures as one
    chunk after the other: every item is ranked once."""
    import threading

    import app.queue.ranking as ranking

    threads: set[int] = set()
    original = ranking._rerank_chunk

    def recorded(*args, **kwargs):
        threads.add(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(ranking, "_rerank_chunk", recorded)
    scores = {f"item-{n}": {"det": n / 12, "vlm": 1 - n / 15} for n in range(11)}
    project, _ = seed_project(db, client, scores)
    stored = db.get(Project, project.id)
    stored.threshold = 0.3
    serial = rerank_project(db_session=db, project=stored, chunk=3, workers=1)
    expected = rows(db)
    stored = db.get(Project, project.id)
    stored.threshold = 0.8
    rerank_project(db_session=db, project=stored, chunk=3, workers=1)
    assert rows(db) != expected
    stored = db.get(Project, project.id)
    stored.threshold = 0.3
    threads.clear()
    parallel = rerank_project(db_session=db, project=stored, chunk=3, workers=3)
    db.commit()
    assert len(threads) > 1
    assert parallel.items == serial.items == 11
    assert rows(db) == expected
