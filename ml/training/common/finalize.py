"""After training: keep raw or EMA weights by val MCC, fit a temperature, pick the MCC-optimal threshold on
val, score the holdout and write threshold.json, metrics.json and the model card."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.dataset import DatasetInfo
from ml.evaluation import apply_temperature, fit_temperature, mcc_optimal_threshold
from ml.multiclass import ARGMAX_THRESHOLD, fit_multiclass_temperature, multiclass_mcc, softmax
from ml.training.common.artifacts import write_decision_files, write_model_card
from ml.training.common.config import ImageTrainingConfig
from ml.training.common.data import SplitData
from ml.training.common.ema import WeightEMA
from ml.training.common.holdout import holdout_report, multiclass_holdout_report
from ml.training.common.loop import Evaluate, LossFn, predict_logits, train_steps, val_mcc_evaluator
from ml.training.reporting import Reporter, TrainingResult


@dataclass
class Calibration:
    threshold: float
    temperature: float
    val_mcc: float
    weights: str  # "raw" or "ema": which weights were kept
    holdout_scores: dict[int, float]
    holdout_metrics: dict[str, float]
    slices: dict[str, dict] = field(default_factory=dict)
    reliability: list[dict] = field(default_factory=list)
    classes: list[str] = field(default_factory=lambda: ["negative", "positive"])
    holdout_probs: dict[int, list[float]] = field(default_factory=dict)  # multiclass only: softmax per item
    per_class: dict[str, dict] = field(default_factory=dict)

    @property
    def multiclass(self) -> bool:
        return len(self.classes) > 2


def keep_better_weights(
    model: nn.Module, ema: WeightEMA | None, evaluate: Evaluate, reporter: Reporter
) -> str:
    """Loads the EMA weights into `model` when they beat the raw weights on val MCC; returns which won."""
    if ema is None:
        return "raw"
    raw_mcc = evaluate(model)["val_mcc"]
    with ema.applied(model):
        ema_mcc = evaluate(model)["val_mcc"]
    reporter.log(f"val MCC raw={raw_mcc:.4f} ema={ema_mcc:.4f}")
    if ema_mcc > raw_mcc:
        ema.copy_to(model)
        return "ema"
    return "raw"


def _binary_logit(logits: np.ndarray) -> np.ndarray:
    return logits[:, 1] - logits[:, 0]


def calibrate_and_score(
    model: nn.Module,
    data: SplitData,
    device: torch.device,
    *,
    weights: str,
    calibrate: bool,
    n_thresholds: int,
    classes: list[str] | None = None,
) -> Calibration:
    """Temperature and threshold from val only; every holdout number at that frozen threshold (for more than
    two classes: the temperature from val, the argmax decides)."""
    classes = list(classes or ["negative", "positive"])
    val_logits, val_labels = predict_logits(model, data.val, device)
    holdout_logits, holdout_labels = predict_logits(model, data.holdout, device)
    if len(classes) > 2:
        return _multiclass_calibration(
            val_logits, val_labels, holdout_logits, holdout_labels, data, weights, calibrate, classes
        )
    val_z = _binary_logit(val_logits)
    temperature = fit_temperature(val_z, val_labels) if calibrate else 1.0
    threshold, val_mcc = mcc_optimal_threshold(
        apply_temperature(val_z, temperature), val_labels, n_thresholds
    )
    holdout_scores = apply_temperature(_binary_logit(holdout_logits), temperature)
    labeled = holdout_labels >= 0
    labeled_records = [r for r, keep in zip(data.holdout_records, labeled, strict=True) if keep]
    report = holdout_report(holdout_scores[labeled], holdout_labels[labeled], threshold, labeled_records)
    return Calibration(
        threshold=threshold,
        temperature=temperature,
        val_mcc=val_mcc,
        weights=weights,
        holdout_scores={
            r.item_id: float(s) for r, s in zip(data.holdout_records, holdout_scores, strict=True)
        },
        holdout_metrics=report.metrics,
        slices=report.slices,
        reliability=report.reliability,
        classes=classes,
    )


def _multiclass_calibration(
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    holdout_logits: np.ndarray,
    holdout_labels: np.ndarray,
    data: SplitData,
    weights: str,
    calibrate: bool,
    classes: list[str],
) -> Calibration:
    """softmax(logits / T) with T fitted on val; holdout scores are the top-1 probability, the full
    distribution goes to `holdout_probs` (what the registry measures)."""
    temperature = fit_multiclass_temperature(val_logits, val_labels) if calibrate else 1.0
    val_mcc = multiclass_mcc(val_labels, val_logits.argmax(axis=1), len(classes))
    probs = softmax(holdout_logits, temperature)
    labeled = holdout_labels >= 0
    labeled_records = [r for r, keep in zip(data.holdout_records, labeled, strict=True) if keep]
    report = multiclass_holdout_report(probs[labeled], holdout_labels[labeled], classes, labeled_records)
    records = data.holdout_records
    return Calibration(
        threshold=ARGMAX_THRESHOLD,
        temperature=temperature,
        val_mcc=val_mcc,
        weights=weights,
        holdout_scores={r.item_id: float(p.max()) for r, p in zip(records, probs, strict=True)},
        holdout_metrics=report.metrics,
        slices=report.slices,
        reliability=report.reliability,
        classes=classes,
        holdout_probs={r.item_id: [float(v) for v in p] for r, p in zip(records, probs, strict=True)},
        per_class=report.per_class,
    )


def summary_metrics(calibration: Calibration, extra: dict[str, float]) -> dict[str, float]:
    """The flat metrics of a TrainingResult: holdout metrics plus the val and training figures."""
    return {
        **calibration.holdout_metrics,
        "val_mcc": calibration.val_mcc,
        "temperature": calibration.temperature,
        "ema_selected": 1.0 if calibration.weights == "ema" else 0.0,
        **extra,
    }


def train_and_calibrate(
    model: nn.Module,
    data: SplitData,
    loss_fn: LossFn,
    config: ImageTrainingConfig,
    device: torch.device,
    reporter: Reporter,
    workdir: Path,
    extra_metrics: dict[str, float],
    classes: list[str] | None = None,
) -> tuple[Calibration, dict[str, float]]:
    """The common loop, then raw-vs-EMA choice, calibration and holdout scoring; returns the calibration and
    the flat metrics."""
    evaluate = val_mcc_evaluator(data.val, device, config.threshold_grid)
    outcome = train_steps(model, data.train, loss_fn, evaluate, config, reporter, workdir, device)
    chosen = keep_better_weights(model, outcome.ema, evaluate, reporter)
    calibration = calibrate_and_score(
        model,
        data,
        device,
        weights=chosen,
        calibrate=config.calibrate,
        n_thresholds=config.threshold_grid,
        classes=classes,
    )
    metrics = summary_metrics(calibration, {"steps": float(outcome.steps), **extra_metrics})
    reporter.metrics(outcome.steps, {f"holdout_{k}": v for k, v in calibration.holdout_metrics.items()})
    return calibration, metrics


def write_evaluation_files(
    artifact_dir: Path, calibration: Calibration, metrics: dict[str, float]
) -> dict[str, str]:
    threshold = {
        "threshold": calibration.threshold,
        "temperature": calibration.temperature,
        "positive_class_index": 1,
        "score": "softmax(logits / temperature)[positive_class_index] >= threshold",
        "val_mcc": calibration.val_mcc,
        "weights": calibration.weights,
    }
    if calibration.multiclass:
        threshold |= {
            "threshold": None,
            "positive_class_index": None,
            "classes": calibration.classes,
            "score": "argmax(softmax(logits / temperature)) (no threshold with more than two classes)",
        }
    report = {
        "summary": metrics,
        "holdout": calibration.holdout_metrics,
        "per_class": calibration.per_class,
        "slices": calibration.slices,
        "reliability": calibration.reliability,
    }
    return write_decision_files(artifact_dir, threshold, report)


def classifier_result(
    artifact_dir: Path,
    calibration: Calibration,
    metrics: dict[str, float],
    model_files: dict[str, str],
    *,
    dataset: DatasetInfo,
    title: str,
    method: str,
    base_model: str,
    settings: dict[str, Any],
) -> TrainingResult:
    """Writes threshold.json, metrics.json and the model card beside the saved model; the job's result."""
    files = {**write_evaluation_files(artifact_dir, calibration, metrics), **model_files}
    decision_rule = (
        f"`softmax(logits / {calibration.temperature:.4f})[1] >= {calibration.threshold:.4f}` "
        "(temperature fitted and threshold chosen for maximal MCC on the val split)"
    )
    if calibration.multiclass:
        decision_rule = (
            f"`argmax(softmax(logits / {calibration.temperature:.4f}))` over {len(calibration.classes)} "
            "classes (temperature fitted on the val split; no threshold)"
        )
    files |= write_model_card(
        artifact_dir,
        title=title,
        method=method,
        base_model=base_model,
        dataset=dataset,
        decision_rule=decision_rule,
        metrics=metrics,
        settings=settings,
        slices=calibration.slices,
        per_class=calibration.per_class,
    )
    return TrainingResult(
        artifact_dir=artifact_dir,
        threshold=calibration.threshold,
        metrics=metrics,
        holdout_scores=calibration.holdout_scores,
        files=files,
        holdout_probs=calibration.holdout_probs,
    )
