"""Fine-tunes an ultralytics YOLO detector on a dataset version's boxes; scores images like a classifier.

The image-level roadwork score is the highest box confidence (0 without a box), so the registry compares
detectors and classifiers on the same holdout with the same MCC threshold sweep.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir
from ml.evaluation import mcc_optimal_threshold
from ml.exports import export_yolo, has_box_annotation
from ml.training.bases import resolve_base
from ml.training.common.artifacts import write_decision_files, write_model_card
from ml.training.common.holdout import holdout_report
from ml.training.common.runtime import resolve_device
from ml.training.reporting import JobCancelled, Reporter, TrainingResult, check_cancelled
from ml.training.yolo.config import YoloConfig
from ml.training.yolo.onnx_export import export_detector_onnx

RUN_NAME = "checkpoints"  # ultralytics writes workdir/checkpoints/weights/{last,best}.pt
DONE_MARKER = "training_done.json"
FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
# Every ultralytics integration that would log to or sync with an outside service (8.4 has no "hub" key).
DISABLED_INTEGRATIONS = dict.fromkeys(
    ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"), False
)
SCORE_BATCH = 32
AMP_CHECK_WEIGHTS = "yolo26n.pt"  # what ultralytics 8.4's check_amp loads


def import_ultralytics(config_dir: Path) -> Any:
    """Imports ultralytics offline: no hub checks, no telemetry, no font download."""
    os.environ["YOLO_OFFLINE"] = "1"
    if "ultralytics" not in sys.modules:  # its settings dir is fixed at first import
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    import matplotlib
    import ultralytics
    from ultralytics.utils import USER_CONFIG_DIR

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    USER_CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    for name in FONTS:
        if not (USER_CONFIG_DIR / name).exists():
            shutil.copyfile(font, USER_CONFIG_DIR / name)
    ultralytics.settings.update(DISABLED_INTEGRATIONS)
    return ultralytics.YOLO


def ultralytics_device(device: str) -> str:
    """ultralytics' spelling of the device: '0' for the first CUDA device, else 'cpu'."""
    return "0" if resolve_device(device).type == "cuda" else "cpu"


def check_model_source(model: str) -> None:
    if model.lower().endswith(".pt") and not Path(model).is_file():
        raise ValueError(
            f"model: {model!r} is not a local checkpoint file (hub weights are never downloaded)"
        )


def check_yolo_data(data_yaml: Path) -> None:
    for split in ("train", "val"):
        if not any((data_yaml.parent / "images" / split).iterdir()):
            raise ValueError(f"dataset: the {split} split has no image with complete box annotations")


def image_label(info: DatasetInfo, record: DatasetRecord) -> int | None:
    """1 when the image shows the positive class; None when the labels do not say."""
    if info.kind == "binary":
        return record.label
    return int(bool(record.boxes)) if has_box_annotation(info, record) else None


def training_callbacks(reporter: Reporter) -> dict[str, Any]:
    """Per-batch progress and cancellation, per-epoch metrics (not the final re-validation of best.pt)."""
    state = {"batch": 0, "in_epoch": False}

    def on_train_epoch_start(trainer) -> None:
        check_cancelled(reporter)
        state.update(batch=0, in_epoch=True)

    def on_train_batch_end(trainer) -> None:
        state["batch"] += 1
        per_epoch = len(trainer.train_loader)
        reporter.progress(trainer.epoch * per_epoch + state["batch"], trainer.epochs * per_epoch)
        check_cancelled(reporter)

    def on_fit_epoch_end(trainer) -> None:
        if not state["in_epoch"]:
            return
        state["in_epoch"] = False
        values = {k.removeprefix("train/"): v for k, v in trainer.label_loss_items(trainer.tloss).items()}
        values.update(epoch_metrics(trainer.metrics))
        reporter.metrics(trainer.epoch + 1, values)

    return {
        "on_train_epoch_start": on_train_epoch_start,
        "on_train_batch_end": on_train_batch_end,
        "on_fit_epoch_end": on_fit_epoch_end,
    }


def epoch_metrics(raw: dict[str, float]) -> dict[str, float]:
    names = {
        "metrics/precision(B)": "precision",
        "metrics/recall(B)": "recall",
        "metrics/mAP50(B)": "map50",
        "metrics/mAP50-95(B)": "map50_95",
        "val/box_loss": "val_box_loss",
        "val/cls_loss": "val_cls_loss",
        "val/dfl_loss": "val_dfl_loss",
    }
    return {names[k]: float(v) for k, v in raw.items() if k in names}


