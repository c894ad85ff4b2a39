"""distill: a student trained on α·T²·KL(teacher‖student at T) + (1−α)·CE(human label), where the teacher is
the weighted ensemble of the cascade's stored predictions (the big models are never run again)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.dataset import DatasetRecord, DatasetVersionDir, StoredPrediction
from ml.evaluation import binary_metrics, mcc_optimal_threshold
from ml.multiclass import multiclass_metrics
from ml.training.bases import PRETRAIN_KIND, ResolvedBase, resolve_base, warm_start_folder
from ml.training.common.data import (
    NO_LABEL,
    Normalisation,
    class_weights,
    require_classes,
    split_data,
    split_records,
)
from ml.training.common.finalize import classifier_result, train_and_calibrate
from ml.training.common.loop import logits_of
from ml.training.common.models import (
    export_processor,
    input_size,
    load_image_classifier,
    load_image_processor,
    normalisation_of,
    parameter_counts,
)
from ml.training.common.onnx_export import export_classifier_onnx
from ml.training.common.runtime import resolve_device
from ml.training.distill.config import TINY_CNN, DistillConfig
from ml.training.distill.student import TinyCNN, load_tiny_cnn, save_tiny_cnn
from ml.training.reporting import Reporter, TrainingResult

PROBABILITY_CLIP = 1e-4  # a teacher score of exactly 0 or 1 has an infinite logit


def teacher_probability(record: DatasetRecord, weights: dict[str, float]) -> float | None:
    """Weighted mean of the stored P(positive) of the cascade models; None when none of them scored the item."""
    distribution = teacher_distribution(record, weights, 2)
    return None if distribution is None else distribution[1]


def _stored_distribution(
    prediction: StoredPrediction, n_classes: int, classes: list[str] | None = None
) -> list[float] | None:
    """A cascade model's class probabilities for the item: its stored probs (K of them), for two classes its
    P(positive) score, for more a label naming one of `classes` as a one-hot vote; None when it left none."""
    if prediction.probs is not None and len(prediction.probs) == n_classes:
        return [float(v) for v in prediction.probs]
    if n_classes == 2 and prediction.score is not None:
        return [1.0 - float(prediction.score), float(prediction.score)]
    if n_classes > 2 and classes and prediction.label in classes:
        return [1.0 if name == prediction.label else 0.0 for name in classes]
    return None


def teacher_distribution(
    record: DatasetRecord, weights: dict[str, float], n_classes: int, classes: list[str] | None = None
) -> list[float] | None:
    """Weighted mean of the cascade models' stored class probabilities (P(positive) scores for two classes,
    the stored per-class probs, or a label as a one-hot vote, for more); None when none of them scored it."""
    pairs = []
    for prediction in record.predictions:
        weight = weights.get(prediction.model, 0.0) if weights else 1.0
        distribution = _stored_distribution(prediction, n_classes, classes) if weight > 0 else None
        if distribution is not None:
            pairs.append((weight, np.asarray(distribution)))
    if not pairs:
        return None
    mean = sum(w * d for w, d in pairs) / sum(w for w, _ in pairs)
    return [float(v) for v in mean]


def teacher_extras(weights: dict[str, float], classes: list[str]):
    n_classes = len(classes)

    def extras(record: DatasetRecord) -> dict[str, torch.Tensor]:
        distribution = teacher_distribution(record, weights, n_classes, classes)
        uniform = [1.0 / n_classes] * n_classes
        return {
            "teacher_probs": torch.tensor(
                uniform if distribution is None else distribution, dtype=torch.float32
            ),
            "has_teacher": torch.tensor(distribution is not None),
        }

    return extras


def tempered_targets(teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log(p) / T): the teacher softened at T (for two classes, sigmoid(logit(p) / T)); a P(positive)
    vector (n,) stands for the two-class distribution [1 - p, p]."""
    if teacher_probs.dim() == 1:
        teacher_probs = torch.stack([1 - teacher_probs, teacher_probs], dim=-1)
    clipped = teacher_probs.clamp(PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return torch.softmax(torch.log(clipped) / temperature, dim=-1)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    has_teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    temperature: float,
    weights: torch.Tensor,
) -> torch.Tensor:
    """α·T²·KL(teacher_T ‖ student_T) over items with a teacher + (1−α)·CE over labeled items; the teacher is
    (n, K) class probabilities, or (n,) P(positive) for two classes."""
    loss = student_logits.new_zeros(())
    if alpha > 0 and bool(has_teacher.any()):
        target = tempered_targets(teacher_probs[has_teacher], temperature)
        student_log_t = F.log_softmax(student_logits[has_teacher] / temperature, dim=-1)
        kl = F.kl_div(student_log_t, target, reduction="batchmean")
        loss = loss + alpha * temperature**2 * kl
    labeled = labels != NO_LABEL
    if alpha < 1 and bool(labeled.any()):
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits[labeled], labels[labeled], weight=weights)
    return loss


def training_records(dataset: DatasetVersionDir, config: DistillConfig) -> list[DatasetRecord]:
    """Labeled train items, plus unlabeled ones that have a teacher score when use_unlabeled."""
    classes = dataset.info.classes

    def usable(record: DatasetRecord) -> bool:
        if record.label is not None:
            return True
        distribution = teacher_distribution(record, config.teacher_weights, len(classes), classes)
        return config.use_unlabeled and distribution is not None

    return [r for r in split_records(dataset, "train", labeled_only=False) if usable(r)]


