"""A tiny Qwen2-VL trained with trl DPO on the cascade VLM's wrong answers about real roadwork photos."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ml.dataset import DatasetInfo, DatasetRecord, StoredPrediction, write_dataset_dir
from ml.training.reporting import MemoryReporter
from ml.training.vlm.config import VlmDpoConfig
from ml.training.vlm.dpo import run
from tests.ml.conftest import TINY_VLM_TRAINING

pytestmark = pytest.mark.slow


def _config(model: Path, **overrides) -> VlmDpoConfig:
    values = {**TINY_VLM_TRAINING, "model_name_or_path": str(model), "vlm_model_name": "vlm", "max_steps": 2}
    return VlmDpoConfig(**{**values, **overrides})


def test_dpo_on_vlm_disagreements_writes_artifacts_and_holdout_scores(
    tiny_vlm, roadwork_dataset_dir, tmp_path
):
    reporter = MemoryReporter()
    result = run(_config(tiny_vlm), roadwork_dataset_dir, reporter, tmp_path / "job")

    assert any(line.startswith("vlm_dpo: ") and "disagreement" in line for line in reporter.lines)
    assert reporter.steps[-1] == (2, 2)
    dpo_logs = [values for _, values in reporter.history if "rewards/margins" in values]
    assert len(dpo_logs) == 2 and all(math.isfinite(v["loss"]) for v in dpo_logs)
    assert set(result.holdout_scores) == {r.item_id for r in roadwork_dataset_dir.records("holdout")}
    assert -1.0 <= result.metrics["mcc"] <= 1.0
    for relative in result.files.values():
        assert (result.artifact_dir / relative).exists()


def test_dpo_refuses_a_dataset_where_the_vlm_was_always_right_and_sure(tmp_path):
    from ml.sample_data import sample_data_dir

    image = sample_data_dir() / "roadwork" / "tracon" / "images" / "test__ok12.png"
    records = [
        DatasetRecord(
            item_id=i,
            external_id=str(i),
            image=str(image),
            label=0,
            split="train",
            predictions=[StoredPrediction(model="vlm", score=0.02, label="no")],
        )
        for i in range(3)
    ]
    dataset = write_dataset_dir(tmp_path / "d", DatasetInfo(project="p", version=1), records)
    with pytest.raises(ValueError, match="^dataset: no preference pair"):
        run(_config(tmp_path / "never-loaded"), dataset, MemoryReporter(), tmp_path / "job")


def test_dpo_starts_from_a_merged_sft_adapter(tiny_vlm, roadwork_dataset_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from ml.training.vlm.backends import load_processor
    from ml.training.vlm.evaluate import score_p_yes

    model_dir = tiny_vlm
    base = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = load_processor(str(model_dir), 112 * 112)
    holdout = roadwork_dataset_dir.records("holdout")
    question = roadwork_dataset_dir.info.question
    base_scores = score_p_yes(base, processor, roadwork_dataset_dir, holdout, question=question)
    # A random, non-zero adapter stands in for a vlm_sft artifact: it visibly moves the scores.
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    sft_like = get_peft_model(base, lora)
    sft_like.save_pretrained(tmp_path / "sft-adapter")
    start_scores = score_p_yes(sft_like, processor, roadwork_dataset_dir, holdout, question=question)
    assert start_scores != pytest.approx(base_scores, abs=1e-3)

    config = _config(
        model_dir, max_steps=1, learning_rate=1e-12, init_adapter_path=str(tmp_path / "sft-adapter")
    )
    result = run(config, roadwork_dataset_dir, MemoryReporter(), tmp_path / "job")
    assert result.holdout_scores == pytest.approx(start_scores, abs=1e-4)
