"""Vectorised hardness measures over an ensemble's class probabilities (numpy only, NaN = model missing).

Shapes: `probs` is (items, members, classes) — members are the cascade's models or MC-dropout samples;
a binary score matrix (items, members) of P(positive) is turned into it by `binary_to_probs`.
Entropies are in bits, so a binary entropy lies in [0, 1].
"""

from __future__ import annotations

import numpy as np

_LN2 = np.log(2.0)


def entr(x: np.ndarray) -> np.ndarray:
    """−x·ln x elementwise, 0 at x = 0 and −inf below (scipy.special.entr, whose import alone costs the web
    process about a second and tens of MB)."""
    x = np.asarray(x, dtype=np.float64)
    out = -x * np.log(np.where(x > 0, x, 1.0))
    return np.where(x < 0, -np.inf, out)


def _small_axis_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum over a short axis (members, classes) slice by slice: numpy's reduce over a length-2 or -3 axis
    of a million rows is several times slower than adding the slices."""
    x = np.moveaxis(x, axis, 0)
    if x.shape[0] > 16:
        return x.sum(axis=0)
    total = x[0].copy()
    for part in x[1:]:
        total += part
    return total


def binary_to_probs(scores: np.ndarray) -> np.ndarray:
    """(items, members) of P(positive) -> (items, members, 2) of [P(negative), P(positive)]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected (items, members), got shape {scores.shape}")
    clipped = np.clip(scores, 0.0, 1.0)
    return np.stack([1.0 - clipped, clipped], axis=-1)


def as_probs(matrix: np.ndarray) -> np.ndarray:
    """Accepts a binary score matrix (2-D) or class probabilities (3-D); returns (items, members, classes)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim == 2:
        return binary_to_probs(matrix)
    if matrix.ndim != 3:
        raise ValueError(f"matrix: expected 2-D scores or 3-D probabilities, got shape {matrix.shape}")
    return matrix


def present_mask(probs: np.ndarray) -> np.ndarray:
    """(items, members) True where the member produced a (complete) probability vector."""
    return ~(_small_axis_sum(np.isnan(probs).astype(np.uint8), -1) > 0)


def member_weights(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(items, members) weights normalised over the members present per item; all-missing rows are 0."""
    present = present_mask(probs)
    base = np.ones(probs.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if base.shape != (probs.shape[1],) or (base < 0).any():
        raise ValueError("weights: need one non-negative weight per member")
    raw = present * base[None, :]
    total = _small_axis_sum(raw, 1)[:, None]
    return np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)


def mean_probs(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(items, classes) weighted mean of the present members; NaN rows where no member is present."""
    w = member_weights(probs, weights)
    mean = _small_axis_sum(w[..., None] * np.nan_to_num(probs, nan=0.0), 1)
    mean[_small_axis_sum(w, 1) == 0] = np.nan
    return mean


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in bits along `axis`; 0·log 0 = 0, so p = 0 or 1 gives no NaN."""
    return _small_axis_sum(entr(np.asarray(p, dtype=np.float64)), axis) / _LN2


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of a Bernoulli(p); 0 at p = 0 or 1, 1 at p = 0.5."""
    p = np.asarray(p, dtype=np.float64)
    return (entr(p) + entr(1.0 - p)) / _LN2


def least_confidence(mean: np.ndarray) -> np.ndarray:
    """1 − max class probability of the (mean) prediction."""
    return 1.0 - np.max(mean, axis=-1)


def margin(mean: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 class probability: small = hard (binary: |2p − 1|)."""
    if mean.shape[-1] < 2:
        raise ValueError("mean: margin needs at least two classes")
    top2 = -np.partition(-mean, 1, axis=-1)[..., :2]
    return top2[..., 0] - top2[..., 1]


def threshold_distance(score: np.ndarray, threshold: float) -> np.ndarray:
    """|score − t| for the project's production threshold t."""
    return np.abs(np.asarray(score, dtype=np.float64) - threshold)


def hard_votes(probs: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """(items, members) voted class per member: binary uses P(positive) ≥ t, otherwise argmax; −1 if missing."""
    present = present_mask(probs)
    if threshold is not None and probs.shape[-1] == 2:
        votes = (np.nan_to_num(probs[..., 1], nan=-1.0) >= threshold).astype(np.int64)
    else:
        votes = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=-1)
    return np.where(present, votes, -1)


def vote_distribution(
    probs: np.ndarray, weights: np.ndarray | None = None, threshold: float | None = None
) -> np.ndarray:
    """(items, classes) weighted share of the present members voting for each class."""
    w = member_weights(probs, weights)
    votes = hard_votes(probs, threshold)
    n_classes = probs.shape[-1]
    dist = np.zeros((len(votes), n_classes))
    for c in range(n_classes):
        dist[:, c] = _small_axis_sum(w * (votes == c), 1)
    return dist


def vote_entropy(
    probs: np.ndarray, weights: np.ndarray | None = None, threshold: float | None = None
) -> np.ndarray:
    """Entropy (bits) of the members' hard votes: 0 when unanimous, 1 for an even binary split."""
    return entropy(vote_distribution(probs, weights, threshold))


def variation_ratio(
    probs: np.ndarray, weights: np.ndarray | None = None, threshold: float | None = None
) -> np.ndarray:
    """1 − share of the modal vote (Freeman's variation ratio; Gal et al.'s Var-Ratios over MC samples).

    All-missing rows give 0: nobody disagrees.
    """
    return variation_ratio_of(vote_distribution(probs, weights, threshold))


def variation_ratio_of(vote_dist: np.ndarray) -> np.ndarray:
    """Variation ratio from an already computed vote distribution (items, classes)."""
    return np.where(vote_dist.sum(axis=1) > 0, 1.0 - vote_dist.max(axis=1), 0.0)


def mutual_information(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """H(mean) − mean H: the generalised Jensen-Shannon divergence of the members, BALD's score.

    Zero when members agree (or only one is present); NaN rows (no member) give 0.
    """
    w = member_weights(probs, weights)
    filled = np.nan_to_num(probs, nan=0.0)
    mean = _small_axis_sum(w[..., None] * filled, 1)
    return np.clip(entropy(mean) - _small_axis_sum(w * entropy(filled), 1), 0.0, None)


def score_std(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted standard deviation of the members' scores (items, members); 0 for one member, NaN for none."""
    scores = np.asarray(scores, dtype=np.float64)
    w = member_weights(scores[..., None], weights)
    filled = np.nan_to_num(scores, nan=0.0)
    mean = _small_axis_sum(w * filled, 1)
    var = _small_axis_sum(w * (filled - mean[:, None]) ** 2, 1)
    std = np.sqrt(np.clip(var, 0.0, None))
    std[_small_axis_sum(w, 1) == 0] = np.nan
    return std
