"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from ml.evaluation import (
    apply_temperature,
    binary_metrics,
    bootstrap_mcc_difference,
    expected_calibration_error,
    fit_temperature,
    mcc,
    mcc_curve,
    mcc_optimal_threshold,
    reliability_curve,
    slice_mcc,
)


def test_mcc_matches_the_confusion_matrix_formula():
    # tp=1 fp=0 tn=3 fn=1 -> (1*3 - 0*1) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = 3 / sqrt(1*2*3*4)
    assert mcc([1, 1, 0, 0, 0], [1, 0, 0, 0, 0]) == pytest.approx(3 / math.sqrt(24))


def test_mcc_is_one_for_perfect_and_minus_one_for_inverted_predictions():
    assert mcc([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)


def test_mcc_is_zero_when_undefined():
    assert mcc([1, 1, 0, 0], [1, 1, 1, 1]) == 0.0
    assert mcc([0, 0, 0], [0, 1, 0]) == 0.0


def test_mcc_curve_agrees_with_thresholding_one_by_one():
    rng = np.random.default_rng(3)
    scores = rng.random(200)
    labels = (rng.random(200) < scores).astype(int)
    thresholds = np.linspace(0, 1, 37)
    expected = [mcc(labels, scores >= t) for t in thresholds]
    np.testing.assert_allclose(mcc_curve(scores, labels, thresholds), expected, atol=1e-12)


def test_optimal_threshold_is_the_middle_of_the_separating_gap():
    threshold, best = mcc_optimal_threshold([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1])
    assert best == pytest.approx(1.0)
    assert threshold == pytest.approx(0.45, abs=1e-3)


def test_optimal_threshold_is_not_half_when_positives_score_low():
    threshold, best = mcc_optimal_threshold([0.01, 0.02, 0.03, 0.2, 0.25], [0, 0, 0, 1, 1])
    assert best == pytest.approx(1.0)
    assert 0.03 < threshold <= 0.2


def test_optimal_threshold_works_on_logits_outside_unit_interval():
    threshold, best = mcc_optimal_threshold([-3.0, -1.0, 2.0, 4.0], [0, 0, 1, 1])
    assert best == pytest.approx(1.0)
    assert -1.0 < threshold <= 2.0


def test_expected_calibration_error_by_hand():
    # bins: 0.05 vs 0, 0.15 vs 0, 0.85 vs 1, 0.95 vs 1 -> mean gap 0.1
    assert expected_calibration_error([0.05, 0.15, 0.95, 0.85], [0, 0, 1, 1]) == pytest.approx(0.1)


def test_reliability_curve_lists_non_empty_bins_with_counts():
    curve = reliability_curve([0.05, 0.07, 0.95], [0, 1, 1], n_bins=10)
    assert [(b["bin_low"], b["count"]) for b in curve] == [(0.0, 2), (0.9, 1)]
    assert curve[0]["mean_confidence"] == pytest.approx(0.06)
    assert curve[0]["accuracy"] == pytest.approx(0.5)


def test_binary_metrics_by_hand():
    scores = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2]
    labels = [1, 1, 1, 0, 0, 0]
    m = binary_metrics(scores, labels, threshold=0.5)
    # tp=2 fp=1 tn=2 fn=1
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["mcc"] == pytest.approx((2 * 2 - 1 * 1) / 9)
    assert m["auroc"] == pytest.approx(8 / 9)  # 8 of 9 positive/negative pairs ordered correctly
    assert (m["n"], m["positives"]) == (6.0, 3.0)
    assert 0.0 <= m["ece"] <= 1.0


def test_binary_metrics_ranking_scores_are_nan_with_one_class():
    m = binary_metrics([0.2, 0.7], [0, 0], threshold=0.5)
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"])
    assert m["mcc"] == 0.0


def test_slice_mcc_groups_missing_values_as_unknown():
    out = slice_mcc([0.9, 0.1, 0.9, 0.9], [1, 0, 0, 1], 0.5, ["cam1", "cam1", None, None])
    assert out["cam1"] == {"mcc": pytest.approx(1.0), "n": 2}
    assert out["unknown"]["n"] == 2


def test_bootstrap_difference_is_zero_for_identical_models():
    scores = np.linspace(0, 1, 50)
    labels = (scores > 0.4).astype(int)
    out = bootstrap_mcc_difference(scores, scores, labels, 0.5, 0.5, n_boot=200)
    assert out["mean"] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0
    assert out["p_better"] == 0.0


def test_bootstrap_prefers_the_perfect_candidate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    perfect, noise = labels.astype(float), rng.random(300)
    out = bootstrap_mcc_difference(perfect, noise, labels, 0.5, 0.5, n_boot=300, seed=1)
    assert out["p_better"] == 1.0
    assert out["ci_low"] > 0.5 and out["mean"] > out["ci_low"]


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(0)
    scores_a, scores_b, labels = rng.random(100), rng.random(100), rng.integers(0, 2, 100)
    first = bootstrap_mcc_difference(scores_a, scores_b, labels, 0.5, 0.5, n_boot=100, seed=7)
    again = bootstrap_mcc_difference(scores_a, scores_b, labels, 0.5, 0.5, n_boot=100, seed=7)
    assert first == again


def test_fit_temperature_recovers_the_overconfidence_factor():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(int)
    temperature = fit_temperature(3.0 * true_logits, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)


def test_fit_temperature_accepts_two_column_logits():
    logits = np.array([[0.0, 4.0], [0.0, -4.0], [0.0, 4.0], [0.0, -4.0], [0.0, 4.0]])
    labels = [1, 0, 0, 1, 1]
    t = fit_temperature(logits, labels)
    assert t > 1.0  # 2 of 5 confident answers are wrong: soften
    probs = apply_temperature(logits, t)
    assert probs[0] < 1 / (1 + math.exp(-4.0))


def test_optimal_threshold_separates_scores_squeezed_near_one_half():
    # a high calibration temperature packs every score into a band far narrower than a 1/5000 grid
    scores = 0.5 + np.array([-4e-6, -3e-6, -1e-6, 1e-6, 2e-6, 5e-6])
    threshold, best = mcc_optimal_threshold(scores, [0, 0, 0, 1, 1, 1])
    assert best == pytest.approx(1.0)
    assert scores[2] < threshold <= scores[3]


def test_optimal_threshold_thins_candidates_to_the_requested_count_on_large_inputs():
    rng = np.random.default_rng(5)
    scores = rng.random(20000)
    labels = (scores + rng.normal(0, 0.1, 20000) > 0.6).astype(int)
    threshold, best = mcc_optimal_threshold(scores, labels, n_thresholds=5000)
    exact = max(mcc(labels, scores >= t) for t in np.linspace(0.55, 0.65, 201))
    assert best == pytest.approx(exact, abs=0.01)
    assert 0.55 < threshold < 0.65
