"""After training: keep raw or EMA weights by val MCC, fit a temperature, pick the MCC-optimal threshold on
val, score the holdout and write threshold.json / metrics.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.dataset import DatasetRecord
from ml.evaluation import (
    apply_temperature,
    binary_metrics,
    fit_temperature,
    mcc_optimal_threshold,
    reliability_curve,
)
from ml.evaluation import slice_mcc as slice_mcc_of
from ml.training.common.config import ImageTrainingConfig
from ml.training.common.data import SplitData
from ml.training.common.ema import WeightEMA
from ml.training.common.loop import Evaluate, TrainOutcome, predict_logits
from ml.training.reporting import Reporter

SLICE_KEYS = ("is_night", "camera_id")


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


def _slices(scores: np.ndarray, labels: np.ndarray, threshold: float, records: list[DatasetRecord]) -> dict:
    out = {}
    for key in SLICE_KEYS:
        values = [None if r.metadata.get(key) is None else str(r.metadata[key]) for r in records]
        out[key] = slice_mcc_of(scores, labels, threshold, values)
    return out


def calibrate_and_score(
    model: nn.Module,
    data: SplitData,
    device: torch.device,
    *,
    weights: str,
    calibrate: bool,
    n_thresholds: int,
) -> Calibration:
    """Temperature and threshold from val only; every holdout number at that frozen threshold."""
    val_logits, val_labels = predict_logits(model, data.val, device)
    val_z = _binary_logit(val_logits)
    temperature = fit_temperature(val_z, val_labels) if calibrate else 1.0
    threshold, val_mcc = mcc_optimal_threshold(
        apply_temperature(val_z, temperature), val_labels, n_thresholds
    )
    holdout_logits, holdout_labels = predict_logits(model, data.holdout, device)
    holdout_scores = apply_temperature(_binary_logit(holdout_logits), temperature)
    labeled = holdout_labels >= 0
    labeled_records = [r for r, keep in zip(data.holdout_records, labeled, strict=True) if keep]
    scores, labels = holdout_scores[labeled], holdout_labels[labeled]
    return Calibration(
        threshold=threshold,
        temperature=temperature,
        val_mcc=val_mcc,
        weights=weights,
        holdout_scores={
            r.item_id: float(s) for r, s in zip(data.holdout_records, holdout_scores, strict=True)
        },
        holdout_metrics=binary_metrics(scores, labels, threshold),
        slices=_slices(scores, labels, threshold, labeled_records),
        reliability=reliability_curve(scores, labels),
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


def finish_training(
    model: nn.Module,
    outcome: TrainOutcome,
    data: SplitData,
    evaluate: Evaluate,
    config: ImageTrainingConfig,
    device: torch.device,
    reporter: Reporter,
    extra_metrics: dict[str, float],
) -> tuple[Calibration, dict[str, float]]:
    """Raw-vs-EMA choice, calibration and holdout scoring; returns the calibration and the flat metrics."""
    chosen = keep_better_weights(model, outcome.ema, evaluate, reporter)
    calibration = calibrate_and_score(
        model, data, device, weights=chosen, calibrate=config.calibrate, n_thresholds=config.threshold_grid
    )
    metrics = summary_metrics(calibration, {"steps": float(outcome.steps), **extra_metrics})
    reporter.metrics(outcome.steps, {f"holdout_{k}": v for k, v in calibration.holdout_metrics.items()})
    return calibration, metrics


def write_evaluation_files(
    artifact_dir: Path, calibration: Calibration, metrics: dict[str, float]
) -> dict[str, str]:
    artifact_dir.mkdir(parents=True, exist_ok=True)
    threshold = {
        "threshold": calibration.threshold,
        "temperature": calibration.temperature,
        "positive_class_index": 1,
        "score": "softmax(logits / temperature)[positive_class_index] >= threshold",
        "val_mcc": calibration.val_mcc,
        "weights": calibration.weights,
    }
    (artifact_dir / "threshold.json").write_text(json.dumps(threshold, indent=2))
    report = {
        "summary": metrics,
        "holdout": calibration.holdout_metrics,
        "slices": calibration.slices,
        "reliability": calibration.reliability,
    }
    (artifact_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    return {"threshold": "threshold.json", "metrics": "metrics.json"}
