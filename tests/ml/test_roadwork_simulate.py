"""The roadwork replay: a rare-positive split of the real photos, arms ranked by the queue's code, and a tiny
run through the CLI that writes the report the /simulate page and the project overview read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.simulate.cli import main
from ml.simulate.roadwork import (
    RoadworkConfig,
    RoadworkCurve,
    labels_to_random_final,
    labels_to_reach,
    load_roadwork,
    rare_split,
    seed_set,
)


def test_rare_split_keeps_a_tenth_positives_in_the_pool_and_a_balanced_disjoint_test_set() -> None:
    labels = np.array([0] * 120 + [1] * 150)
    pool, test = rare_split(labels, RoadworkConfig(), seed=3)
    assert not set(pool) & set(test)
    assert labels[pool].mean() == pytest.approx(0.10, abs=0.01)
    assert labels[test].sum() == (labels[test] == 0).sum() == 36
    start = seed_set(labels, pool, 4, np.random.default_rng(0))
    assert len(set(start)) == 4 and labels[start].sum() == 1 and set(start) <= set(pool)


def test_labels_to_reach_interpolates_between_rounds() -> None:
    labels = np.array([4.0, 6.0, 8.0])
    assert labels_to_reach(labels, np.array([0.1, 0.3, 0.5]), 0.4) == pytest.approx(7.0)
    assert labels_to_reach(labels, np.array([0.1, 0.3, 0.5]), 0.9) is None


def test_an_arm_that_reaches_random_final_mcc_early_gets_a_ratio_below_one() -> None:
    """Random's final MCC is the mean of its last 3 rounds (0.5), reached at 10 of 12 labels; the other arm is there at
    6 labels of 12, so its ratio is 0.5 on every bootstrap of the seeds."""
    labels = [2, 4, 6, 8, 10, 12]
    curves = []
    for seed in range(3):
        curves.append(RoadworkCurve("random", seed, labels, [0.0, 0.1, 0.2, 0.4, 0.5, 0.6], [1] * 6))
        curves.append(RoadworkCurve("hybrid", seed, labels, [0.0, 0.3, 0.5, 0.6, 0.6, 0.6], [1] * 6))
    rows = {r["strategy"]: r for r in labels_to_random_final(curves, n_boot=50)}
    assert rows["hybrid"]["_ratio"] == pytest.approx(0.5) and rows["hybrid"]["_ratio_std"] == 0.0
    assert rows["random"]["_ratio"] == pytest.approx(10 / 12, abs=1e-3)


def test_tiny_roadwork_run_writes_the_report_with_labels_saved(tmp_path) -> None:
    """Real photos (8 per class), two seeds, every arm: seconds on one thread."""
    out = tmp_path / "roadwork"
    argv = ["--dataset", "roadwork", "--seeds", "2", "--limit", "12", "--max-labels", "10"]
    assert main([*argv, "--image-size", "32", "--project", "demo", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "curves.json").read_text())
    assert report["config"]["dataset"] == "roadwork" and report["config"]["project"] == "demo"
    assert set(report["strategies"]) == {"random", "uncertainty", "disagreement", "hybrid"}
    assert report["strategies"]["hybrid"]["labels"][-1] == 10
    assert [row["strategy"] for row in report["table"]][0] == "random"
    saved = report["labels_saved"]
    assert saved["strategy"] == "hybrid" and saved["budget"] == 10
    assert saved["saved"] == pytest.approx(10 - saved["labels"])
    assert "ratio vs random" in (out / "table.md").read_text()


def test_features_are_standardised_and_finite_for_every_photo() -> None:
    data = load_roadwork(RoadworkConfig(limit=6, image_size=32))
    assert len(data.labels) == 12 and data.labels.sum() == 6
    assert np.isfinite(data.features).all()
    assert {"tracon", "vtti", "negatives"} <= set(data.sources)
