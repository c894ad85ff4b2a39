"""Knobs of the pretrain job (torch-free: the web server builds the job form from them)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from ml.training.bases import BUILTINS, IMAGE_CLASSIFIER

SSL_METHODS = ("simclr", "byol")


@dataclass
class PretrainConfig:
    base_model: str = field(
        default="builtin:vit-small",
        metadata={
            "help": "The backbone to pretrain (GET /api/v1/projects/{p}/base-models): a built-in architecture "
            f"({', '.join(b.name for b in BUILTINS if b.family == IMAGE_CLASSIFIER)}), an image-classifier "
            "folder in the models directory, or registry:vN (continue from an earlier backbone)."
        },
    )
    method: Literal["simclr", "byol"] = field(
        default="simclr",
        metadata={
            "help": "Self-supervised method (lightly): 'simclr' (projection head + NT-Xent loss over two "
            "augmented views) or 'byol' (momentum encoder + predictor, no negatives)."
        },
    )
    max_steps: int = field(default=200, metadata={"help": "Optimizer steps of self-supervised training."})
    batch_size: int = field(
        default=32, metadata={"help": "Images per step (each seen as two augmented views); at least 2."}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate (cosine decay)."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps with linear LR warm-up."})
    temperature: float = field(default=0.2, metadata={"help": "NT-Xent temperature (simclr)."})
    momentum: float = field(
        default=0.99, metadata={"help": "Starting EMA momentum of the target encoder (byol), cosine to 1."}
    )
    projection_dim: int = field(default=64, metadata={"help": "Output size of the projection head."})
    hidden_dim: int = field(default=256, metadata={"help": "Hidden size of the projection/prediction heads."})
    image_size: int = field(
        default=0, metadata={"help": "Square input size in pixels; 0 = the backbone's own size."}
    )
    min_scale: float = field(
        default=0.2, metadata={"help": "Smallest random-resized-crop area, as a fraction of the image."}
    )
    include_holdout: bool = field(
        default=True,
        metadata={
            "help": "Learn from the holdout images too (their labels are never read; the linear probe and "
            "its threshold use train and val only)."
        },
    )
    probe_c: float = field(
        default=1.0,
        metadata={"help": "Inverse L2 strength of the linear probe fitted on the labeled train split."},
    )
    log_every: int = field(default=10, metadata={"help": "Steps between loss reports."})
    checkpoint_every: int = field(default=50, metadata={"help": "Steps between checkpoints (resume point)."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    device: str = field(default="auto", metadata={"help": "'auto', 'cpu', 'cuda' or 'cuda:N'."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, data order and augmentation."})

    def __post_init__(self) -> None:
        check_types(self)
        if not self.base_model.strip():
            raise ValueError("base_model: must name a built-in architecture, a local folder or registry:vN")
        if self.method not in SSL_METHODS:
            raise ValueError(f"method: must be one of {', '.join(SSL_METHODS)}")
        for name in ("max_steps", "learning_rate", "temperature", "probe_c", "log_every", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if not 2 <= self.batch_size <= 4096:
            raise ValueError(
                "batch_size: must be in [2, 4096] (contrastive losses compare images in a batch)"
            )
        if self.max_steps > 1_000_000:
            raise ValueError("max_steps: at most 1000000")
        for name in ("projection_dim", "hidden_dim"):
            if not 1 <= getattr(self, name) <= 16384:
                raise ValueError(f"{name}: must be in [1, 16384]")
        if not 0 <= self.image_size <= 4096:
            raise ValueError("image_size: must be in [0, 4096]")
        for name in ("weight_decay", "num_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio: must be in [0, 1)")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError("momentum: must be in [0, 1)")
        if not 0.0 < self.min_scale <= 1.0:
            raise ValueError("min_scale: must be in (0, 1]")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError("device: must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


def check_types(config: object) -> None:
    """JSON gives any type: each knob must have its default's (an int is a fine float, a bool no number)."""
    for f in fields(config):
        value, default = getattr(config, f.name), f.default
        expected = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, expected):
            raise ValueError(f"{f.name}: must be of type {type(default).__name__}")


def method_title(method: str) -> str:
    return {"simclr": "SimCLR", "byol": "BYOL"}.get(method, method)
