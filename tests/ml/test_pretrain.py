"""The pretrain kind's self-supervised step (lightly SimCLR / BYOL around a tiny ViT) on a tiny pool of real
photos, and the job's artifact: a backbone folder other kinds load, with a linear probe the registry can score."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ml.tiny import build_tiny_vit_classifier
from ml.training.bases import read_marker
from ml.training.common.data import Normalisation, load_image
from ml.training.common.models import load_image_classifier
from ml.training.pretrain.config import PretrainConfig
from ml.training.pretrain.ssl import (
    HeadlessClassifier,
    SSLSettings,
    TwoViews,
    build_ssl,
    train_ssl,
    two_view_transform,
)
from ml.training.pretrain.trainer import run
from ml.training.reporting import MemoryReporter

SIZE = 32
PLAIN = Normalisation(mean=(0.5,) * 3, std=(0.5,) * 3)


def tiny_pool(dataset, n: int = 16) -> list:
    records = dataset.records()[:n]
    return [load_image(dataset.image_path(r), SIZE) for r in records]


def ssl_run(tmp_path, images: list[Image.Image], method: str, seed: int, steps: int) -> list[float]:
    torch.manual_seed(seed)
    path = build_tiny_vit_classifier(tmp_path / f"vit-{method}-{seed}-{steps}", seed=seed)
    backbone = HeadlessClassifier(load_image_classifier(str(path), ["negative", "positive"]))
    settings = SSLSettings(
        method=method,
        steps=steps,
        batch_size=8,
        learning_rate=3e-3,
        hidden_dim=32,
        projection_dim=16,
        seed=seed,
    )
    views = TwoViews(lambda i: images[i], len(images), two_view_transform(method, SIZE, PLAIN, 0.5))
    model = build_ssl(backbone, SIZE, settings)
    return train_ssl(model, views, settings, MemoryReporter(), torch.device("cpu"))


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_ssl_loss_decreases_on_a_tiny_pool(method, roadwork_dataset_dir, tmp_path):
    """Training lowers the self-supervised loss: the mean of the last steps is below the first steps'."""
    images = tiny_pool(roadwork_dataset_dir)
    losses = ssl_run(tmp_path, images, method, seed=0, steps=40)
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < np.mean(losses[:8]), losses


def test_ssl_is_deterministic_with_a_seed(roadwork_dataset_dir, tmp_path):
    """Same seed, same losses step for step (data order, augmentations, initialisation); another seed differs."""
    images = tiny_pool(roadwork_dataset_dir, 8)
    first = ssl_run(tmp_path / "a", images, "simclr", seed=3, steps=4)
    again = ssl_run(tmp_path / "b", images, "simclr", seed=3, steps=4)
    other = ssl_run(tmp_path / "c", images, "simclr", seed=4, steps=4)
    assert first == again
    assert first != other


class CrashingReporter(MemoryReporter):
    """A worker that dies right after step `crash_at` (preempted, OOM-killed)."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def progress(self, step: int, total: int) -> None:
        super().progress(step, total)
        if step == self.crash_at:
            raise RuntimeError("worker lost")


def test_a_resumed_run_continues_from_its_checkpoint_with_the_same_losses(roadwork_dataset_dir, tmp_path):
    """Killed after step 3 with a checkpoint at step 2, a new attempt resumes at step 2 and its steps 3-4 have the
    losses of an uninterrupted run (model, optimizer, schedule, data order and augmentation RNG restored)."""
    images = tiny_pool(roadwork_dataset_dir, 8)
    settings = SSLSettings(steps=4, batch_size=4, hidden_dim=32, projection_dim=16, checkpoint_every=2)
    transform = two_view_transform("simclr", SIZE, PLAIN, 0.5)
    path = build_tiny_vit_classifier(tmp_path / "vit")

    def attempt(reporter, checkpoints):
        torch.manual_seed(0)
        backbone = HeadlessClassifier(load_image_classifier(str(path), ["negative", "positive"]))
        model = build_ssl(backbone, SIZE, settings)
        views = TwoViews(lambda i: images[i], len(images), transform)
        return train_ssl(model, views, settings, reporter, torch.device("cpu"), checkpoints)

    clean = attempt(MemoryReporter(), tmp_path / "clean")
    with pytest.raises(RuntimeError, match="worker lost"):
        attempt(CrashingReporter(crash_at=3), tmp_path / "crashed")
    resumed = MemoryReporter()
    tail = attempt(resumed, tmp_path / "crashed")
    assert "resumed self-supervised training from checkpoint at step 2" in resumed.lines
    assert tail == pytest.approx(clean[2:], rel=1e-5)


def test_pretrain_job_writes_a_backbone_folder_with_a_probe_and_card(roadwork_dataset_factory, tmp_path):
    """The job trains on labeled and unlabeled images, reports loss and progress, and leaves a ViT folder (no
    'pretrained: false' marker, so it counts as pretrained) whose card names the method and the base."""
    dataset = roadwork_dataset_factory(n_items=24, n_unlabeled=8)
    config = PretrainConfig(
        base_model="builtin:vit-tiny",
        max_steps=6,
        batch_size=8,
        log_every=2,
        checkpoint_every=3,
        hidden_dim=32,
    )
    reporter = MemoryReporter()
    result = run(config, dataset, reporter, tmp_path / "job")

    assert reporter.steps[-1] == (6, 6)
    assert [step for step, values in reporter.history if "loss" in values] == [2, 4, 6]
    merged = result.artifact_dir / result.files["model"]
    assert json.loads((merged / "config.json").read_text())["model_type"] == "vit"
    assert read_marker(merged) == {}
    assert result.method == "simclr-vit-tiny"
    assert result.metrics["pool_images"] == 32.0
    assert set(result.holdout_scores) == {r.item_id for r in dataset.records("holdout")}
    card = (result.artifact_dir / "README.md").read_text()
    assert "SimCLR self-supervised pretraining" in card and "builtin:vit-tiny" in card
    assert (result.artifact_dir / "onnx" / "model.onnx").is_file()
