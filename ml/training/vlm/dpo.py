"""`vlm_dpo`: preference training of a Qwen-VL model (LoRA, trl DPOTrainer): humans' answers over the VLM's own."""

from __future__ import annotations

from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.training.common.runtime import hub_offline
from ml.training.reporting import Reporter, TrainingResult
from ml.training.vlm.backends import check_backend_available
from ml.training.vlm.config import VlmDpoConfig
from ml.training.vlm.jobs import run_trl_job
from ml.training.vlm.pairs import build_preference_pairs


def run(
    config: VlmDpoConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    hub_offline()
    check_backend_available(config)
    pairs = build_preference_pairs(
        dataset,
        vlm_model=config.vlm_model_name,
        low_confidence_margin=config.low_confidence_margin,
        split="train",
        with_rationale=config.with_rationale,
    )
    if not pairs:
        raise ValueError(
            "dataset: no preference pair in the train split (the VLM was right and sure on every item); "
            "lower low_confidence_margin or train vlm_sft"
        )
    reasons = sorted({p["reason"] for p in pairs})
    reporter.log(f"vlm_dpo: {len(pairs)} preference pairs ({', '.join(reasons)})")
    from trl import DPOConfig, DPOTrainer

    return run_trl_job(
        "vlm_dpo",
        config,
        dataset,
        reporter,
        workdir,
        pairs,
        DPOTrainer,
        DPOConfig,
        beta=config.beta,
        loss_type=config.loss_type,
    )
