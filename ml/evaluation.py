"""Binary classification metrics shared by every job kind and the model registry (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UNKNOWN_SLICE = "unknown"


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels_arr = np.asarray(labels).reshape(-1).astype(np.int64)
    if scores_arr.shape != labels_arr.shape:
        raise ValueError(f"scores: {scores_arr.size} values for {labels_arr.size} labels")
    return scores_arr, labels_arr


def _mcc_from_counts(tp, fp, tn, fn) -> np.ndarray:
    """MCC from (arrays of) confusion counts; 0 where a marginal is empty (the usual convention)."""
    tp, fp, tn, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, tn, fn))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    numerator = tp * tn - fp * fn
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)
    return value


def _confusion(predictions: np.ndarray, labels: np.ndarray) -> tuple[int, int, int, int]:
    positive = labels == 1
    tp = int(np.sum(predictions & positive))
    fp = int(np.sum(predictions & ~positive))
    fn = int(np.sum(~predictions & positive))
    tn = int(np.sum(~predictions & ~positive))
    return tp, fp, tn, fn


def mcc(labels, predictions) -> float:
    """Matthews correlation coefficient of hard 0/1 predictions; 0.0 when undefined."""
    labels_arr = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions_arr = np.asarray(predictions).reshape(-1).astype(np.int64) == 1
    if labels_arr.size != predictions_arr.size:
        raise ValueError(f"predictions: {predictions_arr.size} values for {labels_arr.size} labels")
    return float(_mcc_from_counts(*_confusion(predictions_arr, labels_arr)))


def _candidate_thresholds(scores: np.ndarray, n_thresholds: int) -> np.ndarray:
    """Midpoints between consecutive distinct scores (every distinct decision, whatever the score scale),
    thinned to `n_thresholds` score quantiles when there are more; plus one rule predicting all and one none."""
    distinct = np.unique(scores)
    if distinct.size == 0:
        return np.array([0.5])
    if distinct.size > n_thresholds:
        distinct = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_thresholds)))
    middles = (distinct[:-1] + distinct[1:]) / 2.0
    return np.concatenate([[distinct[0]], middles, [np.nextafter(distinct[-1], np.inf)]])


def mcc_curve(scores, labels, thresholds) -> np.ndarray:
    """MCC of `score >= t` for every t in `thresholds`, from one sort (no per-threshold pass)."""
    scores_arr, labels_arr = _as_arrays(scores, labels)
    order = np.argsort(scores_arr, kind="stable")
    sorted_scores = scores_arr[order]
    positives_below = np.concatenate([[0], np.cumsum(labels_arr[order] == 1)])
    n, total_pos = scores_arr.size, int(positives_below[-1])
    below = np.searchsorted(sorted_scores, np.asarray(thresholds, dtype=np.float64), side="left")
    tp = total_pos - positives_below[below]
    fp = (n - below) - tp
    fn = total_pos - tp
    tn = (n - total_pos) - fp
    return _mcc_from_counts(tp, fp, tn, fn)


def mcc_optimal_threshold(scores, labels, n_thresholds: int = 5000) -> tuple[float, float]:
    """(threshold, mcc) maximising MCC of `score >= threshold`; at most `n_thresholds` candidates are tried.

    Among equally good thresholds, the middle of the best plateau is returned: it is the one furthest
    from flipping an item, so it transfers better from val to holdout than the plateau's edge.
    """
    if n_thresholds < 2:
        raise ValueError("n_thresholds: must be at least 2")
    scores_arr, labels_arr = _as_arrays(scores, labels)
    thresholds = _candidate_thresholds(scores_arr, n_thresholds)
    curve = mcc_curve(scores_arr, labels_arr, thresholds)
    best = float(curve.max())
    start = int(np.argmax(curve))
    end = start
    while end + 1 < curve.size and np.isclose(curve[end + 1], best):
        end += 1
    return float(thresholds[(start + end) // 2]), best


def expected_calibration_error(scores, labels, n_bins: int = 10) -> float:
    """ECE of P(positive): count-weighted |mean score − positive rate| over equal-width score bins."""
    bins = reliability_curve(scores, labels, n_bins)
    total = sum(b["count"] for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b["count"] * abs(b["mean_confidence"] - b["accuracy"]) for b in bins) / total)


def reliability_curve(scores, labels, n_bins: int = 10) -> list[dict]:
    """Non-empty equal-width bins of P(positive) with their mean score and observed positive rate."""
    scores_arr, labels_arr = _as_arrays(scores, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(scores_arr, edges[1:-1], right=False), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        if count == 0:
            continue
        out.append(
            {
                "bin_low": float(edges[b]),
                "bin_high": float(edges[b + 1]),
                "mean_confidence": float(scores_arr[members].mean()),
                "accuracy": float((labels_arr[members] == 1).mean()),
                "count": count,
            }
        )
    return out


def _ranking_metric(metric, labels: np.ndarray, scores: np.ndarray) -> float:
    if np.unique(labels).size < 2:
        return float("nan")
    return float(metric(labels, scores))


def binary_metrics(scores, labels, threshold: float) -> dict[str, float]:
    """Every number the registry shows for a model at its threshold (AUROC/AUPRC are NaN with one class)."""
    # Imported here, not at module level: scikit-learn (with scipy) costs seconds and tens of MB at import,
    # and the web process imports this module without measuring a model.
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores_arr, labels_arr = _as_arrays(scores, labels)
    tp, fp, tn, fn = _confusion(scores_arr >= threshold, labels_arr)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = int(scores_arr.size)
    return {
        "mcc": float(_mcc_from_counts(tp, fp, tn, fn)),
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auroc": _ranking_metric(roc_auc_score, labels_arr, scores_arr),
        "auprc": _ranking_metric(average_precision_score, labels_arr, scores_arr),
        "ece": expected_calibration_error(scores_arr, labels_arr),
        "n": float(n),
        "positives": float(tp + fn),
    }


def slice_mcc(scores, labels, threshold: float, slice_values: Sequence[str | None]) -> dict[str, dict]:
    """MCC per metadata slice (e.g. camera, night); missing values are grouped under "unknown"."""
    scores_arr, labels_arr = _as_arrays(scores, labels)
    if len(slice_values) != scores_arr.size:
        raise ValueError(f"slice_values: {len(slice_values)} values for {scores_arr.size} scores")
    names = np.array([UNKNOWN_SLICE if v is None else str(v) for v in slice_values], dtype=object)
    out: dict[str, dict] = {}
    for name in sorted(set(names.tolist())):
        members = names == name
        out[name] = {
            "mcc": mcc(labels_arr[members], scores_arr[members] >= threshold),
            "n": int(members.sum()),
        }
    return out


def bootstrap_mcc_difference(
    scores_candidate,
    scores_baseline,
    labels,
    threshold_candidate: float,
    threshold_baseline: float,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Paired bootstrap over items of MCC(candidate) − MCC(baseline): mean, 95% CI and P(candidate better)."""
    cand, labels_arr = _as_arrays(scores_candidate, labels)
    base, _ = _as_arrays(scores_baseline, labels)
    if n_boot < 1:
        raise ValueError("n_boot: must be at least 1")
    rng = np.random.default_rng(seed)
    cand_pred = (cand >= threshold_candidate).astype(np.int8)
    base_pred = (base >= threshold_baseline).astype(np.int8)
    positive = (labels_arr == 1).astype(np.int8)
    diffs = []
    chunk = max(1, 2_000_000 // max(1, labels_arr.size))
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, labels_arr.size, size=(min(chunk, n_boot - start), labels_arr.size))
        diffs.append(_boot_mcc(cand_pred[idx], positive[idx]) - _boot_mcc(base_pred[idx], positive[idx]))
    diff = np.concatenate(diffs)
    return {
        "mean": float(diff.mean()),
        "ci_low": float(np.percentile(diff, 2.5)),
        "ci_high": float(np.percentile(diff, 97.5)),
        "p_better": float((diff > 0).mean()),
    }


