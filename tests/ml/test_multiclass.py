"""Multiclass (K > 2) training: the metrics against scikit-learn, and classifier_lora and distill trained,
evaluated, exported to ONNX and scored by the client's predictor on a 3-class dataset of real photos."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import matthews_corrcoef

from ml.dataset import DatasetRecord, StoredPrediction
from ml.multiclass import (
    bootstrap_multiclass_mcc_difference,
    bootstrap_multiclass_mcc_interval,
    multiclass_mcc,
    multiclass_metrics,
    per_class_metrics,
)
from ml.tiny import build_tiny_vit_classifier
from ml.training.classifier_lora.config import ClassifierLoraConfig
from ml.training.classifier_lora.trainer import run as run_classifier
from ml.training.common.data import class_weights, require_classes, split_records
from ml.training.distill.config import DistillConfig
from ml.training.distill.trainer import distillation_loss, teacher_distribution
from ml.training.distill.trainer import run as run_distill
from ml.training.reporting import MemoryReporter

pytestmark = pytest.mark.slow


def test_multiclass_mcc_and_its_bootstraps_agree_with_scikit_learn():
    """Gorodkin's MCC equals sklearn's matthews_corrcoef; one bootstrap resample of all items equals it too."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    assert multiclass_mcc(labels, predictions, 4) == pytest.approx(matthews_corrcoef(labels, predictions))
    interval = bootstrap_multiclass_mcc_interval(predictions, labels, 4, n_boot=300)
    assert interval["ci_low"] < matthews_corrcoef(labels, predictions) < interval["ci_high"]
    same = bootstrap_multiclass_mcc_difference(predictions, predictions, labels, 4, n_boot=50)
    assert same["mean"] == 0.0 and same["p_better"] == 0.0
    better = bootstrap_multiclass_mcc_difference(labels, predictions, labels, 4, n_boot=200)
    assert better["ci_low"] > 0 and better["p_better"] == 1.0


def test_per_class_metrics_and_flat_metrics_at_the_argmax():
    """Precision/recall/F1 per class are one-vs-rest at the argmax; the flat figures include MCC and macro F1."""
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    labels = np.array([0, 1, 2, 2])
    per_class = per_class_metrics(labels, probs.argmax(axis=1), ["a", "b", "c"])
    assert per_class["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "n": 1.0}
    assert per_class["c"]["recall"] == 0.5
    metrics = multiclass_metrics(probs, labels, ["a", "b", "c"])
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(labels, probs.argmax(axis=1)))
    assert metrics["accuracy"] == 0.75 and metrics["n"] == 4.0


def test_class_weights_and_dataset_check_take_k_classes(multiclass_dataset_dir):
    """A 3-class dataset passes the check with K=3; weights are inverse frequency over the three classes."""
    assert require_classes(multiclass_dataset_dir) == 3
    weights = class_weights([0, 0, 1, 2, -1], "balanced", 3)
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 4 / 3, 4 / 3]))


def test_teacher_of_a_multiclass_item_is_the_weighted_mean_of_stored_probs(multiclass_dataset_dir):
    """The distillation teacher averages the cascade models' stored class probabilities with their weights."""
    record = multiclass_dataset_dir.records("train")[0]
    vlm, clf = (np.array(p.probs) for p in record.predictions)
    np.testing.assert_allclose(teacher_distribution(record, {}, 3), (vlm + clf) / 2)
    np.testing.assert_allclose(teacher_distribution(record, {"vlm": 3.0, "clf": 1.0}, 3), (3 * vlm + clf) / 4)
    assert teacher_distribution(record, {}, 2) is None  # K-class probs do not teach a 2-class student