def build_student(config: DistillConfig, base: ResolvedBase, classes: list[str]) -> tuple[nn.Module, object]:
    """The student: a fresh tiny CNN, a warm-started one (its saved weights), or an HF image classifier."""
    torch.manual_seed(config.seed)
    if config.student == TINY_CNN:
        return TinyCNN(num_labels=len(classes), width=config.tiny_cnn_width), None
    path = Path(base.path)
    if (path / "student.json").is_file():
        model, _ = load_tiny_cnn(path)
        if model.num_labels != len(classes):
            model.classifier = nn.Linear(model.classifier.in_features, len(classes))
            model.num_labels = len(classes)
        return model.train(), None
    if base.source != "builtin" and not path.exists():
        raise ValueError(
            f"student: {config.student!r} is neither 'tiny-cnn' nor an existing local model path"
        )
    return load_image_classifier(base.path, classes), load_image_processor(base.path)


def teacher_metrics(
    dataset: DatasetVersionDir, weights: dict[str, float], n_thresholds: int
) -> dict[str, float]:
    """The ensemble's holdout MCC at its own MCC-optimal val threshold (the argmax for more than two classes):
    what the student must match."""
    classes = dataset.info.classes

    def scored(split) -> tuple[np.ndarray, np.ndarray]:
        records = split_records(dataset, split)
        pairs = [(teacher_distribution(r, weights, len(classes), classes), r.label) for r in records]
        pairs = [(p, label) for p, label in pairs if p is not None]
        return np.array([p for p, _ in pairs]).reshape(-1, len(classes)), np.array(
            [label for _, label in pairs]
        )

    val_probs, val_labels = scored("val")
    holdout_probs, holdout_labels = scored("holdout")
    if val_labels.size == 0 or holdout_labels.size == 0:
        return {"teacher_n": float(holdout_labels.size)}
    if len(classes) > 2:
        holdout = multiclass_metrics(holdout_probs, holdout_labels, classes)
        return {
            "teacher_mcc": holdout["mcc"],
            "teacher_accuracy": holdout["accuracy"],
            "teacher_n": holdout["n"],
        }
    threshold, _ = mcc_optimal_threshold(val_probs[:, 1], val_labels, n_thresholds)
    holdout = binary_metrics(holdout_probs[:, 1], holdout_labels, threshold)
    return {
        "teacher_mcc": holdout["mcc"],
        "teacher_auroc": holdout["auroc"],
        "teacher_threshold": threshold,
        "teacher_n": holdout["n"],
    }


def save_student(
    model: nn.Module, processor, artifact_dir: Path, size: int, normalisation: Normalisation
) -> dict[str, str]:
    if isinstance(model, TinyCNN):
        preprocessing = {
            "image_size": size,
            "image_mean": list(normalisation.mean),
            "image_std": list(normalisation.std),
        }
        save_tiny_cnn(model, artifact_dir / "student", preprocessing)
        return {"model": "student"}
    model.save_pretrained(artifact_dir / "merged")
    export_processor(processor, size, normalisation).save_pretrained(artifact_dir / "merged")
    return {"model": "merged"}


def run(
    config: DistillConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    n_classes = require_classes(dataset)
    device = resolve_device(config.device)
    base = resolve_base(config.student, workdir)
    model, processor = build_student(config, base, dataset.info.classes)
    size = input_size(config.image_size, model, processor)
    normalisation = normalisation_of(processor)
    model.to(device)
    train_records = training_records(dataset, config)
    n_unlabeled = sum(r.label is None for r in train_records)
    reporter.log(
        f"distilling into {config.student}: {len(train_records)} train items ({n_unlabeled} unlabeled)"
    )
    data = split_data(
        dataset,
        train_records,
        size,
        normalisation,
        augment=config.augment,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        illumination=config.illumination,
        extras=teacher_extras(config.teacher_weights, dataset.info.classes),
    )
    labels = [r.label for r in train_records if r.label is not None]
    weights = class_weights(labels, config.class_weighting, n_classes)
    weights = weights.to(device)

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = logits_of(model, batch["pixel_values"])
        return distillation_loss(
            logits,
            batch["teacher_probs"],
            batch["has_teacher"],
            batch["labels"],
            alpha=config.alpha,
            temperature=config.temperature,
            weights=weights,
        )

    trainable, _ = parameter_counts(model)
    extra = {
        "trainable_params": float(trainable),
        "unlabeled_train_items": float(n_unlabeled),
        **teacher_metrics(dataset, config.teacher_weights, config.threshold_grid),
    }
    calibration, metrics = train_and_calibrate(
        model, data, loss_fn, config, device, reporter, workdir, extra, classes=dataset.info.classes
    )

    artifact_dir = workdir / "artifacts"
    model_files = save_student(model.cpu(), processor, artifact_dir, size, normalisation)
    model_files |= export_classifier_onnx(
        model,
        artifact_dir,
        size=size,
        normalisation=normalisation,
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        classes=dataset.info.classes,
        illumination=config.illumination,
    )
    teachers = ", ".join(f"{k}={v}" for k, v in config.teacher_weights.items()) or "all cascade models, equal"
    result = classifier_result(
        artifact_dir,
        calibration,
        metrics,
        model_files,
        dataset=dataset.info,
        title=f"{dataset.info.project} distilled student v{dataset.info.version}",
        method=f"distillation (alpha={config.alpha}, T={config.temperature}; teachers: {teachers})",
        base_model=base.label,
        settings=asdict(config),
    )
    result.method = "warm-start" if base.source == "registry" else ""
    if base.source == PRETRAIN_KIND:
        result.method = f"from-pretrain-{warm_start_folder(base.reference)}"
    return result