def amp_allowed(config: YoloConfig, device: str) -> bool:
    """Mixed precision only on CUDA, and only when ultralytics' AMP self-check can run offline: it loads
    `yolo26n.pt` from its weights dir and would otherwise try to download it (minutes of retries offline)."""
    if not config.amp or device == "cpu":
        return False
    from ultralytics.utils import WEIGHTS_DIR

    return (WEIGHTS_DIR / AMP_CHECK_WEIGHTS).is_file()


def train_args(config: YoloConfig, data_yaml: Path, workdir: Path, device: str) -> dict[str, Any]:
    return {
        "data": str(data_yaml),
        "epochs": config.epochs,
        "imgsz": config.image_size,
        "batch": config.batch,
        "optimizer": config.optimizer,
        "lr0": config.lr0,
        "mosaic": config.mosaic,
        "close_mosaic": config.close_mosaic,
        "fliplr": config.fliplr,
        "hsv_h": config.hsv_h,
        "hsv_s": config.hsv_s,
        "hsv_v": config.hsv_v,
        "patience": config.patience,
        "seed": config.seed,
        "device": device,
        "workers": config.workers,
        "amp": amp_allowed(config, device),
        "plots": False,
        "project": str(workdir),
        "name": RUN_NAME,
        "exist_ok": True,
        "verbose": False,
    }


def train_detector(
    yolo_cls: Any,
    config: YoloConfig,
    source: str,
    data_yaml: Path,
    workdir: Path,
    device: str,
    reporter: Reporter,
) -> Path:
    """Trains (or resumes from `workdir/checkpoints/weights/last.pt`); returns the best weights."""
    run_dir = workdir / RUN_NAME
    weights = run_dir / "weights"
    if (run_dir / DONE_MARKER).exists():
        reporter.log("training already finished in an earlier attempt; evaluating its best.pt")
        return weights / "best.pt"
    last = weights / "last.pt"
    resume = last.exists()
    model = yolo_cls(str(last) if resume else source)
    for event, callback in training_callbacks(reporter).items():
        model.add_callback(event, callback)
    reporter.log(f"{'resuming from ' + str(last) if resume else 'training ' + config.model} on {device}")
    if config.amp and device != "cpu" and not amp_allowed(config, device):
        reporter.log(
            f"mixed precision off: {AMP_CHECK_WEIGHTS} for ultralytics' AMP check is not in its weights dir"
        )
    model.train(**train_args(config, data_yaml, workdir, device), resume=resume)
    best = weights / "best.pt" if (weights / "best.pt").exists() else last
    (run_dir / DONE_MARKER).write_text(json.dumps({"best": str(best)}))
    return best


def image_scores(
    model: Any, dataset: DatasetVersionDir, records: list[DatasetRecord], config: YoloConfig, device: str
) -> dict[int, float]:
    """item_id -> highest box confidence in the image (0.0 when nothing is detected)."""
    scores: dict[int, float] = {}
    for start in range(0, len(records), SCORE_BATCH):
        chunk = records[start : start + SCORE_BATCH]
        paths = [str(dataset.image_path(r)) for r in chunk]
        results = model.predict(
            paths, imgsz=config.image_size, conf=config.score_conf, device=device, verbose=False, stream=True
        )
        for record, result in zip(chunk, results, strict=True):
            conf = result.boxes.conf
            scores[record.item_id] = float(conf.max()) if len(conf) else 0.0
    return scores


def holdout_detection_metrics(
    model: Any, data_yaml: Path, config: YoloConfig, workdir: Path, device: str
) -> dict[str, float]:
    """mAP50 and mAP50-95 on the holdout boxes, overall and per class present there."""
    data = yaml.safe_load(data_yaml.read_text())
    if "test" not in data:
        return {}
    result = model.val(
        data=str(data_yaml),
        split="test",
        imgsz=config.image_size,
        batch=config.batch,
        device=device,
        workers=config.workers,
        plots=False,
        verbose=False,
        project=str(workdir),
        name="holdout_val",
        exist_ok=True,
    )
    box = result.box
    metrics = {"map50": float(box.map50), "map50_95": float(box.map)}
    for i, cls in enumerate(box.ap_class_index):
        name = data["names"][int(cls)]
        metrics[f"map50/{name}"] = float(box.ap50[i])
        metrics[f"map50_95/{name}"] = float(box.ap[i])
    return metrics


