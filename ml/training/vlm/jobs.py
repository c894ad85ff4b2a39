"""What both VLM jobs share: the reporter callback, trainer arguments, checkpoints, training data and artifacts."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ml.dataset import DatasetVersionDir
from ml.training.bases import resolve_base
from ml.training.common.artifacts import write_decision_files, write_model_card
from ml.training.reporting import JobCancelled, Reporter, TrainingResult, check_cancelled
from ml.training.vlm.backends import LoadedVlm, TrainingDevice, load_vlm
from ml.training.vlm.config import VlmBaseConfig
from ml.training.vlm.evaluate import VlmEvaluation, answer_token_ids, evaluate_vlm


def reporter_callback(reporter: Reporter):
    """A TrainerCallback streaming progress and logs to `reporter`; on cancel it checkpoints and stops."""
    from transformers import TrainerCallback

    class ReporterCallback(TrainerCallback):
        def __init__(self) -> None:
            self.cancelled = False

        def on_step_end(self, args, state, control, **kwargs):
            reporter.progress(state.global_step, state.max_steps)
            if reporter.cancelled():
                self.cancelled = True
                control.should_save = True  # a retry resumes here instead of from scratch
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if values:
                reporter.metrics(state.global_step, values)
            return control

    return ReporterCallback()


def checkpoint_dir(workdir: Path) -> Path:
    return workdir / "checkpoints"


def last_checkpoint(workdir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = checkpoint_dir(workdir)
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def trainer_arguments(config: VlmBaseConfig, device: TrainingDevice, workdir: Path) -> dict[str, Any]:
    """Keyword arguments common to trl's SFTConfig and DPOConfig."""
    return {
        "output_dir": str(checkpoint_dir(workdir)),
        "max_steps": config.max_steps,
        "num_train_epochs": config.num_train_epochs,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "learning_rate": config.learning_rate,
        "warmup_ratio": config.warmup_ratio,
        "logging_steps": config.logging_steps,
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "seed": config.seed,
        "max_length": config.max_length,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **device.trainer_arguments(),
    }


def load_training_rows(rows: list[dict], path: Path, workdir: Path):
    """Writes rows as JSONL and loads them back as an HF dataset whose `images` column decodes to PIL images."""
    from datasets import Image, List, load_dataset

    from ml.training.vlm.pairs import write_pairs_jsonl

    write_pairs_jsonl(rows, path)
    dataset = load_dataset("json", data_files=str(path), split="train", cache_dir=str(workdir / "hf_cache"))
    return dataset.cast_column("images", List(Image(mode="RGB")))


