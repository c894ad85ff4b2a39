"""The bulk ingest path: COPY text escaping, in-batch duplicates, in-memory scoring, statistics upkeep."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core import bulk
from app.ingest.models import Item, Prediction
from app.projects.models import Project
from app.queue.models import Hardness
from app.queue.ranking import MEASURE_COLUMNS, rerank_project
from tests.utils.factories import item, make_key, make_project

URL = "/api/v1/projects/roadwork/predictions"


@pytest.fixture
def key(db) -> str:
    make_project(db)
    return make_key(db)


def post(client, key: str, body):
    response = client.post(URL, json=body, headers={"X-API-Key": key})
    assert response.status_code == 201, response.text
    return response.json()


def measures(db) -> dict[int, dict]:
    db.rollback()  # see what the app committed
    return {h.item_id: {c: getattr(h, c) for c in MEASURE_COLUMNS} for h in db.scalars(select(Hardness))}


def test_text_with_tabs_newlines_and_backslashes_is_stored_unchanged(client, db, key):
    awkward = "cam\t7\\night\nline\r2 \\N"
    sent = item(awkward, camera_id=awkward, note={"path": "C:\\frames\t1", "text": "a\nb"}, tags=["x\\y"])
    sent["predictions"][0]["label"] = "cone\\\t"
    post(client, key, {"items": [sent]})
    db.rollback()
    stored = db.scalar(select(Item))
    assert (stored.external_id, stored.camera_id) == (awkward, awkward)
    assert stored.meta == {"tags": ["x\\y"], "note": {"path": "C:\\frames\t1", "text": "a\nb"}}
    labels = set(db.scalars(select(Prediction.label)))
    assert "cone\\\t" in labels


def test_a_model_version_repeated_within_an_item_keeps_the_first_and_ranks_from_it(client, db, key):
    sent = item("a", scores={"det": 0.9, "clf": 0.1})
    sent["predictions"].append({"model": "det", "model_version": "1", "score": 0.1})
    body = post(client, key, {"items": [sent]})
    assert body["predictions_created"] == 2
    db.rollback()
    assert sorted(db.scalars(select(Prediction.score))) == [0.1, 0.9]
    incremental = measures(db)
    rerank_project(db_session=db, project=db.scalar(select(Project)))
    db.commit()
    assert _close(measures(db), incremental)


def test_new_and_existing_items_in_one_batch_score_as_a_full_rerank_does(client, db, key):
    post(client, key, {"items": [item("old", scores={"det": 0.8})]})
    newer = item("old", scores={"vlm": 0.2})
    post(
        client, key, {"items": [newer, item("new", scores={"det": 0.3, "clf": 0.7}), item("bare", scores={})]}
    )
    incremental = measures(db)
    assert len(incremental) == 3
    rerank_project(db_session=db, project=db.scalar(select(Project)))
    db.commit()
    assert _close(measures(db), incremental)


def _close(a: dict[int, dict], b: dict[int, dict]) -> bool:
    assert a.keys() == b.keys()
    for item_id, values in a.items():
        for column, value in values.items():
            other = b[item_id][column]
            assert (value is None and other is None) or value == pytest.approx(other), (item_id, column)
    return True


def test_statistics_are_refreshed_once_a_table_grew_by_a_fifth(client, db, key, monkeypatch):
    monkeypatch.setattr(bulk, "ANALYZE_THRESHOLD", 0)
    monkeypatch.setattr(bulk, "ANALYZE_CHECK_INTERVAL_S", 0)  # every batch looks, not one a second
    post(client, key, {"items": [item(f"i{n}") for n in range(20)]})
    db.rollback()
    if db.get_bind().dialect.name != "postgresql":
        assert bulk.refresh_statistics(db, ["items"]) == []  # SQLite plans these lookups without statistics
        return
    reltuples = (
        db.connection().exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'items'").scalar()
    )
    assert reltuples == 20  # ANALYZE ran after the batch: the planner knows the table's real size
    assert bulk.refresh_statistics(db, ["items"]) == []  # it has not grown since
