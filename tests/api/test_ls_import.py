"""Moving over from Label Studio: its JSON export becomes items, predictions and attributed annotations, and
Hardcase's own Label Studio export of the imported project gives the same tasks back (the round trip)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth.models import User
from app.cli import main
from app.core.config import get_settings
from app.datasets.schemas import DatasetFreeze
from app.datasets.service import consensus_labels, freeze_dataset_version, materialise_dataset
from app.ingest.models import Item, Prediction
from app.labels.models import Annotation
from app.lsbackend.importer import import_label_studio_tasks
from ml.exports.label_studio import export_label_studio
from tests.utils.accounts import make_user
from tests.utils.factories import make_key, make_project
from tests.utils.label_studio import choice, ls_annotation, rectangle
from tests.utils.labeled_data import seed_labeled_items

BOX = [0.1, 0.2, 0.5, 0.6]


def export_project(db, app, project, tmp_path, name: str) -> list[dict]:
    version = freeze_dataset_version(db_session=db, project=project, freeze=DatasetFreeze(), user_id=None)
    db.commit()
    folder = materialise_dataset(
        db_session=db,
        project=project,
        version=version,
        root=tmp_path / f"{name}-dataset",
        blobs=app.state.blobs,
    )
    out = export_label_studio(folder, tmp_path / f"{name}-ls")
    return json.loads((out / "tasks.json").read_text())


def seeded_source(db, app):
    """A project with stored photos, three models' scores, one human label each, and a boxed item."""
    source = make_project(db, "source", box_classes=["cone"])
    annotator = make_user(db, "ann")
    items = seed_labeled_items(db, app.state.blobs, source, annotator, n=12)
    boxed = next(i for i in items if i.meta["truth"] == 1)
    db.scalar(select(Annotation).where(Annotation.item_id == boxed.id)).boxes = [[*BOX, 0]]
    yolo = db.scalar(select(Prediction).where(Prediction.item_id == boxed.id, Prediction.model == "yolo"))
    yolo.boxes = [[*BOX, "cone", 0.9]]
    db.commit()
    return source, items


def rounded(value):
    """Percent coordinates come back through normalised ones: equal to the 6th decimal."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return [rounded(v) for v in value] if isinstance(value, list) else value


def comparable(task: dict) -> tuple:
    """What a task says about its item, without where the image lies or which split it fell in."""
    predictions = sorted(json.dumps(rounded(p), sort_keys=True) for p in task["predictions"])
    results = [json.dumps(rounded(a["result"]), sort_keys=True) for a in task["annotations"]]
    return task["data"]["external_id"], tuple(predictions), tuple(results)


def test_a_hardcase_export_imported_into_a_new_project_exports_the_same_tasks_again(
    app, db, settings, tmp_path
):
    source, items = seeded_source(db, app)
    tasks = export_project(db, app, source, tmp_path, "source")
    moved = make_project(db, "moved", box_classes=["cone"])

    summary = import_label_studio_tasks(
        db_session=db,
        project=moved,
        tasks=tasks,
        blobs=app.state.blobs,
        settings=settings,
        images_root=tmp_path,
    )
    assert (summary.items_created, summary.images_stored, summary.errors) == (len(tasks), len(tasks), [])
    assert summary.predictions_created == 3 * len(tasks) and summary.annotations == {"created": len(tasks)}

    originals = {i.external_id: i for i in items}
    imported = {i.external_id: i for i in db.scalars(select(Item).where(Item.project_id == moved.id))}
    assert set(imported) == set(originals)
    assert all(imported[e].image_uri == originals[e].image_uri for e in originals)  # the same photos, stored
    labels = {e: c.label for e, c in _consensus_by_external_id(db, moved).items()}
    assert labels == {e: c.label for e, c in _consensus_by_external_id(db, source).items()}
    for external_id, item in originals.items():
        before = {p.model: p for p in db.scalars(select(Prediction).where(Prediction.item_id == item.id))}
        after = {
            p.model: p
            for p in db.scalars(select(Prediction).where(Prediction.item_id == imported[external_id].id))
        }
        assert {m: (p.model_version, pytest.approx(p.score)) for m, p in before.items()} == {
            m: (p.model_version, p.score) for m, p in after.items()
        }
        for model, prediction in before.items():
            assert _flat(after[model].boxes) == pytest.approx(_flat(prediction.boxes))
    authors = set(
        db.scalars(
            select(User.username)
            .join(Annotation, Annotation.annotator_id == User.id)
            .where(Annotation.project_id == moved.id)
        )
    )
    assert authors == {"ls:unknown"}  # Hardcase's export names no Label Studio user

    again = export_project(db, app, moved, tmp_path, "moved")
    assert sorted(map(comparable, again)) == sorted(map(comparable, tasks))

    repeat = import_label_studio_tasks(
        db_session=db,
        project=moved,
        tasks=tasks,
        blobs=app.state.blobs,
        settings=settings,
        images_root=tmp_path,
    )
    assert (repeat.items_created, repeat.predictions_created, repeat.annotations) == (
        0,
        0,
        {"unchanged": len(tasks)},
    )


def _flat(boxes: list) -> list[float]:
    return [float(v) for box in boxes for v in (*box[:4], *box[5:])]


def _consensus_by_external_id(db, project) -> dict:
    ids = dict(
        db.execute(select(Item.id, Item.external_id).where(Item.project_id == project.id)).tuples().all()
    )
    return {ids[item_id]: c for item_id, c in consensus_labels(db_session=db, project=project).items()}


def label_studio_export() -> list[dict]:
    """Tasks as Label Studio's JSON export writes them: ids, authors, a skipped and an updated annotation."""
    first = {
        "id": 1,
        "data": {"image": "https://cams.example/a.jpg"},
        "annotations": [
            ls_annotation(11, 1, [choice("positive"), rectangle(10, 20, 30, 40, "cone")], user_id=4),
            ls_annotation(12, 1, [choice("negative")], user_id=5),
            ls_annotation(13, 1, [], user_id=6, was_cancelled=True),
        ],
        "predictions": [
            {"id": 3, "model_version": "yolo@8", "score": 0.8, "result": [rectangle(10, 20, 30, 40, "cone")]},
            {"id": 4, "model_version": "clf", "score": 0.9, "result": [choice("negative")]},
            {"id": 5, "model_version": "hardcase/old/cascade", "score": 0.3, "result": []},
        ],
    }
    second = {
        "id": 2,
        "data": {"image": "/data/upload/1/b.jpg", "external_id": "cam7/b"},
        "annotations": [ls_annotation(14, 2, [choice("Negative")], user_id=4)],
        "predictions": [],
    }
    return [first, second, {"id": 3, "data": "not a dict"}]


