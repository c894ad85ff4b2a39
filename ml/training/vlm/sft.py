"""`vlm_sft`: supervised fine-tuning of a Qwen-VL model (LoRA, trl SFTTrainer) to answer the project's question."""

from __future__ import annotations

from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.training.reporting import Reporter, TrainingResult, check_cancelled
from ml.training.vlm.backends import check_backend_available, load_vlm, set_offline_environment
from ml.training.vlm.config import VlmSftConfig
from ml.training.vlm.conversations import build_sft_examples
from ml.training.vlm.jobs import (
    evaluate_and_save,
    load_training_rows,
    reporter_callback,
    train,
    trainer_arguments,
)


def run(
    config: VlmSftConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    set_offline_environment()
    check_backend_available(config)
    rows = build_sft_examples(dataset, with_rationale=config.with_rationale, split="train")
    if not rows:
        raise ValueError("dataset: the train split has no labeled item to fine-tune on")
    reporter.log(f"vlm_sft: {len(rows)} train conversations from {config.model_name_or_path}")
    check_cancelled(reporter)

    from trl import SFTConfig, SFTTrainer

    loaded, device = load_vlm(config)
    train_dataset = load_training_rows(rows, workdir / "data" / "sft_train.jsonl", workdir)
    args = SFTConfig(**trainer_arguments(config, device, workdir), completion_only_loss=True)
    callback = reporter_callback(reporter)
    trainer = SFTTrainer(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        processing_class=loaded.processor,
        peft_config=loaded.peft_config,
        callbacks=[callback],
    )
    train_metrics = train(trainer, reporter, callback, workdir)
    return evaluate_and_save("vlm_sft", config, dataset, loaded, trainer, train_metrics, reporter, workdir)
