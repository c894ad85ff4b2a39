"""classifier_lora end to end on a tiny ViT and real roadwork photos: artifacts, threshold, cancel, resume."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.evaluation import apply_temperature, mcc_optimal_threshold
from ml.tiny import build_tiny_vit_classifier
from ml.training.classifier_lora.config import ClassifierLoraConfig
from ml.training.classifier_lora.trainer import run
from ml.training.common.data import Normalisation, image_transform, load_image, split_records
from ml.training.reporting import JobCancelled, MemoryReporter

pytestmark = pytest.mark.slow


class CrashingReporter(MemoryReporter):
    """Simulates a worker dying after `crash_at_step` steps (e.g. OOM-killed or preempted)."""

    def __init__(self, crash_at_step: int) -> None:
        super().__init__()
        self.crash_at_step = crash_at_step

    def progress(self, step: int, total: int) -> None:
        super().progress(step, total)
        if step == self.crash_at_step:
            raise RuntimeError("worker lost")


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    return build_tiny_vit_classifier(tmp_path_factory.mktemp("tiny-vit") / "model")


def tiny_config(base: Path, **overrides) -> ClassifierLoraConfig:
    values = dict(base_model=str(base), max_steps=6, batch_size=8, eval_every=3, checkpoint_every=2, lora_r=4)
    return ClassifierLoraConfig(**{**values, **overrides})


def pixel_batch(dataset, split: str, size: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    records = split_records(dataset, split)
    transform = image_transform(size, Normalisation(mean=(0.5,) * 3, std=(0.5,) * 3), augment=False)
    pixels = torch.stack([transform(load_image(dataset.image_path(r), size)) for r in records])
    return pixels, np.array([r.label for r in records])


def test_training_writes_every_artifact_and_reports_progress(tiny_vit, roadwork_dataset_dir, tmp_path):
    reporter = MemoryReporter()
    result = run(tiny_config(tiny_vit), roadwork_dataset_dir, reporter, tmp_path / "job")

    artifacts = tmp_path / "job" / "artifacts"
    assert result.artifact_dir == artifacts
    for name in (
        "adapter/adapter_config.json",
        "merged/config.json",
        "merged/preprocessor_config.json",
        "threshold.json",
        "metrics.json",
        "README.md",
    ):
        assert (artifacts / name).exists(), name
    assert result.files["model"] == "merged" and result.files["adapter"] == "adapter"
    assert [step for step, _ in reporter.steps] == [1, 2, 3, 4, 5, 6]
    assert {step for step, values in reporter.history if "val_mcc" in values} == {3, 6}
    holdout = split_records(roadwork_dataset_dir, "holdout")
    assert set(result.holdout_scores) == {r.item_id for r in holdout}
    assert all(0.0 <= s <= 1.0 for s in result.holdout_scores.values())
    assert result.metrics["n"] == len(holdout)
    card = (artifacts / "README.md").read_text()
    assert "content hash `test-0-48-0`" in card and f"{result.threshold:.4f}" in card


def test_the_onnx_export_scores_the_holdout_as_training_did(tiny_vit, roadwork_dataset_dir, tmp_path):
    from app.client import OnnxPredictor

    result = run(tiny_config(tiny_vit, max_steps=2), roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
    predictor = OnnxPredictor.load(result.artifact_dir / result.files["onnx"])
    holdout = split_records(roadwork_dataset_dir, "holdout", labeled_only=False)
    scores = predictor.scores([roadwork_dataset_dir.image_path(r) for r in holdout])
    np.testing.assert_allclose(scores, [result.holdout_scores[r.item_id] for r in holdout], atol=1e-4)
    assert predictor.threshold == pytest.approx(result.threshold)


def test_merged_model_gives_the_adapter_model_probabilities(tiny_vit, roadwork_dataset_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    result = run(tiny_config(tiny_vit), roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
    pixels, _ = pixel_batch(roadwork_dataset_dir, "holdout")
    merged = AutoModelForImageClassification.from_pretrained(result.artifact_dir / "merged").eval()
    base = AutoModelForImageClassification.from_pretrained(tiny_vit)
    adapter = PeftModel.from_pretrained(base, result.artifact_dir / "adapter").eval()
    with torch.no_grad():
        merged_probs = merged(pixel_values=pixels).logits.softmax(-1)
        adapter_probs = adapter(pixel_values=pixels).logits.softmax(-1)
    torch.testing.assert_close(merged_probs, adapter_probs, atol=1e-5, rtol=1e-4)


def test_threshold_is_the_mcc_optimal_one_on_val(tiny_vit, roadwork_dataset_dir, tmp_path):
    from transformers import AutoModelForImageClassification

    result = run(tiny_config(tiny_vit, max_steps=8), roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
    saved = json.loads((result.artifact_dir / "threshold.json").read_text())
    model = AutoModelForImageClassification.from_pretrained(result.artifact_dir / "merged").eval()
    pixels, labels = pixel_batch(roadwork_dataset_dir, "val")
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits.numpy()
    probs = apply_temperature(logits, saved["temperature"])
    threshold, best = mcc_optimal_threshold(probs, labels)
    assert saved["threshold"] == pytest.approx(result.threshold)
    assert threshold == pytest.approx(saved["threshold"], abs=1e-6)
    assert best == pytest.approx(saved["val_mcc"], abs=1e-9)


def test_cancelled_job_stops_within_one_step(tiny_vit, roadwork_dataset_dir, tmp_path):
    reporter = MemoryReporter(cancel_after_step=2)
    with pytest.raises(JobCancelled):
        run(tiny_config(tiny_vit), roadwork_dataset_dir, reporter, tmp_path / "job")
    assert reporter.steps[-1][0] == 2
    assert not (tmp_path / "job" / "artifacts").exists()


def test_crashed_job_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_run(
    tiny_vit, roadwork_dataset_dir, tmp_path
):
    config = tiny_config(tiny_vit, max_steps=8, checkpoint_every=2, eval_every=4)
    with pytest.raises(RuntimeError, match="worker lost"):
        run(config, roadwork_dataset_dir, CrashingReporter(crash_at_step=5), tmp_path / "job")
    assert (tmp_path / "job" / "checkpoints" / "step-4").exists()

    resumed = MemoryReporter()
    result = run(config, roadwork_dataset_dir, resumed, tmp_path / "job")
    assert [step for step, _ in resumed.steps] == [5, 6, 7, 8]
    assert any("resumed from checkpoint at step 4" in line for line in resumed.lines)

    straight = run(config, roadwork_dataset_dir, MemoryReporter(), tmp_path / "straight")
    ids = sorted(straight.holdout_scores)
    np.testing.assert_allclose(
        [result.holdout_scores[i] for i in ids], [straight.holdout_scores[i] for i in ids], atol=1e-6
    )


def test_lora_trains_a_small_fraction_of_the_parameters_of_full_finetuning(
    tiny_vit, roadwork_dataset_dir, tmp_path
):
    lora = run(tiny_config(tiny_vit, max_steps=2), roadwork_dataset_dir, MemoryReporter(), tmp_path / "lora")
    full = run(
        tiny_config(tiny_vit, max_steps=2, method="full"),
        roadwork_dataset_dir,
        MemoryReporter(),
        tmp_path / "full",
    )
    assert lora.metrics["total_params"] > full.metrics["total_params"] * 0.99
    assert full.metrics["trainable_params"] == full.metrics["total_params"]
    assert lora.metrics["trainable_params"] < 0.1 * full.metrics["trainable_params"]
    assert "adapter" not in full.files and (full.artifact_dir / "merged" / "config.json").exists()


def test_auto_method_fine_tunes_a_random_builtin_fully_and_a_pretrained_folder_with_lora(
    tiny_vit, roadwork_dataset_dir, tmp_path
):
    builtin = run(
        tiny_config("builtin:vit-tiny", max_steps=1), roadwork_dataset_dir, MemoryReporter(), tmp_path / "b"
    )
    pretrained = run(
        tiny_config(tiny_vit, max_steps=1), roadwork_dataset_dir, MemoryReporter(), tmp_path / "p"
    )
    assert (builtin.method, pretrained.method) == ("full", "lora")
    assert builtin.metrics["trainable_params"] == builtin.metrics["total_params"]
    card = (builtin.artifact_dir / "README.md").read_text()
    assert "full fine-tune of a randomly initialised backbone" in card and "builtin:vit-tiny" in card
    assert "LoRA r=4" in (pretrained.artifact_dir / "README.md").read_text()


def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="^lora_r:"):
        ClassifierLoraConfig(lora_r=0)
    with pytest.raises(ValueError, match="^ema_decay:"):
        ClassifierLoraConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="^device:"):
        ClassifierLoraConfig(device="tpu")


def test_config_module_does_not_import_torch():
    code = "import sys, ml.training.classifier_lora.config, ml.training.distill.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_target_modules_fail_before_training(tiny_vit, roadwork_dataset_dir, tmp_path):
    reporter = MemoryReporter()
    with pytest.raises(ValueError):
        run(
            tiny_config(tiny_vit, target_modules="no_such_layer"),
            roadwork_dataset_dir,
            reporter,
            tmp_path / "job",
        )
    assert reporter.steps == []


def test_image_size_the_model_cannot_take_is_a_config_error(tiny_vit, roadwork_dataset_dir, tmp_path):
    with pytest.raises(ValueError, match="^image_size:"):
        run(tiny_config(tiny_vit, image_size=64), roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