def test_a_cascade_model_that_only_names_a_class_votes_one_hot():
    """A multiclass prediction with a class label but no probs counts as a one-hot vote in the teacher."""
    predictions = [
        StoredPrediction(model="vlm", probs=[0.2, 0.6, 0.2]),
        StoredPrediction(model="rules", label="dashcam_roadwork"),
        StoredPrediction(model="other", label="not-a-class"),
    ]
    record = DatasetRecord(
        item_id=1, external_id="x", image="x.jpg", label=None, split="train", predictions=predictions
    )
    classes = ["clear", "roadwork", "dashcam_roadwork"]
    np.testing.assert_allclose(teacher_distribution(record, {}, 3, classes), [0.1, 0.3, 0.6])


def test_soft_term_vanishes_when_a_k_class_student_matches_the_teacher():
    """KL(teacher_T || student_T) is zero when the student's logits are the log of the teacher's probs."""
    teacher = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    loss = distillation_loss(
        torch.log(teacher),
        teacher,
        torch.tensor([True, True]),
        torch.tensor([-1, -1]),
        alpha=1.0,
        temperature=2.0,
        weights=torch.ones(3),
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


def _check_multiclass_result(result, dataset):
    """Argmax decision, probabilities for every holdout item, per-class report, ONNX predictor agreeing."""
    from app.client import OnnxPredictor

    holdout = split_records(dataset, "holdout", labeled_only=False)
    assert set(result.holdout_probs) == {r.item_id for r in holdout}
    for item_id, probs in result.holdout_probs.items():
        assert len(probs) == 3 and sum(probs) == pytest.approx(1.0)
        assert result.holdout_scores[item_id] == pytest.approx(max(probs))
    assert result.threshold == 0.0
    assert -1.0 <= result.metrics["mcc"] <= 1.0 and result.metrics["n"] == len(holdout)
    report = json.loads((result.artifact_dir / "metrics.json").read_text())
    assert set(report["per_class"]) == {"clear", "roadwork", "dashcam_roadwork"}
    decision = json.loads((result.artifact_dir / "threshold.json").read_text())
    assert decision["threshold"] is None and decision["classes"] == list(dataset.info.classes)
    assert "argmax" in (result.artifact_dir / "README.md").read_text()

    predictor = OnnxPredictor.load(result.artifact_dir / result.files["onnx"])
    assert predictor.multiclass and predictor.threshold is None
    images = [dataset.image_path(r) for r in holdout]
    probs = predictor.scores(images)
    np.testing.assert_allclose(probs, [result.holdout_probs[r.item_id] for r in holdout], atol=1e-4)
    assert predictor.predict(images) == [dataset.info.classes[k] for k in probs.argmax(axis=1)]


def test_classifier_lora_trains_and_evaluates_three_classes(multiclass_dataset_dir, tmp_path):
    """classifier_lora on a 3-class dataset: a 3-way softmax head, multiclass holdout figures, ONNX export."""
    base = build_tiny_vit_classifier(tmp_path / "tiny-vit")
    config = ClassifierLoraConfig(base_model=str(base), max_steps=3, batch_size=8, eval_every=3, lora_r=4)
    reporter = MemoryReporter()
    result = run_classifier(config, multiclass_dataset_dir, reporter, tmp_path / "job")
    assert any("val_mcc" in values for _, values in reporter.history)
    _check_multiclass_result(result, multiclass_dataset_dir)


def test_distill_learns_three_classes_from_stored_class_probabilities(tmp_path):
    """distill on a 3-class dataset with unlabeled items: soft targets from stored probs, teacher MCC reported."""
    from tests.ml.conftest import write_multiclass_dataset

    dataset = write_multiclass_dataset(tmp_path / "data", n_unlabeled=4)
    config = DistillConfig(max_steps=4, batch_size=8, eval_every=2, image_size=32, tiny_cnn_width=8)
    result = run_distill(config, dataset, MemoryReporter(), tmp_path / "job")
    assert result.metrics["unlabeled_train_items"] >= 1
    assert 0.0 < result.metrics["teacher_mcc"] <= 1.0  # the simulated cascade is right more often than not
    _check_multiclass_result(result, dataset)