def labelled(info: DatasetInfo, records: list[DatasetRecord]) -> list[DatasetRecord]:
    return [r for r in records if image_label(info, r) is not None]


def image_level_metrics(
    model: Any, dataset: DatasetVersionDir, config: YoloConfig, device: str
) -> tuple[float, dict[str, float], dict[int, float]]:
    """(threshold chosen on val, holdout metrics at it, holdout scores) for the image-level score."""
    info = dataset.info
    val = labelled(info, dataset.records("val"))
    holdout = labelled(info, dataset.records("holdout"))
    val_scores = image_scores(model, dataset, val, config, device)
    holdout_scores = image_scores(model, dataset, holdout, config, device)
    threshold, val_mcc = mcc_optimal_threshold(
        [val_scores[r.item_id] for r in val], [image_label(info, r) for r in val], config.threshold_grid
    )
    report = holdout_report(
        [holdout_scores[r.item_id] for r in holdout],
        [image_label(info, r) for r in holdout],
        threshold,
        holdout,
    )
    return threshold, {**report.metrics, "val_mcc": float(val_mcc)}, holdout_scores


YOLO_USAGE = """```python
from ultralytics import YOLO
model = YOLO('best.pt')
boxes = model.predict('image.jpg')[0].boxes
```

Without ultralytics or torch (onnxruntime, NMS inside the graph): `onnx/model.onnx` with `onnx/predictor.json`,
run by `HardcaseClient.production_model()` (an `OnnxDetector`: `detections(images)`, `scores(images)`)."""


def write_artifacts(
    artifact_dir: Path,
    best: Path,
    data_yaml: Path,
    config: YoloConfig,
    info: DatasetInfo,
    threshold: float,
    metrics: dict[str, float],
) -> dict[str, str]:
    artifact_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, artifact_dir / "best.pt")
    shutil.copyfile(data_yaml, artifact_dir / "data.yaml")
    files = {"weights": "best.pt", "data": "data.yaml"}
    decision = {"threshold": threshold, "score": "max_box_confidence", "selected_on": "val"}
    files |= write_decision_files(artifact_dir, decision, dict(sorted(metrics.items())))
    files |= write_model_card(
        artifact_dir,
        title=f"YOLO detector for {info.project}",
        method=f"ultralytics detector fine-tune, {config.epochs} epochs at {config.image_size} px "
        f"(box classes: {', '.join(info.box_classes or info.classes)})",
        base_model=config.model,
        dataset=info,
        decision_rule=f"highest box confidence in the image (0 without a box) >= {threshold:.4f} "
        "(the MCC-optimal threshold on val)",
        metrics=metrics,
        settings=asdict(config),
        usage=YOLO_USAGE,
    )
    return files


def run(config: YoloConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path) -> TrainingResult:
    workdir = Path(workdir).resolve()
    base = resolve_base(config.model, workdir)
    check_model_source(base.path)
    device = ultralytics_device(config.device)
    check_cancelled(reporter)
    data_yaml = export_yolo(dataset, workdir / "yolo_data")
    check_yolo_data(data_yaml)
    yolo_cls = import_ultralytics(workdir / "ultralytics_config")
    best = train_detector(yolo_cls, config, base.path, data_yaml, workdir, device, reporter)
    check_cancelled(reporter)
    model = yolo_cls(str(best))
    detection = holdout_detection_metrics(model, data_yaml, config, workdir, device)
    threshold, image_metrics, holdout_scores = image_level_metrics(model, dataset, config, device)
    metrics = {**image_metrics, **detection}
    reporter.log(f"holdout: mcc {metrics['mcc']:.3f}, mAP50 {metrics.get('map50', float('nan')):.3f}")
    artifact_dir = workdir / "artifacts"
    files = write_artifacts(artifact_dir, best, data_yaml, config, dataset.info, threshold, metrics)
    check_cancelled(reporter)
    files |= export_detector_onnx(
        yolo_cls,
        artifact_dir / files["weights"],
        artifact_dir,
        image_size=config.image_size,
        score_conf=config.score_conf,
        threshold=threshold,
        box_classes=list(yaml.safe_load(data_yaml.read_text())["names"].values()),
    )
    method = "warm-start" if base.source == "registry" else ("scratch" if not base.pretrained else "")
    return TrainingResult(artifact_dir, threshold, metrics, holdout_scores, files, method=method)


__all__ = ["JobCancelled", "YoloConfig", "run"]
