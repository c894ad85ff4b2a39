"""Fixtures shared by the ml tests: a small frozen dataset version built from the real roadwork photos."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction, write_dataset_dir
from ml.sample_data import roadwork_pool

# Tiny models on a shared 2-core box: intra-op threads only contend (a 32-wide linear is ~15x slower with 2).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
CASCADE_MODELS = ("yolo", "vlm", "clf")
# Knobs that train a tiny Qwen-VL in seconds on CPU, shared by the vlm_sft and vlm_dpo tests.
TINY_VLM_TRAINING = {
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "lora_r": 4,
    "lora_alpha": 8,
    "logging_steps": 1,
    "max_image_pixels": 112 * 112,
    "eval_batch_size": 16,
}


def _simulated_predictions(label: int, boxes: list[list], rng: np.random.Generator) -> list[StoredPrediction]:
    """Cascade outputs that are right more often than not and disagree on some items."""
    predictions = []
    for model, skill in zip(CASCADE_MODELS, (2.0, 1.2, 0.8), strict=True):
        if model == "clf" and rng.random() < 0.25:
            continue  # the last stage of the cascade does not run on every item
        logit = skill * (1 if label == 1 else -1) + rng.normal(0.0, 1.5)
        score = float(1 / (1 + np.exp(-logit)))
        model_boxes = [[*b[:4], b[4], round(score, 3)] for b in boxes] if model == "yolo" else []
        predictions.append(
            StoredPrediction(
                model=model,
                model_version="1",
                score=round(score, 4),
                label="positive" if score >= 0.5 else "negative",
                boxes=model_boxes,
            )
        )
    return predictions


def _pick_items(pool: list[dict], n_items: int, rng: np.random.Generator) -> list[dict]:
    """A balanced draw that always includes some VTTI frames (night ones) and non-road negatives."""
    positives = [p for p in pool if p["label"] == 1]
    negatives = [p for p in pool if p["label"] == 0]
    extra = [p for p in pool if p["source"] == "negatives"][: max(1, n_items // 16)]
    night = [p for p in pool if p["is_night"]][: max(1, n_items // 16)]
    n_pos = n_items // 2 - len(night)
    n_neg = n_items - n_items // 2 - len(extra)
    rest_pos = [p for p in positives if p not in night]
    rest_neg = [p for p in negatives if p not in extra]
    chosen = night + [rest_pos[i] for i in rng.choice(len(rest_pos), n_pos, replace=False)]
    chosen += extra + [rest_neg[i] for i in rng.choice(len(rest_neg), n_neg, replace=False)]
    return chosen


def _stratified_splits(labels: list[int], rng: np.random.Generator) -> list[str]:
    splits = [""] * len(labels)
    for value in (0, 1):
        members = [i for i, label in enumerate(labels) if label == value]
        rng.shuffle(members)
        n_val = n_holdout = max(1, round(0.2 * len(members)))
        for rank, i in enumerate(members):
            splits[i] = "val" if rank < n_val else "holdout" if rank < n_val + n_holdout else "train"
    return splits


def write_roadwork_dataset(
    root: Path, *, n_items: int = 48, n_unlabeled: int = 0, seed: int = 0, version: int = 1
) -> DatasetVersionDir:
    """A dataset version of real photos (paths to the originals) with simulated cascade predictions.

    `n_unlabeled` extra train items carry predictions but label None (soft targets only).
    """
    rng = np.random.default_rng(seed)
    pool, box_classes = roadwork_pool()
    chosen = _pick_items(pool, n_items + n_unlabeled, rng)
    order = rng.permutation(len(chosen))
    chosen = [chosen[i] for i in order]
    labeled, unlabeled = chosen[:n_items], chosen[n_items:]
    splits = _stratified_splits([p["label"] for p in labeled], rng) + ["train"] * len(unlabeled)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    records = []
    for index, (item, split) in enumerate(zip(labeled + unlabeled, splits, strict=True)):
        is_unlabeled = index >= n_items
        records.append(
            DatasetRecord(
                item_id=index + 1,
                external_id=f"{item['source']}/{item['image'].stem}",
                image=str(item["image"]),
                label=None if is_unlabeled else item["label"],
                split=split,
                boxes=[] if is_unlabeled else item["boxes"],
                predictions=_simulated_predictions(item["label"], item["boxes"], rng),
                metadata={
                    "camera_id": f"cam-{index % 4}",
                    "is_night": item["is_night"],
                    "captured_at": (start + timedelta(minutes=7 * index)).isoformat(),
                },
            )
        )
    info = DatasetInfo(
        project="roadwork",
        version=version,
        kind="binary",
        classes=["negative", "positive"],
        content_hash=f"test-{seed}-{n_items}-{n_unlabeled}",
        box_classes=box_classes,
    )
    return write_dataset_dir(root, info, records)


@pytest.fixture
def roadwork_dataset_factory(tmp_path: Path) -> Callable[..., DatasetVersionDir]:
    """Builds more dataset versions in the test's tmp dir: factory(n_items=..., n_unlabeled=..., seed=...)."""
    counter = iter(range(1, 1000))

    def build(**kwargs) -> DatasetVersionDir:
        return write_roadwork_dataset(tmp_path / f"dataset-{next(counter)}", **kwargs)

    return build


