"""Knobs of the `yolo` job kind (torch-free: the web server builds the job form from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from ml.training.bases import is_registry_reference

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("SGD", "Adam", "AdamW")
MODEL_SUFFIXES = (".pt", ".yaml", ".yml")


@dataclass
class YoloConfig:
    model: str = field(
        default="yolov8n.yaml",
        metadata={
            "help": "A local .pt checkpoint path to fine-tune, registry:vN (warm start from a yolo version), or an "
            "ultralytics model yaml (e.g. 'yolov8n.yaml', 'yolo11n.yaml') to train from scratch. Hub names are "
            "never downloaded."
        },
    )
    image_size: int = field(
        default=640, metadata={"help": "Square training/inference size in pixels (mult. of 32)."}
    )
    epochs: int = field(default=50, metadata={"help": "Passes over the train split."})
    batch: int = field(default=16, metadata={"help": "Images per batch."})
    optimizer: str = field(default="AdamW", metadata={"help": "'SGD', 'Adam' or 'AdamW'."})
    lr0: float = field(default=0.002, metadata={"help": "Initial learning rate."})
    mosaic: float = field(default=1.0, metadata={"help": "Probability of mosaic augmentation (0 = off)."})
    close_mosaic: int = field(default=10, metadata={"help": "Last epochs trained without mosaic."})
    fliplr: float = field(default=0.5, metadata={"help": "Probability of a horizontal flip."})
    hsv_h: float = field(default=0.015, metadata={"help": "Hue jitter (fraction)."})
    hsv_s: float = field(default=0.7, metadata={"help": "Saturation jitter (fraction)."})
    hsv_v: float = field(default=0.4, metadata={"help": "Brightness jitter (fraction)."})
    patience: int = field(
        default=20, metadata={"help": "Epochs without val improvement before stopping early (0 = never)."}
    )
    amp: bool = field(
        default=True,
        metadata={
            "help": "Mixed precision on CUDA (always off on CPU); needs yolo26n.pt in ultralytics' weights dir "
            "for its AMP self-check, as nothing is downloaded."
        },
    )
    device: str = field(default="auto", metadata={"help": "'auto' (CUDA when present), 'cpu' or 'cuda'."})
    workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, data order and augmentation."})
    score_conf: float = field(
        default=0.001,
        metadata={
            "help": "Lowest box confidence kept when scoring images (image score = max box confidence)."
        },
    )
    threshold_grid: int = field(default=5000, metadata={"help": "Thresholds tried in the val MCC sweep."})

    def __post_init__(self) -> None:
        warm_start = is_registry_reference(self.model)
        if not warm_start and PurePath(self.model).suffix.lower() not in MODEL_SUFFIXES:
            raise ValueError(
                "model: must be a local .pt checkpoint, a model .yaml or registry:vN (hub names are not "
                "downloaded)"
            )
        for name in ("image_size", "epochs", "batch", "lr0", "threshold_grid"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.image_size % 32:
            raise ValueError("image_size: must be a multiple of 32 (the detector's largest stride)")
        for name in ("close_mosaic", "patience", "workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        for name in ("mosaic", "fliplr", "hsv_h", "hsv_s", "hsv_v"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1]")
        if not 0.0 <= self.score_conf < 1.0:
            raise ValueError("score_conf: must be in [0, 1)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: must be one of {list(OPTIMIZERS)}")
        if self.device not in DEVICES:
            raise ValueError(f"device: must be one of {list(DEVICES)}")