def _boot_mcc(predictions: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Row-wise MCC for a (n_boot, n) matrix of resampled 0/1 predictions and labels."""
    tp = np.sum(predictions & positive, axis=1)
    fp = np.sum(predictions & (1 - positive), axis=1)
    fn = np.sum((1 - predictions) & positive, axis=1)
    tn = positive.shape[1] - tp - fp - fn
    return _mcc_from_counts(tp, fp, tn, fn)


def _binary_logits(logits) -> np.ndarray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr[:, 1] - arr[:, 0]  # softmax over two classes == sigmoid of the difference
    if arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == 1):
        return arr.reshape(-1)
    raise ValueError(f"logits: expected shape (n,) or (n, 2), got {arr.shape}")


def fit_temperature(logits, labels) -> float:
    """Temperature T minimising the NLL of sigmoid(logit / T) (Guo et al. 2017); 1.0 with one class."""
    z = _binary_logits(logits)
    y = np.asarray(labels).reshape(-1).astype(np.float64)
    if z.size != y.size:
        raise ValueError(f"labels: {y.size} values for {z.size} logits")
    if z.size == 0 or np.unique(y).size < 2:
        return 1.0

    def nll(log_t: float) -> float:
        scaled = z / np.exp(log_t)
        # log(1 + e^x) - y x, stable for large |x|
        return float(np.mean(np.logaddexp(0.0, scaled) - y * scaled))

    from scipy.optimize import minimize_scalar  # heavy import, only where a temperature is fitted

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """P(positive) after temperature scaling."""
    z = _binary_logits(logits) / temperature
    return 1.0 / (1.0 + np.exp(-z))


def bootstrap_mcc_interval(scores, labels, threshold: float, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Bootstrap over items of one model's MCC at `threshold`: mean and 95% CI (how far the holdout can be trusted)."""
    scores_arr, labels_arr = _as_arrays(scores, labels)
    if n_boot < 1:
        raise ValueError("n_boot: must be at least 1")
    rng = np.random.default_rng(seed)
    predicted = (scores_arr >= threshold).astype(np.int8)
    positive = (labels_arr == 1).astype(np.int8)
    values = []
    chunk = max(1, 2_000_000 // max(1, labels_arr.size))
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, labels_arr.size, size=(min(chunk, n_boot - start), labels_arr.size))
        values.append(_boot_mcc(predicted[idx], positive[idx]))
    mcc = np.concatenate(values)
    return {
        "mean": float(mcc.mean()),
        "ci_low": float(np.percentile(mcc, 2.5)),
        "ci_high": float(np.percentile(mcc, 97.5)),
        "n": int(labels_arr.size),
    }