def train(trainer: Any, reporter: Reporter, callback: Any, workdir: Path) -> dict[str, float]:
    """Runs the trainer, resuming from the latest checkpoint; raises JobCancelled after a cancel checkpoint."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # logs go to the reporter, not stdout
    resume = last_checkpoint(workdir)
    if resume:
        reporter.log(f"resuming from {Path(resume).name}")
    output = trainer.train(resume_from_checkpoint=resume)
    if callback.cancelled:
        reporter.log(f"cancelled at step {trainer.state.global_step}; checkpoint kept for a retry")
        raise JobCancelled()
    return {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}


VLM_USAGE = """```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{base}")
model = PeftModel.from_pretrained(base, "adapter")
processor = AutoProcessor.from_pretrained("processor")
```"""


def write_artifacts(
    kind: str,
    config: VlmBaseConfig,
    dataset: DatasetVersionDir,
    loaded: LoadedVlm,
    model: Any,
    evaluation: VlmEvaluation,
    workdir: Path,
) -> TrainingResult:
    """adapter/, processor/, threshold.json, metrics.json, holdout_scores.json, README.md under workdir/artifacts."""
    out = workdir / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "adapter")
    loaded.processor.save_pretrained(out / "processor")
    files = {"adapter": "adapter", "processor": "processor"}
    yes_ids, no_ids = answer_token_ids(loaded.processor.tokenizer)
    threshold = {
        "threshold": evaluation.threshold,
        "score": "p_yes = p(yes tokens) / (p(yes tokens) + p(no tokens)) at the first answer position",
        "val_mcc": evaluation.metrics.get("val_mcc"),
        "question": dataset.info.question,
        "yes_token_ids": yes_ids,
        "no_token_ids": no_ids,
    }
    report = {
        "summary": evaluation.metrics,
        "holdout": {k: v for k, v in evaluation.metrics.items() if k not in ("val_mcc", "train_loss")},
        "slices": evaluation.slices,
        "reliability": evaluation.reliability,
    }
    files |= write_decision_files(out, threshold, report)
    (out / "holdout_scores.json").write_text(
        json.dumps({str(k): v for k, v in evaluation.holdout_scores.items()})
    )
    (out / "config.json").write_text(json.dumps({"kind": kind, **asdict(config)}, indent=2))
    files |= {"holdout_scores": "holdout_scores.json", "config": "config.json"}
    files |= write_model_card(
        out,
        title=f"{dataset.info.project} — {kind} LoRA adapter",
        method=f"{kind} LoRA r={config.lora_r} alpha={config.lora_alpha} "
        f"(backend `{config.backend}`, quantization `{config.quantization}`)",
        base_model=config.model_name_or_path,
        dataset=dataset.info,
        decision_rule=f'P(yes) = p("yes") / (p("yes") + p("no")) over the first answer token to the image '
        f'followed by "{dataset.info.question}"; positive when P(yes) >= {evaluation.threshold:.4f} '
        "(MCC-optimal on val)",
        metrics=evaluation.metrics,
        settings=asdict(config),
        slices=evaluation.slices,
        usage=VLM_USAGE.replace("{base}", config.model_name_or_path),
    )
    return TrainingResult(
        out, evaluation.threshold, evaluation.metrics, evaluation.holdout_scores, files, method="lora"
    )


def evaluate_and_save(
    kind: str,
    config: VlmBaseConfig,
    dataset: DatasetVersionDir,
    loaded: LoadedVlm,
    trainer: Any,
    train_metrics: dict[str, float],
    reporter: Reporter,
    workdir: Path,
) -> TrainingResult:
    model = trainer.model
    if config.backend == "unsloth":
        from unsloth import FastVisionModel

        FastVisionModel.for_inference(model)
    reporter.log("scoring val and holdout")
    evaluation = evaluate_vlm(model, loaded.processor, dataset, batch_size=config.eval_batch_size)
    if "train_loss" in train_metrics:
        evaluation.metrics["train_loss"] = train_metrics["train_loss"]
    reporter.metrics(trainer.state.global_step, evaluation.metrics)
    return write_artifacts(kind, config, dataset, loaded, model, evaluation, workdir)


def run_trl_job(
    kind: str,
    config: VlmBaseConfig,
    dataset: DatasetVersionDir,
    reporter: Reporter,
    workdir: Path,
    rows: list[dict],
    trainer_class: Any,
    args_class: Any,
    **method_args: Any,
) -> TrainingResult:
    """Loads the model, trains trl's `trainer_class` on `rows` (resuming, cancellable), scores and saves it."""
    check_cancelled(reporter)
    base = resolve_base(config.model_name_or_path, workdir)
    if not base.pretrained:
        reporter.log(f"{base.label}: LoRA on random weights checks the pipeline, it will not learn much")
    loaded, device = load_vlm(dataclasses.replace(config, model_name_or_path=base.path))
    data_file = workdir / "data" / f"{kind.removeprefix('vlm_')}_train.jsonl"
    train_dataset = load_training_rows(rows, data_file, workdir)
    args = args_class(**trainer_arguments(config, device, workdir), **method_args)
    callback = reporter_callback(reporter)
    trainer = trainer_class(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        processing_class=loaded.processor,
        peft_config=loaded.peft_config,
        callbacks=[callback],
    )
    train_metrics = train(trainer, reporter, callback, workdir)
    return evaluate_and_save(kind, config, dataset, loaded, trainer, train_metrics, reporter, workdir)
