"""What both VLM jobs share: the reporter callback, trainer arguments, checkpoints, training data and artifacts."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ml.dataset import DatasetVersionDir
from ml.training.reporting import JobCancelled, Reporter, TrainingResult
from ml.training.vlm.backends import LoadedVlm, TrainingDevice
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


def _model_card(
    kind: str, config: VlmBaseConfig, dataset: DatasetVersionDir, evaluation: VlmEvaluation
) -> str:
    info = dataset.info
    metric_lines = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(evaluation.metrics.items()))
    return f"""# {info.project} — {kind} LoRA adapter

Base model: `{config.model_name_or_path}` (backend `{config.backend}`, quantization `{config.quantization}`,
LoRA r={config.lora_r}, alpha={config.lora_alpha}). Trained on dataset version {info.version}
(content hash `{info.content_hash}`).

Prompt: the image followed by "{info.question}". The score is P(yes) = p("yes") / (p("yes") + p("no")) over
the first answer token; an item is positive when P(yes) ≥ {evaluation.threshold:.4f} (MCC-optimal on val).

## Holdout metrics

| metric | value |
|---|---|
{metric_lines}

## Load

```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{config.model_name_or_path}")
model = PeftModel.from_pretrained(base, "adapter")
processor = AutoProcessor.from_pretrained("processor")
```
"""


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
    yes_ids, no_ids = answer_token_ids(loaded.processor.tokenizer)
    threshold = {
        "threshold": evaluation.threshold,
        "score": "p_yes = p(yes tokens) / (p(yes tokens) + p(no tokens)) at the first answer position",
        "val_mcc": evaluation.metrics.get("val_mcc"),
        "question": dataset.info.question,
        "yes_token_ids": yes_ids,
        "no_token_ids": no_ids,
    }
    (out / "threshold.json").write_text(json.dumps(threshold, indent=2))
    report = {
        "summary": evaluation.metrics,
        "holdout": {k: v for k, v in evaluation.metrics.items() if k not in ("val_mcc", "train_loss")},
        "slices": evaluation.slices,
        "reliability": evaluation.reliability,
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    (out / "holdout_scores.json").write_text(
        json.dumps({str(k): v for k, v in evaluation.holdout_scores.items()})
    )
    (out / "config.json").write_text(json.dumps({"kind": kind, **asdict(config)}, indent=2))
    (out / "README.md").write_text(_model_card(kind, config, dataset, evaluation))
    files = {
        "adapter": "adapter",
        "processor": "processor",
        "threshold": "threshold.json",
        "metrics": "metrics.json",
        "holdout_scores": "holdout_scores.json",
        "config": "config.json",
        "model_card": "README.md",
    }
    return TrainingResult(out, evaluation.threshold, evaluation.metrics, evaluation.holdout_scores, files)


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
