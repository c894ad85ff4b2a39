"""`vlm_sft`: supervised fine-tuning of a Qwen-VL model (LoRA, trl SFTTrainer) to answer the project's question."""

from __future__ import annotations

from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.training.common.runtime import hub_offline
from ml.training.reporting import Reporter, TrainingResult
from ml.training.vlm.backends import check_backend_available
from ml.training.vlm.config import VlmSftConfig
from ml.training.vlm.conversations import build_sft_examples
from ml.training.vlm.jobs import run_trl_job


def run(
    config: VlmSftConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    hub_offline()
    check_backend_available(config)
    rows = build_sft_examples(dataset, with_rationale=config.with_rationale, split="train")
    if not rows:
        raise ValueError("dataset: the train split has no labeled item to fine-tune on")
    reporter.log(f"vlm_sft: {len(rows)} train conversations from {config.model_name_or_path}")
    from trl import SFTConfig, SFTTrainer

    return run_trl_job(
        "vlm_sft", config, dataset, reporter, workdir, rows, SFTTrainer, SFTConfig, completion_only_loss=True
    )
