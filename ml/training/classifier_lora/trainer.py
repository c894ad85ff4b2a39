"""classifier_lora: AutoModelForImageClassification + peft LoRA, trained by the common loop; artifacts are
the adapter, the merged model with its image processor, threshold.json, metrics.json and a model card."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ml.dataset import DatasetVersionDir
from ml.training.classifier_lora.config import ClassifierLoraConfig, module_names
from ml.training.common.data import class_weights, require_binary, split_data, split_records
from ml.training.common.finalize import classifier_result, train_and_calibrate
from ml.training.common.loop import logits_of
from ml.training.common.models import (
    auto_head_modules,
    auto_target_modules,
    export_processor,
    input_size,
    load_image_classifier,
    load_image_processor,
    normalisation_of,
    parameter_counts,
)
from ml.training.common.runtime import resolve_device
from ml.training.reporting import Reporter, TrainingResult


def with_lora(model: nn.Module, config: ClassifierLoraConfig) -> nn.Module:
    if config.full_finetune:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=module_names(config.target_modules) or auto_target_modules(model),
        modules_to_save=module_names(config.modules_to_save) or auto_head_modules(model),
        bias="none",
    )
    return get_peft_model(model, lora)


def build_model(config: ClassifierLoraConfig, classes: list[str]) -> tuple[nn.Module, object]:
    """The (LoRA-wrapped) classifier and its image processor; seeded so a resumed job rebuilds the same one."""
    torch.manual_seed(config.seed)
    model = load_image_classifier(config.base_model, classes)
    return with_lora(model, config), load_image_processor(config.base_model)


def save_models(
    model: nn.Module, processor, artifact_dir: Path, config: ClassifierLoraConfig
) -> dict[str, str]:
    files = {}
    if not config.full_finetune:
        model.save_pretrained(artifact_dir / "adapter")
        processor.save_pretrained(artifact_dir / "adapter")
        files["adapter"] = "adapter"
        model = model.merge_and_unload()
    model.save_pretrained(artifact_dir / "merged")
    processor.save_pretrained(artifact_dir / "merged")
    files["model"] = "merged"
    return files


def run(
    config: ClassifierLoraConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    require_binary(dataset)
    device = resolve_device(config.device)
    model, processor = build_model(config, dataset.info.classes)
    size = input_size(config.image_size, model, processor)
    normalisation = normalisation_of(processor)
    model.to(device)
    trainable, total = parameter_counts(model)
    reporter.log(f"{config.base_model}: {trainable:,} of {total:,} parameters trainable, input {size}px")

    train_records = split_records(dataset, "train")
    data = split_data(
        dataset,
        train_records,
        size,
        normalisation,
        augment=config.augment,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
    )
    weights = class_weights([r.label for r in train_records], config.class_weighting).to(device)

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits_of(model, batch["pixel_values"]), batch["labels"], weight=weights)

    extra = {"trainable_params": float(trainable), "total_params": float(total)}
    calibration, metrics = train_and_calibrate(model, data, loss_fn, config, device, reporter, workdir, extra)

    artifact_dir = workdir / "artifacts"
    model_files = save_models(
        model.cpu(), export_processor(processor, size, normalisation), artifact_dir, config
    )
    return classifier_result(
        artifact_dir,
        calibration,
        metrics,
        model_files,
        dataset=dataset.info,
        title=f"{dataset.info.project} classifier v{dataset.info.version}",
        method="full fine-tune"
        if config.full_finetune
        else f"LoRA r={config.lora_r} alpha={config.lora_alpha}",
        base_model=config.base_model,
        settings=asdict(config),
    )
