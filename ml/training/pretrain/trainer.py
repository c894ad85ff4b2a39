"""pretrain: self-supervised training of a backbone on every image of the dataset version (labeled or not),
then a linear probe on the labeled train split so the registry can score it. Artifacts: the backbone as an
image classifier folder (merged/, its head = the probe) that classifier_lora, distill and pretrain load as a
base, its ONNX export, threshold.json, metrics.json and a model card naming the base and the method."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ml.dataset import DatasetRecord, DatasetVersionDir
from ml.training.bases import ResolvedBase, resolve_base
from ml.training.common.data import image_transform, load_image, require_binary, split_data, split_records
from ml.training.common.finalize import calibrate_and_score, classifier_result, summary_metrics
from ml.training.common.models import (
    export_processor,
    input_size,
    load_image_classifier,
    load_image_processor,
    normalisation_of,
    parameter_counts,
)
from ml.training.common.onnx_export import export_classifier_onnx
from ml.training.common.runtime import resolve_device
from ml.training.pretrain.config import PretrainConfig, method_title
from ml.training.pretrain.ssl import (
    HeadlessClassifier,
    SSLSettings,
    TwoViews,
    build_ssl,
    extract_features,
    fit_linear_probe,
    set_linear_head,
    train_ssl,
    two_view_transform,
)
from ml.training.reporting import Reporter, TrainingResult

THRESHOLD_GRID = 5000


def settings_of(config: PretrainConfig) -> SSLSettings:
    return SSLSettings(
        method=config.method,
        steps=config.max_steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        temperature=config.temperature,
        momentum=config.momentum,
        projection_dim=config.projection_dim,
        hidden_dim=config.hidden_dim,
        min_scale=config.min_scale,
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        num_workers=config.num_workers,
        seed=config.seed,
    )


def pool_records(dataset: DatasetVersionDir, include_holdout: bool) -> list[DatasetRecord]:
    """Every image of the version, labeled or not (labels are never read by the self-supervised step)."""
    return [r for r in dataset.records() if include_holdout or r.split != "holdout"]


def method_description(config: PretrainConfig, base: ResolvedBase, n_pool: int) -> str:
    start = "randomly initialised" if not base.pretrained else "pretrained"
    return (
        f"{method_title(config.method)} self-supervised pretraining (lightly) of the {start} backbone "
        f"{config.base_model}: full training of every backbone weight on {n_pool} pool images, "
        f"{config.max_steps} steps; then a linear probe (logistic regression, C={config.probe_c}) on the frozen "
        "features of the labeled train split. Start classifier_lora from this version: method 'auto' applies "
        "LoRA to it (a pretrained backbone)"
    )


def version_suffix(config: PretrainConfig, base: ResolvedBase) -> str:
    """The registry version's name says the method and the base: e.g. simclr-vit-small."""
    if base.source == "builtin":
        short = config.base_model.removeprefix("builtin:")
    elif base.source in ("registry", "pretrain"):
        short = config.base_model.removeprefix("registry:")
    else:
        short = Path(config.base_model).name or "local"
    return f"{config.method}-{short}"


def run(
    config: PretrainConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    require_binary(dataset)
    device = resolve_device(config.device)
    base = resolve_base(config.base_model, workdir)
    torch.manual_seed(config.seed)
    classes = dataset.info.classes
    model = load_image_classifier(base.path, classes)
    processor = load_image_processor(base.path)
    size = input_size(config.image_size, model, processor)
    normalisation = normalisation_of(processor)
    backbone = HeadlessClassifier(model)
    pool = pool_records(dataset, config.include_holdout)
    trainable, total = parameter_counts(backbone)
    reporter.log(
        f"pretrain: {method_title(config.method)} on {len(pool)} pool images "
        f"({sum(r.label is None for r in pool)} unlabeled), {base.label}, {total:,} parameters, input {size}px"
    )

    settings = settings_of(config)
    views = TwoViews(
        lambda i: load_image(dataset.image_path(pool[i]), size),
        len(pool),
        two_view_transform(config.method, size, normalisation, config.min_scale),
    )
    ssl_model = build_ssl(backbone, size, settings)
    losses = train_ssl(ssl_model, views, settings, reporter, device, workdir / "ssl_checkpoints")

    # the linear probe: frozen features of the labeled train split, read at the training size
    plain = image_transform(size, normalisation, augment=False)
    train = split_records(dataset, "train")
    features = extract_features(
        backbone, lambda i: plain(load_image(dataset.image_path(train[i]), size)), len(train), device
    )
    labels = np.array([r.label for r in train])
    weight, bias = fit_linear_probe(features, labels, config.probe_c, len(classes))
    model = backbone.restore()
    set_linear_head(getattr(model, backbone.head_name), weight, bias)
    model.to(device).eval()

    data = split_data(dataset, train, size, normalisation, augment=False, batch_size=64, num_workers=0)
    calibration = calibrate_and_score(
        model, data, device, weights="raw", calibrate=True, n_thresholds=THRESHOLD_GRID
    )
    extra = {
        "steps": float(config.max_steps),
        "pool_images": float(len(pool)),
        "ssl_loss_first": float(np.mean(losses[: config.log_every])) if losses else float("nan"),
        "ssl_loss_last": float(np.mean(losses[-config.log_every :])) if losses else float("nan"),
        "total_params": float(total),
    }
    metrics = summary_metrics(calibration, extra)
    reporter.metrics(config.max_steps, {f"holdout_{k}": v for k, v in calibration.holdout_metrics.items()})
    reporter.log(
        f"linear probe: val MCC {calibration.val_mcc:.3f}, holdout MCC {metrics.get('mcc', float('nan')):.3f}"
    )

    artifact_dir = workdir / "artifacts"
    model = model.cpu()
    saved = export_processor(processor, size, normalisation)
    model.save_pretrained(artifact_dir / "merged")
    saved.save_pretrained(artifact_dir / "merged")
    files = {"model": "merged"}
    files |= export_classifier_onnx(
        model,
        artifact_dir,
        size=size,
        normalisation=normalisation,
        temperature=calibration.temperature,
        threshold=calibration.threshold,
        classes=classes,
    )
    result = classifier_result(
        artifact_dir,
        calibration,
        metrics,
        files,
        dataset=dataset.info,
        title=f"{dataset.info.project} self-supervised backbone ({method_title(config.method)}) "
        f"v{dataset.info.version}",
        method=method_description(config, base, len(pool)),
        base_model=base.label,
        settings=asdict(config),
    )
    result.method = version_suffix(config, base)
    return result
