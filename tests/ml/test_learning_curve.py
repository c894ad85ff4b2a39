"""Labels-per-MCC accounting: the power-law fit recovers known curves and prices the next 0.01 MCC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.learning_curve import (
    CurvePoint,
    PowerLaw,
    fit_learning_curve,
    fit_power_law,
    labels_for_next_gain,
    sd_from_interval,
)

TRUE = PowerLaw(a=0.9, b=1.5, c=0.5)
LABELS = np.array([50, 100, 200, 400, 800, 1600])


def test_fit_recovers_the_parameters_of_a_noiseless_curve() -> None:
    law = fit_power_law(LABELS, TRUE(LABELS))
    assert law.a == pytest.approx(0.9, abs=0.005)
    assert law.b == pytest.approx(1.5, rel=0.05)
    assert law.c == pytest.approx(0.5, abs=0.02)


def test_next_point_01_costs_what_the_closed_form_says() -> None:
    """At 1,600 labels MCC is 0.9 − 1.5/40 = 0.8625; 0.8725 needs (1.5 / 0.0275)² ≈ 2,975 labels."""
    expected = (1.5 / (0.9 - 0.8725)) ** 2 - 1600
    assert labels_for_next_gain(TRUE, 1600, 0.01) == pytest.approx(expected, rel=1e-9)
    assert labels_for_next_gain(TRUE, 1600, 0.05) == math.inf  # above the ceiling a = 0.9


def test_noisy_points_give_the_expected_cost_inside_the_bootstrap_interval() -> None:
    rng = np.random.default_rng(3)
    sd = 0.004
    points = [CurvePoint(int(n), float(TRUE(n) + rng.normal(0, sd)), sd) for n in LABELS]
    fit = fit_learning_curve(points, n_boot=300)
    assert fit is not None and fit.current_labels == 1600
    expected = labels_for_next_gain(TRUE, 1600, 0.01)
    low, high = fit.interval
    assert low <= expected <= high and low < fit.next_cost < high
    assert 0.5 * expected < fit.next_cost < 2 * expected
    assert fit.current_mcc == pytest.approx(TRUE(1600), abs=0.01)
    assert len(fit.curve_labels) == len(fit.curve_low) == len(fit.curve_high)
    assert all(lo <= hi for lo, hi in zip(fit.curve_low, fit.curve_high, strict=True))


def test_fewer_than_three_label_counts_give_no_fit() -> None:
    points = [CurvePoint(100, 0.5), CurvePoint(100, 0.52), CurvePoint(200, 0.6)]
    assert fit_learning_curve(points) is None
    assert fit_learning_curve([*points, CurvePoint(400, 0.64)]) is not None


def test_a_flat_curve_prices_the_next_gain_as_out_of_reach() -> None:
    """Three versions with the same MCC: the ceiling is already reached, no label count buys 0.01 more."""
    points = [CurvePoint(n, 0.7, 0.005) for n in (100, 200, 400)]
    fit = fit_learning_curve(points, n_boot=100)
    assert fit is not None and fit.next_cost == math.inf
    assert fit.unreachable_share > 0.2


def test_interval_to_standard_error() -> None:
    assert sd_from_interval(0.5, 0.892) == pytest.approx(0.1)
    assert sd_from_interval(None, 0.9) is None
