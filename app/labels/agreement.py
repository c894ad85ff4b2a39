"""Inter-annotator agreement: Cohen's kappa for a pair of annotators, Fleiss' kappa for many (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """κ = (p_o − p_e) / (1 − p_e) over items both labeled; None when undefined (no items, or p_e = 1)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape:
        raise ValueError("b: needs one label per label of a")
    if a_arr.size == 0:
        return None
    classes = np.union1d(a_arr, b_arr)
    observed = float(np.mean(a_arr == b_arr))
    expected = float(sum(np.mean(a_arr == c) * np.mean(b_arr == c) for c in classes))
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """`counts[i, j]` = raters who put item i in class j; every item needs the same number n ≥ 2 of raters."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return None
    raters = counts.sum(axis=1)
    n = raters[0]
    if n < 2 or not np.all(raters == n):
        raise ValueError("counts: every item needs the same number of raters, at least 2")
    p_j = counts.sum(axis=0) / counts.sum()
    p_i = (np.square(counts).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = float(p_i.mean()), float(np.square(p_j).sum())
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)
