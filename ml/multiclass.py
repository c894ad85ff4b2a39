"""Multiclass (K > 2) metrics shared by the trainers and the model registry (no torch): the decision is the
argmax of the class probabilities (no threshold), MCC is Gorodkin's K-category MCC (what sklearn's
matthews_corrcoef computes), bootstraps resample items like their binary counterparts in ml.evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml.evaluation import UNKNOWN_SLICE

ARGMAX_THRESHOLD = 0.0  # what the registry stores as a multiclass model's threshold: unused, argmax decides


def _probs_and_labels(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs_arr = np.asarray(probs, dtype=np.float64)
    labels_arr = np.asarray(labels).reshape(-1).astype(np.int64)
    if probs_arr.ndim != 2 or probs_arr.shape[0] != labels_arr.size:
        raise ValueError(f"probs: expected shape ({labels_arr.size}, K), got {probs_arr.shape}")
    return probs_arr, labels_arr


def confusion_matrix(labels, predictions, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    labels_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
    pred_arr = np.asarray(predictions, dtype=np.int64).reshape(-1)
    return np.bincount(labels_arr * n_classes + pred_arr, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def _mcc_from_confusions(confusions: np.ndarray) -> np.ndarray:
    """Gorodkin's MCC of (..., K, K) confusion matrices; 0 where undefined."""
    c = confusions.astype(np.float64)
    s = c.sum(axis=(-2, -1))
    correct = np.trace(c, axis1=-2, axis2=-1)
    true_counts, pred_counts = c.sum(axis=-1), c.sum(axis=-2)
    numerator = correct * s - np.sum(true_counts * pred_counts, axis=-1)
    denominator = np.sqrt((s**2 - np.sum(pred_counts**2, axis=-1)) * (s**2 - np.sum(true_counts**2, axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def multiclass_mcc(labels, predictions, n_classes: int) -> float:
    return float(_mcc_from_confusions(confusion_matrix(labels, predictions, n_classes)))


def per_class_metrics(labels, predictions, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (one-vs-rest at the argmax decision)."""
    matrix = confusion_matrix(labels, predictions, len(classes))
    out = {}
    for k, name in enumerate(classes):
        tp = float(matrix[k, k])
        predicted, actual = float(matrix[:, k].sum()), float(matrix[k, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"precision": precision, "recall": recall, "f1": f1, "n": actual}
    return out


def top1_reliability(probs, labels, n_bins: int = 10) -> list[dict]:
    """Non-empty equal-width bins of the top-1 probability with the observed top-1 accuracy."""
    probs_arr, labels_arr = _probs_and_labels(probs, labels)
    confidence = probs_arr.max(axis=1)
    correct = probs_arr.argmax(axis=1) == labels_arr
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        members = index == b
        if members.any():
            out.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "mean_confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                    "count": int(members.sum()),
                }
            )
    return out


def multiclass_metrics(probs, labels, classes: Sequence[str]) -> dict[str, float]:
    """The flat figures of a multiclass model at the argmax: MCC, accuracy, macro F1, log loss, top-1 ECE."""
    probs_arr, labels_arr = _probs_and_labels(probs, labels)
    predictions = probs_arr.argmax(axis=1)
    per_class = per_class_metrics(labels_arr, predictions, classes)
    n = int(labels_arr.size)
    picked = np.clip(probs_arr[np.arange(n), labels_arr], 1e-12, 1.0) if n else np.zeros(0)
    bins = top1_reliability(probs_arr, labels_arr)
    macro_f1 = float(np.mean([c["f1"] for c in per_class.values()]))
    return {
        "mcc": multiclass_mcc(labels_arr, predictions, len(classes)),
        "accuracy": float((predictions == labels_arr).mean()) if n else 0.0,
        "f1": macro_f1,
        "macro_f1": macro_f1,
        "auroc": _macro_auroc(probs_arr, labels_arr),
        "log_loss": float(-np.log(picked).mean()) if n else 0.0,
        "ece": float(sum(b["count"] * abs(b["mean_confidence"] - b["accuracy"]) for b in bins) / n)
        if n
        else 0.0,
        "n": float(n),
        "classes": float(len(classes)),
    }


def _macro_auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """One-vs-rest AUROC averaged over classes; NaN unless every class is present in `labels`."""
    if np.unique(labels).size != probs.shape[1]:
        return float("nan")
    from sklearn.metrics import roc_auc_score  # heavy import, only where a model is measured

    renormalised = probs / probs.sum(axis=1, keepdims=True)
    return float(roc_auc_score(labels, renormalised, multi_class="ovr", average="macro"))


def slice_multiclass_mcc(
    predictions, labels, n_classes: int, slice_values: Sequence[str | None]
) -> dict[str, dict]:
    """Multiclass MCC per metadata slice; missing values are grouped under "unknown"."""
    pred_arr = np.asarray(predictions, dtype=np.int64)
    labels_arr = np.asarray(labels, dtype=np.int64)
    names = np.array([UNKNOWN_SLICE if v is None else str(v) for v in slice_values], dtype=object)
    out = {}
    for name in sorted(set(names.tolist())):
        members = names == name
        out[name] = {
            "mcc": multiclass_mcc(labels_arr[members], pred_arr[members], n_classes),
            "n": int(members.sum()),
        }
    return out


def _boot_mcc(predictions: np.ndarray, labels: np.ndarray, idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Multiclass MCC of each resample (rows of `idx`)."""
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    cells = labels[idx].reshape(-1) * n_classes + predictions[idx].reshape(-1)
    counts = np.bincount(rows * n_classes * n_classes + cells, minlength=idx.shape[0] * n_classes * n_classes)
    return _mcc_from_confusions(counts.reshape(idx.shape[0], n_classes, n_classes))


def _resamples(n_items: int, n_boot: int, seed: int):
    if n_boot < 1:
        raise ValueError("n_boot: must be at least 1")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // max(1, n_items))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n_items, size=(min(chunk, n_boot - start), n_items))


def bootstrap_multiclass_mcc_interval(
    predictions, labels, n_classes: int, *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Bootstrap over items of one model's multiclass MCC: mean and 95% CI."""
    pred_arr, labels_arr = np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    values = np.concatenate(
        [_boot_mcc(pred_arr, labels_arr, idx, n_classes) for idx in _resamples(labels_arr.size, n_boot, seed)]
    )
    return {
        "mean": float(values.mean()),
        "ci_low": float(np.percentile(values, 2.5)),
        "ci_high": float(np.percentile(values, 97.5)),
        "n": int(labels_arr.size),
    }


def bootstrap_multiclass_mcc_difference(
    predictions_candidate, predictions_baseline, labels, n_classes: int, *, n_boot: int = 1000, seed: int = 0
) -> dict:
    """Paired bootstrap of MCC(candidate) − MCC(baseline): mean, 95% CI and P(candidate better)."""
    cand = np.asarray(predictions_candidate, dtype=np.int64)
    base = np.asarray(predictions_baseline, dtype=np.int64)
    labels_arr = np.asarray(labels, dtype=np.int64)
    diff = np.concatenate(
        [
            _boot_mcc(cand, labels_arr, idx, n_classes) - _boot_mcc(base, labels_arr, idx, n_classes)
            for idx in _resamples(labels_arr.size, n_boot, seed)
        ]
    )
    return {
        "mean": float(diff.mean()),
        "ci_low": float(np.percentile(diff, 2.5)),
        "ci_high": float(np.percentile(diff, 97.5)),
        "p_better": float((diff > 0).mean()),
    }


def fit_multiclass_temperature(logits, labels) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) on labeled items; 1.0 with one class."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if z.shape[0] == 0 or np.unique(y).size < 2:
        return 1.0

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        top = scaled.max(axis=1, keepdims=True)
        log_norm = top[:, 0] + np.log(np.exp(scaled - top).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(y.size), y]))

    from scipy.optimize import minimize_scalar

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