def test_the_import_route_keeps_authors_skips_cancelled_and_hardcase_predictions(app, db):
    moved = make_project(db, "moved", box_classes=["cone"])
    admin_key = make_key(db, scopes=["ingest"], project_id=moved.id)
    client = TestClient(app, headers={"X-API-Key": admin_key})
    response = client.post(
        "/api/v1/projects/moved/label-studio/import", json={"tasks": label_studio_export()}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tasks"], body["items_created"], body["annotations"]) == (3, 2, {"created": 3, "absent": 1})
    assert body["errors"] == ["tasks[2]: not a task with data"]
    items = {i.external_id: i for i in db.scalars(select(Item).where(Item.project_id == moved.id))}
    assert set(items) == {"https://cams.example/a.jpg", "cam7/b"}
    assert items["cam7/b"].image_uri == "/data/upload/1/b.jpg"  # kept as a reference, never fetched
    predictions = {
        p.model: p
        for p in db.scalars(
            select(Prediction).where(Prediction.item_id == items["https://cams.example/a.jpg"].id)
        )
    }
    assert set(predictions) == {"yolo", "clf"}  # Hardcase's own served predictions are not a model's output
    assert (predictions["yolo"].model_version, predictions["yolo"].score) == ("8", pytest.approx(0.8))
    assert predictions["clf"].score == pytest.approx(0.1)  # 90% sure of 'negative': P(positive) = 0.1
    assert predictions["yolo"].boxes == [
        [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.6), "cone", 0.8]
    ]
    rows = db.execute(
        select(User.username, Annotation.label, Annotation.duration_ms)
        .join(User, User.id == Annotation.annotator_id)
        .order_by(Annotation.id)
    ).all()
    assert [tuple(r) for r in rows] == [("ls:4", 1, 4200), ("ls:5", 0, 4200), ("ls:4", 0, 4200)]


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("HARDCASE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HARDCASE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_the_cli_imports_an_export_file_and_refuses_a_file_that_is_not_a_task_list(
    cli_env, db, tmp_path, capsys
):
    moved = make_project(db, "moved", box_classes=["cone"])
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export()[:2]))
    assert main(["import-ls", "moved", str(export)]) == 0
    assert "2 items created" in capsys.readouterr().out
    db.rollback()
    assert len(list(db.scalars(select(Item).where(Item.project_id == moved.id)))) == 2
    export.write_text(json.dumps({"tasks": []}))
    with pytest.raises(SystemExit, match="a list of tasks"):
        main(["import-ls", "moved", str(export)])
