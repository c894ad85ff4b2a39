"""distill: the soft-target loss, the teacher ensemble, and end-to-end runs on real roadwork photos."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.dataset import DatasetRecord, StoredPrediction, write_dataset_dir
from ml.training.common.data import Normalisation, image_transform, load_image, split_records
from ml.training.distill.config import DistillConfig
from ml.training.distill.student import load_tiny_cnn
from ml.training.distill.trainer import distillation_loss, run, teacher_probability
from ml.training.reporting import JobCancelled, MemoryReporter

pytestmark = pytest.mark.slow


def tiny_config(**overrides) -> DistillConfig:
    values = dict(
        max_steps=6, batch_size=8, eval_every=3, checkpoint_every=3, image_size=32, tiny_cnn_width=8
    )
    return DistillConfig(**{**values, **overrides})


def record_with(scores: dict[str, float | None]) -> DatasetRecord:
    predictions = [StoredPrediction(model=name, score=score) for name, score in scores.items()]
    return DatasetRecord(
        item_id=1, external_id="x", image="x.jpg", label=None, split="train", predictions=predictions
    )


def test_teacher_is_the_weighted_mean_of_the_stored_scores():
    record = record_with({"yolo": 0.9, "vlm": 0.3, "clf": None})
    assert teacher_probability(record, {}) == pytest.approx(0.6)
    assert teacher_probability(record, {"yolo": 3.0, "vlm": 1.0}) == pytest.approx(0.75)
    assert teacher_probability(record, {"vlm": 1.0}) == pytest.approx(0.3)
    assert teacher_probability(record, {"other": 1.0}) is None


def test_soft_term_vanishes_when_the_student_matches_the_teacher():
    teacher = torch.tensor([0.8, 0.1])
    # student logits whose tempered softmax equals the tempered teacher: logit difference = teacher logit
    z = torch.log(teacher / (1 - teacher))
    student = torch.stack([torch.zeros(2), z], dim=-1)
    loss = distillation_loss(
        student,
        teacher,
        torch.tensor([True, True]),
        torch.tensor([-1, -1]),
        alpha=1.0,
        temperature=3.0,
        weights=torch.ones(2),
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def test_hard_term_is_cross_entropy_over_labeled_items_only():
    logits = torch.tensor([[0.2, 1.0], [2.0, -1.0], [0.0, 0.0]])
    labels = torch.tensor([1, 0, -1])
    loss = distillation_loss(
        logits,
        torch.full((3,), 0.5),
        torch.tensor([True, True, True]),
        labels,
        alpha=0.0,
        temperature=2.0,
        weights=torch.ones(2),
    )
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits[:2], labels[:2])))


def test_soft_term_is_scaled_by_temperature_squared():
    logits = torch.tensor([[0.0, 0.0]])
    args = (torch.tensor([0.9]), torch.tensor([True]), torch.tensor([-1]))
    at_1 = distillation_loss(logits, *args, alpha=1.0, temperature=1.0, weights=torch.ones(2))
    kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert float(at_1) == pytest.approx(kl, rel=1e-5)


def test_distill_reports_student_and_teacher_mcc_and_saves_a_reloadable_student(
    roadwork_dataset_dir, tmp_path
):
    reporter = MemoryReporter()
    result = run(tiny_config(), roadwork_dataset_dir, reporter, tmp_path / "job")
    for key in ("mcc", "teacher_mcc", "teacher_auroc", "val_mcc", "auroc"):
        assert key in result.metrics, key
    assert -1.0 <= result.metrics["teacher_mcc"] <= 1.0
    assert result.metrics["teacher_n"] == len(split_records(roadwork_dataset_dir, "holdout"))
    for name in ("student/student.pt", "student/student.json", "threshold.json", "metrics.json", "README.md"):
        assert (result.artifact_dir / name).exists(), name
    assert [step for step, _ in reporter.steps] == list(range(1, 7))

    student, preprocessing = load_tiny_cnn(result.artifact_dir / "student")
    records = split_records(roadwork_dataset_dir, "holdout")
    size = preprocessing["image_size"]
    transform = image_transform(
        size,
        Normalisation(tuple(preprocessing["image_mean"]), tuple(preprocessing["image_std"])),
        augment=False,
    )
    pixels = torch.stack([transform(load_image(roadwork_dataset_dir.image_path(r), size)) for r in records])
    with torch.no_grad():
        logits = student(pixels)
    temperature = result.metrics["temperature"]
    probs = torch.sigmoid((logits[:, 1] - logits[:, 0]) / temperature).numpy()
    np.testing.assert_allclose(probs, [result.holdout_scores[r.item_id] for r in records], atol=1e-5)


def test_unlabeled_items_change_the_student_only_when_used(roadwork_dataset_factory, tmp_path):
    with_unlabeled = roadwork_dataset_factory(n_unlabeled=8)
    labeled_records = [r for r in with_unlabeled.records() if r.label is not None]
    assert len(labeled_records) < len(with_unlabeled.records())
    labeled_only = write_dataset_dir(tmp_path / "labeled-only", with_unlabeled.info, labeled_records)

    ignored = run(tiny_config(use_unlabeled=False), with_unlabeled, MemoryReporter(), tmp_path / "ignored")
    absent = run(tiny_config(use_unlabeled=False), labeled_only, MemoryReporter(), tmp_path / "absent")
    used = run(tiny_config(use_unlabeled=True), with_unlabeled, MemoryReporter(), tmp_path / "used")

    ids = sorted(absent.holdout_scores)
    scores = {
        name: np.array([r.holdout_scores[i] for i in ids])
        for name, r in {"ignored": ignored, "absent": absent, "used": used}.items()
    }
    np.testing.assert_allclose(scores["ignored"], scores["absent"], atol=1e-7)
    assert np.abs(scores["used"] - scores["absent"]).max() > 1e-4
    assert used.metrics["unlabeled_train_items"] == 8.0 and ignored.metrics["unlabeled_train_items"] == 0.0


def test_distill_resumes_with_batchnorm_statistics(roadwork_dataset_dir, tmp_path):
    config = tiny_config(max_steps=6, checkpoint_every=2)
    reporter = MemoryReporter(cancel_after_step=3)
    with pytest.raises(JobCancelled):  # the checkpoint at step 2 stays for the retry
        run(config, roadwork_dataset_dir, reporter, tmp_path / "job")
    resumed = MemoryReporter()
    result = run(config, roadwork_dataset_dir, resumed, tmp_path / "job")
    straight = run(config, roadwork_dataset_dir, MemoryReporter(), tmp_path / "straight")
    assert resumed.steps[0][0] == 3
    ids = sorted(straight.holdout_scores)
    np.testing.assert_allclose(
        [result.holdout_scores[i] for i in ids], [straight.holdout_scores[i] for i in ids], atol=1e-6
    )


def test_distill_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="^alpha:"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ValueError, match="^temperature:"):
        DistillConfig(temperature=0)
    with pytest.raises(ValueError, match="^teacher_weights:"):
        DistillConfig(teacher_weights={"yolo": -1.0})
    with pytest.raises(ValueError, match="^image_size:"):
        DistillConfig(image_size=0)


def test_missing_student_path_is_a_config_error(roadwork_dataset_dir, tmp_path):
    config = replace(tiny_config(), student=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="^student:"):
        run(config, roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
