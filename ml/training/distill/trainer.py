"""distill: a student trained on α·T²·KL(teacher‖student at T) + (1−α)·CE(human label), where the teacher is
the weighted ensemble of the cascade's stored predictions (the big models are never run again)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.dataset import DatasetRecord, DatasetVersionDir
from ml.evaluation import binary_metrics, mcc_optimal_threshold
from ml.training.bases import PRETRAIN_KIND, ResolvedBase, resolve_base, warm_start_folder
from ml.training.common.data import (
    NO_LABEL,
    Normalisation,
    class_weights,
    require_binary,
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
    pairs = [
        (weights.get(p.model, 0.0) if weights else 1.0, float(p.score))
        for p in record.predictions
        if p.score is not None
    ]
    pairs = [(w, s) for w, s in pairs if w > 0]
    if not pairs:
        return None
    return sum(w * s for w, s in pairs) / sum(w for w, _ in pairs)


def teacher_extras(weights: dict[str, float]):
    def extras(record: DatasetRecord) -> dict[str, torch.Tensor]:
        prob = teacher_probability(record, weights)
        return {
            "teacher_prob": torch.tensor(0.5 if prob is None else prob, dtype=torch.float32),
            "has_teacher": torch.tensor(prob is not None),
        }

    return extras


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_prob: torch.Tensor,
    has_teacher: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    temperature: float,
    weights: torch.Tensor,
) -> torch.Tensor:
    """α·T²·KL(teacher_T ‖ student_T) over items with a teacher + (1−α)·CE over labeled items."""
    loss = student_logits.new_zeros(())
    if alpha > 0 and bool(has_teacher.any()):
        p = teacher_prob[has_teacher].clamp(PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
        teacher_logit = torch.log(p) - torch.log1p(-p)
        teacher_t = torch.sigmoid(teacher_logit / temperature)
        target = torch.stack([1 - teacher_t, teacher_t], dim=-1)
        student_log_t = F.log_softmax(student_logits[has_teacher] / temperature, dim=-1)
        kl = F.kl_div(student_log_t, target, reduction="batchmean")
        loss = loss + alpha * temperature**2 * kl
    labeled = labels != NO_LABEL
    if alpha < 1 and bool(labeled.any()):
        loss = loss + (1 - alpha) * F.cross_entropy(student_logits[labeled], labels[labeled], weight=weights)
    return loss


def training_records(dataset: DatasetVersionDir, config: DistillConfig) -> list[DatasetRecord]:
    """Labeled train items, plus unlabeled ones that have a teacher score when use_unlabeled."""

    def usable(record: DatasetRecord) -> bool:
        if record.label is not None:
            return True
        return config.use_unlabeled and teacher_probability(record, config.teacher_weights) is not None

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
    """The ensemble's holdout MCC at its own MCC-optimal val threshold: what the student must match."""

    def scored(split) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(teacher_probability(r, weights), r.label) for r in split_records(dataset, split)]
        pairs = [(p, label) for p, label in pairs if p is not None]
        return np.array([p for p, _ in pairs]), np.array([label for _, label in pairs])

    val_scores, val_labels = scored("val")
    holdout_scores, holdout_labels = scored("holdout")
    if val_scores.size == 0 or holdout_scores.size == 0:
        return {"teacher_n": float(holdout_scores.size)}
    threshold, _ = mcc_optimal_threshold(val_scores, val_labels, n_thresholds)
    holdout = binary_metrics(holdout_scores, holdout_labels, threshold)
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
    require_binary(dataset)
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
        extras=teacher_extras(config.teacher_weights),
    )
    weights = class_weights([r.label for r in train_records if r.label is not None], config.class_weighting)
    weights = weights.to(device)

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = logits_of(model, batch["pixel_values"])
        return distillation_loss(
            logits,
            batch["teacher_prob"],
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
    calibration, metrics = train_and_calibrate(model, data, loss_fn, config, device, reporter, workdir, extra)

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
