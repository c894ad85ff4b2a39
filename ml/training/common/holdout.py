"""Every job kind's holdout figures at its frozen val threshold, computed one way with `ml.evaluation` (torch-free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml.dataset import DatasetRecord
from ml.evaluation import binary_metrics, reliability_curve, slice_mcc
from ml.multiclass import multiclass_metrics, per_class_metrics, slice_multiclass_mcc, top1_reliability

SLICE_KEYS = ("is_night", "camera_id")


@dataclass
class HoldoutReport:
    metrics: dict[str, float]
    slices: dict[str, dict] = field(default_factory=dict)
    reliability: list[dict] = field(default_factory=list)
    per_class: dict[str, dict] = field(default_factory=dict)  # multiclass: precision, recall, f1, n per class


def holdout_slices(
    scores: Sequence[float], labels: Sequence[int], threshold: float, records: Sequence[DatasetRecord]
) -> dict[str, dict]:
    """MCC per camera and per day/night, from the records' metadata."""
    out = {}
    for key in SLICE_KEYS:
        values = [None if r.metadata.get(key) is None else str(r.metadata[key]) for r in records]
        out[key] = slice_mcc(scores, labels, threshold, values)
    return out


def holdout_report(
    scores: Sequence[float], labels: Sequence[int], threshold: float, records: Sequence[DatasetRecord]
) -> HoldoutReport:
    """Binary metrics, per-slice MCC and the reliability curve of the labeled holdout items at `threshold`."""
    return HoldoutReport(
        metrics=binary_metrics(scores, labels, threshold),
        slices=holdout_slices(scores, labels, threshold, records),
        reliability=reliability_curve(scores, labels),
    )


def multiclass_holdout_report(
    probs: Sequence[Sequence[float]],
    labels: Sequence[int],
    classes: Sequence[str],
    records: Sequence[DatasetRecord],
) -> HoldoutReport:
    """Multiclass metrics at the argmax, per-class precision/recall/F1, per-slice MCC and the top-1 reliability."""
    predictions = np.asarray(probs, dtype=np.float64).reshape(len(labels), len(classes)).argmax(axis=1)
    slices = {}
    for key in SLICE_KEYS:
        values = [None if r.metadata.get(key) is None else str(r.metadata[key]) for r in records]
        slices[key] = slice_multiclass_mcc(predictions, labels, len(classes), values)
    return HoldoutReport(
        metrics=multiclass_metrics(probs, labels, classes),
        slices=slices,
        reliability=top1_reliability(probs, labels),
        per_class=per_class_metrics(labels, predictions, classes),
    )
