"""A tiny Qwen2-VL fine-tuned with trl SFT on real roadwork photos: artifacts, holdout scores, cancel and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ml.training.reporting import JobCancelled, MemoryReporter
from ml.training.vlm.config import VlmSftConfig
from ml.training.vlm.sft import run
from tests.ml.conftest import TINY_VLM_TRAINING

pytestmark = pytest.mark.slow


def _config(model: Path, **overrides) -> VlmSftConfig:
    values = {**TINY_VLM_TRAINING, "model_name_or_path": str(model), "max_steps": 3, "save_steps": 10}
    return VlmSftConfig(**{**values, **overrides})


def _score_from_artifacts(artifact_dir: Path, model: Path, dataset) -> dict[int, float]:
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ml.training.vlm.evaluate import score_p_yes

    base = AutoModelForImageTextToText.from_pretrained(model)
    adapted = PeftModel.from_pretrained(base, artifact_dir / "adapter")
    processor = AutoProcessor.from_pretrained(artifact_dir / "processor")
    question = json.loads((artifact_dir / "threshold.json").read_text())["question"]
    return score_p_yes(adapted, processor, dataset, dataset.records("holdout"), question=question)


def test_sft_writes_an_adapter_whose_holdout_scores_the_registry_can_reproduce(
    tiny_vlm, roadwork_dataset_dir, tmp_path
):
    reporter = MemoryReporter()
    result = run(_config(tiny_vlm), roadwork_dataset_dir, reporter, tmp_path / "job")

    holdout_ids = {r.item_id for r in roadwork_dataset_dir.records("holdout")}
    assert set(result.holdout_scores) == holdout_ids
    assert all(0.0 < s < 1.0 for s in result.holdout_scores.values())
    assert 0.0 <= result.threshold <= 1.0
    assert -1.0 <= result.metrics["mcc"] <= 1.0 and -1.0 <= result.metrics["val_mcc"] <= 1.0
    assert math.isfinite(result.metrics["auroc"]) and math.isfinite(result.metrics["train_loss"])
    for relative in result.files.values():
        assert (result.artifact_dir / relative).exists()
    assert (result.artifact_dir / "adapter" / "adapter_config.json").exists()
    assert (
        json.loads((result.artifact_dir / "metrics.json").read_text())["summary"]["mcc"]
        == result.metrics["mcc"]
    )

    assert reporter.steps == [(1, 3), (2, 3), (3, 3)]
    assert [step for step, values in reporter.history if "loss" in values] == [1, 2, 3]

    reloaded = _score_from_artifacts(result.artifact_dir, tiny_vlm, roadwork_dataset_dir)
    assert reloaded == pytest.approx(result.holdout_scores, abs=1e-4)


def test_cancelled_sft_keeps_a_checkpoint_and_the_retry_resumes_from_it(
    tiny_vlm, roadwork_dataset_dir, tmp_path
):
    workdir = tmp_path / "job"
    with pytest.raises(JobCancelled):
        run(_config(tiny_vlm), roadwork_dataset_dir, MemoryReporter(cancel_after_step=1), workdir)
    assert (workdir / "checkpoints" / "checkpoint-1").is_dir()
    assert not (workdir / "artifacts").exists()

    retry = MemoryReporter()
    result = run(_config(tiny_vlm), roadwork_dataset_dir, retry, workdir)
    assert retry.steps[0] == (2, 3)
    assert "resuming from checkpoint-1" in retry.lines
    assert set(result.holdout_scores) == {r.item_id for r in roadwork_dataset_dir.records("holdout")}


def test_sft_trains_a_qwen3_vl_model_too(roadwork_dataset_dir, tmp_path):
    from ml.training.vlm.tiny import build_tiny_qwen3_vl

    model = build_tiny_qwen3_vl(tmp_path / "qwen3-vl")
    config = _config(model, max_steps=2, max_image_pixels=128 * 128, train_vision_merger=True)
    result = run(config, roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
    assert set(result.holdout_scores) == {r.item_id for r in roadwork_dataset_dir.records("holdout")}
    adapter = json.loads((result.artifact_dir / "adapter" / "adapter_config.json").read_text())
    assert "model.visual.merger.linear_fc1" in adapter["target_modules"]