@pytest.fixture
def roadwork_dataset_dir(tmp_path: Path) -> DatasetVersionDir:
    """48 labeled items (24 positive), stratified train/val/holdout, 3 stored cascade predictions each."""
    return write_roadwork_dataset(tmp_path / "dataset")


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    """A tiny Qwen2-VL (random weights, local tokenizer) saved once per test module."""
    from ml.training.vlm.tiny import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny") / "qwen2-vl")


MULTICLASS = ("clear", "roadwork", "dashcam_roadwork")


def multiclass_class_of(photo: dict) -> int:
    """Three classes from the real photos: no roadwork, roadwork (TRACON), roadwork seen from a dash cam (VTTI)."""
    if photo["label"] == 0:
        return 0
    return 2 if photo["source"] == "vtti" else 1


def write_multiclass_dataset(
    root: Path, *, per_class: int = 16, n_unlabeled: int = 0, seed: int = 0
) -> DatasetVersionDir:
    """A 3-class dataset version of real photos, stratified splits, two cascade models storing class probs."""
    rng = np.random.default_rng(seed)
    pool, _ = roadwork_pool()
    by_class: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    for photo in pool:
        by_class[multiclass_class_of(photo)].append(photo)
    chosen = []
    for k, photos in by_class.items():
        picks = rng.permutation(len(photos))[: per_class + (n_unlabeled if k == 0 else 0)]
        chosen += [(k, photos[i]) for i in picks]
    records, index = [], 0
    for k in range(3):
        members = [photo for label, photo in chosen if label == k]
        labeled, unlabeled = members[:per_class], members[per_class:]
        n_val = n_holdout = max(1, round(0.25 * len(labeled)))
        for rank, photo in enumerate(labeled + unlabeled):
            split = "val" if rank < n_val else "holdout" if rank < n_val + n_holdout else "train"
            index += 1
            records.append(
                DatasetRecord(
                    item_id=index,
                    external_id=f"{photo['source']}/{photo['image'].stem}",
                    image=str(photo["image"]),
                    label=None if rank >= per_class else k,
                    split=split,
                    predictions=_multiclass_predictions(k, rng),
                    metadata={"camera_id": f"cam-{index % 3}", "is_night": photo["is_night"]},
                )
            )
    info = DatasetInfo(
        project="roadwork-kinds",
        version=1,
        kind="multiclass",
        classes=list(MULTICLASS),
        question="Which kind of scene is this?",
        content_hash=f"multiclass-{seed}-{per_class}",
    )
    return write_dataset_dir(root, info, records)


def _multiclass_predictions(label: int, rng: np.random.Generator) -> list[StoredPrediction]:
    out = []
    for model, skill in (("vlm", 2.0), ("clf", 1.0)):
        logits = rng.normal(0.0, 1.0, 3)
        logits[label] += skill
        probs = np.exp(logits) / np.exp(logits).sum()
        out.append(
            StoredPrediction(model=model, model_version="1", probs=[round(float(p), 6) for p in probs])
        )
    return out


@pytest.fixture
def multiclass_dataset_dir(tmp_path: Path) -> DatasetVersionDir:
    """48 labeled items of 3 classes (16 each), stratified train/val/holdout, two cascade models' class probs."""
    return write_multiclass_dataset(tmp_path / "multiclass")
