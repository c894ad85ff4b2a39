"""Labels-per-MCC accounting: fit MCC(n) = a − b·n^(−c) to (labels used, holdout MCC) points and price the
next gain in labels, with a parametric bootstrap over each point's MCC uncertainty.

The power law saturates at `a` (capped at 1, MCC's maximum); `b ≥ 0` and `c` in [C_MIN, C_MAX] keep it a rising,
flattening curve. For a fixed `c` the model is linear in (a, b), so the fit scans `c` on a log grid and solves
(a, b) by weighted least squares in closed form: no optimiser to fail to converge on three points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

C_MIN, C_MAX = 0.05, 2.0
C_GRID = np.geomspace(C_MIN, C_MAX, 240)
MIN_POINTS = 3
DEFAULT_SD = 0.02  # an MCC with no stored interval and no residual to judge it by


@dataclass(frozen=True)
class PowerLaw:
    """MCC(n) = a − b·n^(−c)."""

    a: float
    b: float
    c: float

    def __call__(self, n: np.ndarray | float) -> np.ndarray | float:
        return self.a - self.b * np.power(np.asarray(n, dtype=np.float64), -self.c)

    def labels_for(self, mcc: float) -> float:
        """Labels at which the curve reaches `mcc`; inf when its ceiling `a` is not above it."""
        if mcc >= self.a or self.b <= 0:
            return math.inf
        return float((self.b / (self.a - mcc)) ** (1.0 / self.c))


@dataclass
class CurvePoint:
    labels: int
    mcc: float
    sd: float | None = None  # standard error of the MCC (e.g. from its bootstrap 95% CI)
    version: int | None = None


@dataclass
class LearningCurveFit:
    law: PowerLaw
    points: list[CurvePoint]
    current_labels: int
    current_mcc: float  # the fitted curve at current_labels (less noisy than the last point)
    gain: float
    next_cost: float  # more labels for the next `gain` of MCC; inf when the fit says it is out of reach
    interval: tuple[float, float]  # the bootstrap's 5th and 95th percentiles of next_cost (inf allowed)
    unreachable_share: float  # bootstrap fits whose ceiling is below current + gain
    curve_labels: list[float] = field(default_factory=list)
    curve_mcc: list[float] = field(default_factory=list)
    curve_low: list[float] = field(default_factory=list)
    curve_high: list[float] = field(default_factory=list)


def sd_from_interval(ci_low: float | None, ci_high: float | None) -> float | None:
    """Standard error from a 95% interval (normal approximation)."""
    if ci_low is None or ci_high is None or not ci_high >= ci_low:
        return None
    return (float(ci_high) - float(ci_low)) / 3.92


def _fit_many(n: np.ndarray, ys: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, c) per row of `ys` (curves, points): for every c in C_GRID the weighted least-squares (a, b) of
    y ≈ a − b·n^(−c) under a ≤ 1 and b ≥ 0, then the c with the smallest error (first of equal minima,
    i.e. the smallest c: the flatter extrapolation). All rows and all c at once."""
    x = n[None, :] ** (-C_GRID[:, None])  # (grid, points)
    sw = w.sum()
    xm = (w * x).sum(axis=1) / sw  # (grid,)
    ym = (ys * w).sum(axis=1) / sw  # (curves,)
    dx = x - xm[:, None]
    sxx = (w * dx**2).sum(axis=1)
    b = -((ys - ym[:, None]) * w) @ dx.T / np.where(sxx > 0, sxx, 1.0)  # (curves, grid)
    b = np.where(sxx > 0, np.maximum(b, 0.0), 0.0)
    a = ym[:, None] + b * xm[None, :]
    capped = a > 1.0  # MCC's ceiling: refit b with a held at 1
    b_capped = np.maximum(0.0, ((1.0 - ys) * w) @ x.T / np.maximum((w * x * x).sum(axis=1), 1e-300))
    a, b = np.where(capped, 1.0, a), np.where(capped, b_capped, b)
    residual = ys[:, None, :] - a[:, :, None] + b[:, :, None] * x[None, :, :]
    sse = np.round((w * residual**2).sum(axis=2), 12)
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(ys))
    return a[rows, best], b[rows, best], C_GRID[best]


