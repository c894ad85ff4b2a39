"""classifier_lora: AutoModelForImageClassification + peft LoRA, trained by the common loop; artifacts are
the adapter, the merged model with its image processor, threshold.json, metrics.json and a model card."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ml.dataset import DatasetVersionDir
from ml.training.bases import PRETRAIN_KIND, ResolvedBase, resolve_base, warm_start_folder
from ml.training.classifier_lora.config import ClassifierLoraConfig, module_names
from ml.training.common.data import class_weights, require_classes, split_data, split_records
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
from ml.training.common.onnx_export import export_classifier_onnx
from ml.training.common.runtime import resolve_device
from ml.training.reporting import Reporter, TrainingResult


def chosen_method(config: ClassifierLoraConfig, base: ResolvedBase) -> str:
    """'lora' or 'full': the config's choice, or for 'auto' what suits the base (see ml.training.bases)."""
    return base.method if config.method == "auto" else config.method


def with_lora(model: nn.Module, config: ClassifierLoraConfig, method: str) -> nn.Module:
    if method == "full":
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


def build_model(
    config: ClassifierLoraConfig, base: ResolvedBase, method: str, classes: list[str]
) -> tuple[nn.Module, object]:
    """The (LoRA-wrapped) classifier and its image processor; seeded so a resumed job rebuilds the same one."""
    torch.manual_seed(config.seed)
    model = load_image_classifier(base.path, classes)
    return with_lora(model, config, method), load_image_processor(base.path)


def method_description(config: ClassifierLoraConfig, base: ResolvedBase, method: str) -> str:
    start = "a pretrained backbone" if base.pretrained else "a randomly initialised backbone"
    if base.source == "registry":
        start = "a registry model (warm start)"
    if base.source == PRETRAIN_KIND:
        start = f"the {base.label} (pretrained on this project's pool)"
    how = "full fine-tune" if method == "full" else f"LoRA r={config.lora_r} alpha={config.lora_alpha}"
    why = " (chosen for this base by method='auto')" if config.method == "auto" else ""
    return f"{how} of {start}{why}"


def method_suffix(method: str, base: ResolvedBase) -> str:
    """The registry version's name part: lora | full | lora-warm-start | lora-on-pretrain-v3."""
    if base.source == PRETRAIN_KIND:
        return f"{method}-on-pretrain-{warm_start_folder(base.reference)}"
    return method if base.source != "registry" else f"{method}-warm-start"


def save_models(
    model: nn.Module, processor, artifact_dir: Path, method: str
) -> tuple[dict[str, str], nn.Module]:
    """The adapter (LoRA) and the merged model with its processor; returns the files and the merged model."""
    files = {}
    if method == "lora":
        model.save_pretrained(artifact_dir / "adapter")
        processor.save_pretrained(artifact_dir / "adapter")
        files["adapter"] = "adapter"
        model = model.merge_and_unload()
    model.save_pretrained(artifact_dir / "merged")
    processor.save_pretrained(artifact_dir / "merged")
    files["model"] = "merged"
    return files, model


def run(
    config: ClassifierLoraConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    n_classes = require_classes(dataset)
    device = resolve_device(config.device)
    base = resolve_base(config.base_model, workdir)
    method = chosen_method(config, base)
    model, processor = build_model(config, base, method, dataset.info.classes)
    size = input_size(config.image_size, model, processor)
    normalisation = normalisation_of(processor)
    model.to(device)
    trainable, total = parameter_counts(model)
    reporter.log(f"{base.label}: {method}, {trainable:,} of {total:,} parameters trainable, input {size}px")

    train_records = split_records(dataset, "train")
    data = split_data(
        dataset,
        train_records,
        size,
        normalisation,
        augment=config.augment,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        illumination=config.illumination,
    )
    weights = class_weights([r.label for r in train_records], config.class_weighting, n_classes).to(device)

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits_of(model, batch["pixel_values"]), batch["labels"], weight=weights)

    extra = {"trainable_params": float(trainable), "total_params": float(total)}
    calibration, metrics = train_and_calibrate(
        model, data, loss_fn, config, device, reporter, workdir, extra, classes=dataset.info.classes
    )

    artifact_dir = workdir / "artifacts"
    model_files, merged = save_models(
        model.cpu(), export_processor(processor, size, normalisation), artifact_dir, method
    )
    model_files |= export_classifier_onnx(
        merged,
        artifact_dir,
        size=size,
        normalisation=normalisation,
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        classes=dataset.info.classes,
        illumination=config.illumination,
    )
    result = classifier_result(
        artifact_dir,
        calibration,
        metrics,
        model_files,
        dataset=dataset.info,
        title=f"{dataset.info.project} classifier v{dataset.info.version}",
        method=method_description(config, base, method),
        base_model=base.label,
        settings=asdict(config),
    )
    result.method = method_suffix(method, base)
    return result
