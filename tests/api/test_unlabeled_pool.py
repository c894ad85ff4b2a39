"""Freezing with include_unlabeled: the items nobody has labeled yet (stored images, never the holdout) join
train without a label, the pool a distillation teacher answers; every export still reads the version."""

from __future__ import annotations

from sqlalchemy import delete, select

from app.datasets.models import DatasetItem, DatasetVersion
from app.labels.models import Annotation
from ml.exports import EXPORT_FORMATS
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

DATASETS = "/api/v1/projects/roadwork/datasets"


def test_unlabeled_items_join_train_without_a_label_only_when_asked(app, db):
    project = make_project(db, "roadwork")
    admin, user = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, user, 24, url_only=2)
    assert admin.post(DATASETS, json={}).status_code == 201
    holdout = set(db.scalars(select(DatasetItem.item_id).where(DatasetItem.split == "holdout")))
    train = list(db.scalars(select(DatasetItem.item_id).where(DatasetItem.split == "train")))[:3]
    db.execute(delete(Annotation).where(Annotation.item_id.in_([*train, *list(holdout)[:1]])))
    db.commit()

    plain = admin.post(DATASETS, json={}).json()
    assert "unlabeled" not in plain["stats"]["classes"]
    pooled = admin.post(DATASETS, json={"include_unlabeled": True})
    assert pooled.status_code == 201, pooled.text
    assert pooled.json()["stats"]["classes"]["unlabeled"] == 3  # not the holdout item, not the URL-only ones
    db.commit()
    version_id = db.scalar(select(DatasetVersion.id).where(DatasetVersion.version == 3))
    rows = db.execute(
        select(DatasetItem.item_id, DatasetItem.label, DatasetItem.split).where(
            DatasetItem.dataset_version_id == version_id, DatasetItem.label.is_(None)
        )
    ).all()
    assert {(i, s) for i, _, s in rows} == {(i, "train") for i in train}
    for fmt in EXPORT_FORMATS:
        response = admin.get(f"{DATASETS}/3/export?format={fmt}")
        assert response.status_code == 200, (fmt, response.text)
