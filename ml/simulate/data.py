"""Fully labeled data replayed as if unlabeled: MNIST (10 classes) and a rare-positive binary variant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.sample_data import sample_data_dir


@dataclass
class ReplayData:
    x_train: np.ndarray  # (n, 1, 28, 28) float32 in [0, 1]
    y_train: np.ndarray  # (n,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def load_mnist(path: Path | None = None) -> dict[str, np.ndarray]:
    path = path or sample_data_dir() / "mnist" / "mnist.npz"
    with np.load(path) as raw:
        return {key: raw[key] for key in ("x_train", "y_train", "x_test", "y_test")}


def _images(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 255.0)[:, None, :, :]


def replay_data(dataset: str, *, test_size: int = 0, positive_digit: int = 7, seed: int = 0) -> ReplayData:
    """`mnist-binary`: one digit is the positive class (about 10% of items, as rare as roadwork)."""
    raw = load_mnist()
    y_train, y_test = raw["y_train"].astype(np.int64), raw["y_test"].astype(np.int64)
    n_classes = 10
    if dataset == "mnist-binary":
        y_train, y_test = (
            (y_train == positive_digit).astype(np.int64),
            (y_test == positive_digit).astype(np.int64),
        )
        n_classes = 2
    test_idx = np.arange(len(y_test))
    if 0 < test_size < len(y_test):
        test_idx = np.sort(np.random.default_rng(seed).choice(len(y_test), test_size, replace=False))
    return ReplayData(
        _images(raw["x_train"]), y_train, _images(raw["x_test"][test_idx]), y_test[test_idx], n_classes
    )


def balanced_seed_set(labels: np.ndarray, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """`size` indices spread evenly over the classes (Gal et al.'s 20 balanced initial labels); for a
    rare-positive binary set the positives get their natural share, at least one."""
    classes = np.unique(labels)
    if len(classes) == 2:
        positive_share = float(np.mean(labels == classes[1]))
        counts = {classes[1]: max(1, round(size * positive_share))}
        counts[classes[0]] = size - counts[classes[1]]
    else:
        base, extra = divmod(size, len(classes))
        counts = {c: base + (i < extra) for i, c in enumerate(classes)}
    picks = [rng.choice(np.flatnonzero(labels == c), n, replace=False) for c, n in counts.items()]
    return np.concatenate(picks).astype(np.int64)