def _weights(sd: Sequence[float] | np.ndarray | None, size: int) -> np.ndarray:
    if sd is None:
        return np.ones(size)
    return 1.0 / np.maximum(np.asarray(sd, dtype=np.float64), 1e-3) ** 2


def fit_power_law(
    labels: Sequence[float], mcc: Sequence[float], sd: Sequence[float] | None = None
) -> PowerLaw:
    """Weighted (1/sd²) least squares of MCC(n) = a − b·n^(−c)."""
    n = np.asarray(labels, dtype=np.float64)
    y = np.asarray(mcc, dtype=np.float64)
    if n.size < 2 or np.any(n <= 0) or n.size != y.size:
        raise ValueError("labels: need at least two positive label counts, one per MCC")
    a, b, c = _fit_many(n, y[None, :], _weights(sd, n.size))
    return PowerLaw(float(a[0]), float(b[0]), float(c[0]))


def labels_for_next_gain(law: PowerLaw, current_labels: float, gain: float = 0.01) -> float:
    """Extra labels, beyond `current_labels`, for the fitted MCC to rise by `gain`."""
    target = float(law(current_labels)) + gain
    return max(0.0, law.labels_for(target) - current_labels)


def _percentile(values: np.ndarray, q: float) -> float:
    """Nearest-rank percentile that keeps inf (numpy's interpolation turns inf − inf into nan)."""
    ordered = np.sort(values)
    return float(ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))])


def fit_learning_curve(
    points: Sequence[CurvePoint],
    *,
    gain: float = 0.01,
    n_boot: int = 400,
    seed: int = 0,
    min_points: int = MIN_POINTS,
) -> LearningCurveFit | None:
    """The fit, the cost of the next `gain` with a 90% interval, and a band for plotting; None with fewer
    than `min_points` distinct label counts (three points is already the number of parameters)."""
    pts = sorted(points, key=lambda p: p.labels)
    if len({p.labels for p in pts if p.labels > 0}) < min_points:
        return None
    pts = [p for p in pts if p.labels > 0]
    n = np.array([p.labels for p in pts], dtype=np.float64)
    y = np.array([p.mcc for p in pts], dtype=np.float64)
    law = fit_power_law(n, y, _sds(pts, fallback=None))
    residual = float(np.sqrt(np.mean((y - law(n)) ** 2)))
    sd = np.array(_sds(pts, fallback=max(residual, DEFAULT_SD)))
    current = int(n.max())
    cost = labels_for_next_gain(law, current, gain)
    # the plotted curve runs to where the next gain is bought, but never past 4× the labels used so far
    grid = np.geomspace(n.min(), max(n.max() * 2.0, min(current + cost, n.max() * 4.0)), 60)
    rng = np.random.default_rng(seed)
    resampled = np.clip(y[None, :] + rng.normal(0.0, sd, size=(n_boot, y.size)), -1.0, 1.0)
    fits = zip(*_fit_many(n, resampled, _weights(sd, n.size)), strict=True)
    laws = [PowerLaw(float(a), float(b), float(c)) for a, b, c in fits]
    costs = np.array([labels_for_next_gain(law_i, current, gain) for law_i in laws])
    curves = np.array([law_i(grid) for law_i in laws])
    return LearningCurveFit(
        law=law,
        points=pts,
        current_labels=current,
        current_mcc=float(law(current)),
        gain=gain,
        next_cost=cost,
        interval=(_percentile(costs, 5), _percentile(costs, 95)),
        unreachable_share=float(np.mean(np.isinf(costs))),
        curve_labels=grid.tolist(),
        curve_mcc=law(grid).tolist(),
        curve_low=np.percentile(curves, 5, axis=0).tolist(),
        curve_high=np.percentile(curves, 95, axis=0).tolist(),
    )


def _sds(points: Sequence[CurvePoint], fallback: float | None) -> list[float] | None:
    if fallback is None:
        return None if any(p.sd is None for p in points) else [float(p.sd) for p in points]
    return [float(p.sd) if p.sd is not None and p.sd > 0 else fallback for p in points]
