"""The pretrain kind through a real Celery worker: self-supervised training on a small project pool (labeled and
unlabeled photos) becomes a backbone in the base-model catalogue; a classifier_lora job started from it applies
LoRA to it (method auto) and says so in its version's name and model card, and a distill student starts from it."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from app.labels.models import Annotation
from app.registry.models import ModelVersion
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items
from tests.utils.worker import celery_worker, wait_until
from tests.workers.test_training_worker import finished, worker_settings  # noqa: F401 - fixture
from tests.workers.test_vlm_and_yolo_jobs_worker import submit

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

PRETRAIN = {
    "max_steps": 4,
    "batch_size": 8,
    "hidden_dim": 32,
    "projection_dim": 16,
    "log_every": 1,
    "device": "cpu",
}
CLASSIFIER = {"max_steps": 2, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2, "device": "cpu"}


def model_of(sessions, job_id: int) -> ModelVersion:
    with sessions() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))


def test_a_pretrained_backbone_joins_the_catalogue_and_a_classifier_applies_lora_to_it(
    app,
    db,
    sessions,
    worker_settings,  # noqa: F811
):
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    items = seed_labeled_items(db, app.state.blobs, project, annotator, 28)
    db.execute(delete(Annotation).where(Annotation.item_id.in_([it.id for it in items[:4]])))
    db.commit()
    frozen = admin.post("/api/v1/projects/roadwork/datasets", json={"include_unlabeled": True})
    assert frozen.status_code == 201 and frozen.json()["stats"]["classes"]["unlabeled"] == 4, frozen.text
    pretrain_id = submit(admin, "pretrain", "builtin:vit-tiny", PRETRAIN)

    with celery_worker(worker_settings, queues="cpu,gpu"):
        job = wait_until(lambda: finished(sessions, pretrain_id), timeout_s=240, message="pretrain job")
        assert job.status == "succeeded", job.error
        backbone = model_of(sessions, pretrain_id)
        reference = f"registry:v{backbone.version}"
        choices = {c["name"]: c for c in admin.get("/api/v1/projects/roadwork/base-models").json()}
        assert choices[reference]["pretrained"] and choices[reference]["method"] == "lora"
        assert {"classifier_lora", "distill", "pretrain"} <= set(choices[reference]["kinds"])
        assert "self-supervised backbone" in choices[reference]["description"]
        classifier_id = submit(admin, "classifier_lora", reference, CLASSIFIER)
        classifier_job = wait_until(
            lambda: finished(sessions, classifier_id), timeout_s=240, message="classifier"
        )
    assert classifier_job.status == "succeeded", classifier_job.error

    detail = admin.get(f"/api/v1/jobs/{pretrain_id}").json()
    assert [step for step, _ in detail["metrics"]["loss"]] == [1, 2, 3, 4]  # reported live, every step
    assert backbone.name == "roadwork-pretrain-simclr-vit-tiny" and backbone.kind == "pretrain"
    assert backbone.training_metrics["pool_images"] == 28.0  # every stored photo, the unlabeled ones too
    assert "mcc" in backbone.metrics  # the linear probe's holdout figures
    classifier = model_of(sessions, classifier_id)
    assert classifier.name == f"roadwork-classifier_lora-lora-on-pretrain-v{backbone.version}"
    card = (worker_settings.jobs_dir / str(classifier_id) / "artifacts" / "README.md").read_text()
    assert (
        f"LoRA r=8 alpha=16 of the self-supervised backbone roadwork-pretrain-simclr-vit-tiny v{backbone.version}"
        in card
    )
