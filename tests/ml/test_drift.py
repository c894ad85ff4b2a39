"""Score and embedding drift: few false alarms without a shift, alarms with one, and day vs night dashcam frames."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from ml.drift import DriftResult, check_embedding_drift, check_score_drift
from ml.sample_data import sample_data_dir


def test_score_drift_false_alarm_rate_stays_near_p_value():
    rng = np.random.default_rng(0)
    alarms = [check_score_drift(rng.beta(2, 5, 200), rng.beta(2, 5, 200)).is_drift for _ in range(40)]
    assert np.mean(alarms) <= 0.15


def test_score_drift_detects_a_shifted_score_distribution():
    rng = np.random.default_rng(1)
    result = check_score_drift(rng.beta(2, 5, 200), rng.beta(5, 2, 200))
    assert result.is_drift and result.p_value < 0.01
    assert result.method == "ks" and result.n_reference == 200 and result.n_recent == 200
    assert set(result.to_dict()) == {"is_drift", "p_value", "distance", "method", "n_reference", "n_recent"}


def test_embedding_drift_with_mmd_detects_a_mean_shift_only():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(80, 8))
    same = check_embedding_drift(reference, rng.normal(size=(80, 8)), n_permutations=50)
    shifted = check_embedding_drift(reference, rng.normal(size=(80, 8)) + 0.7, n_permutations=50)
    assert not same.is_drift
    assert shifted.is_drift and shifted.distance > same.distance
    assert isinstance(shifted, DriftResult) and shifted.method == "mmd"


def test_embedding_drift_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="^backend:"):
        check_embedding_drift(np.zeros((4, 2)), np.zeros((4, 2)), backend="tensorflow-gpu")


def _vtti_frames() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Dashcam frames of the VTTI set as small grey thumbnails, split by the manifest's day flag."""
    root = sample_data_dir() / "roadwork" / "vtti"
    day, night = [], []
    with (root / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            if row["day"] not in ("0", "1"):
                continue  # web photos have no day flag
            pixels = np.asarray(
                Image.open(root / row["file"]).convert("L").resize((16, 10)), dtype=np.float32
            )
            (day if row["day"] == "1" else night).append(pixels / 255.0)
    return day, night


def test_night_frames_drift_from_day_frames_but_day_halves_do_not():
    day, night = _vtti_frames()
    assert len(night) >= 4 and len(day) >= 20
    brightness = lambda frames: np.array([f.mean() for f in frames])  # noqa: E731
    day_b = brightness(day)
    assert check_score_drift(day_b, brightness(night)).is_drift
    assert not check_score_drift(day_b[0::2], day_b[1::2]).is_drift
    embed = lambda frames: np.stack([f.ravel() for f in frames])  # noqa: E731
    assert check_embedding_drift(embed(day), embed(night), n_permutations=100).is_drift
    assert not check_embedding_drift(embed(day[0::2]), embed(day[1::2]), n_permutations=100).is_drift
