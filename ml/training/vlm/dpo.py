"""`vlm_dpo`: preference training of a Qwen-VL model (LoRA, trl DPOTrainer): humans' answers over the VLM's own."""

from __future__ import annotations

from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.training.reporting import Reporter, TrainingResult, check_cancelled
from ml.training.vlm.backends import check_backend_available, load_vlm, set_offline_environment
from ml.training.vlm.config import VlmDpoConfig
from ml.training.vlm.jobs import (
    evaluate_and_save,
    load_training_rows,
    reporter_callback,
    train,
    trainer_arguments,
)
from ml.training.vlm.pairs import build_preference_pairs


def run(
    config: VlmDpoConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    set_offline_environment()
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
    check_cancelled(reporter)

    from trl import DPOConfig, DPOTrainer

    loaded, device = load_vlm(config)
    train_dataset = load_training_rows(pairs, workdir / "data" / "dpo_train.jsonl", workdir)
    args = DPOConfig(
        **trainer_arguments(config, device, workdir), beta=config.beta, loss_type=config.loss_type
    )
    callback = reporter_callback(reporter)
    trainer = DPOTrainer(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        processing_class=loaded.processor,
        peft_config=loaded.peft_config,
        callbacks=[callback],
    )
    train_metrics = train(trainer, reporter, callback, workdir)
    return evaluate_and_save("vlm_dpo", config, dataset, loaded, trainer, train_metrics, reporter, workdir)
