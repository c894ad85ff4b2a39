"""Knobs shared by the image-classifier job kinds, and LoRA checks shared with the VLM kinds (torch-free: the
web server builds job forms from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ImageTrainingConfig:
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    epochs: int = field(
        default=3, metadata={"help": "Passes over the train split (ignored when max_steps > 0)."}
    )
    max_steps: int = field(default=0, metadata={"help": "Optimizer steps; 0 = derived from epochs."})
    batch_size: int = field(default=16, metadata={"help": "Images per optimizer step."})
    image_size: int = field(
        default=0, metadata={"help": "Square input size in pixels; 0 = the model's own size."}
    )
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps with linear LR warm-up."})
    eval_every: int = field(default=50, metadata={"help": "Steps between val MCC evaluations."})
    checkpoint_every: int = field(default=100, metadata={"help": "Steps between checkpoints (resume point)."})
    ema_decay: float = field(
        default=0.999,
        metadata={"help": "EMA of the weights; the better of raw/EMA on val MCC is kept. 0 = off."},
    )
    class_weighting: Literal["balanced", "none"] = field(
        default="balanced", metadata={"help": "'balanced' weights the rare class by inverse frequency."}
    )
    augment: bool = field(
        default=True, metadata={"help": "Random horizontal flip and colour jitter in training."}
    )
    illumination: Literal["none", "gamma"] = field(
        default="none",
        metadata={
            "help": "'gamma': brighten dark images by an adaptive gamma on the luminance channel (low-light "
            "slices such as is_night); applied in training, evaluation and the exported predictor."
        },
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm; 0 = off."})
    threshold_grid: int = field(default=5000, metadata={"help": "Thresholds tried in the val MCC sweep."})
    calibrate: bool = field(
        default=True, metadata={"help": "Fit a temperature on val logits before the sweep."}
    )
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes."})
    device: str = field(default="auto", metadata={"help": "'auto', 'cpu', 'cuda' or 'cuda:N'."})
    seed: int = field(default=0, metadata={"help": "Seed for initialisation, data order and augmentation."})

    def __post_init__(self) -> None:
        positive = ("learning_rate", "batch_size", "eval_every", "checkpoint_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        non_negative = ("weight_decay", "epochs", "max_steps", "image_size", "max_grad_norm", "num_workers")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        if self.max_steps == 0 and self.epochs == 0:
            raise ValueError("epochs: set epochs or max_steps")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio: must be in [0, 1)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay: must be in [0, 1)")
        if self.illumination not in ("none", "gamma"):
            raise ValueError("illumination: must be 'none' or 'gamma'")
        if self.class_weighting not in ("balanced", "none"):
            raise ValueError("class_weighting: must be 'balanced' or 'none'")
        if self.threshold_grid < 2:
            raise ValueError("threshold_grid: must be at least 2")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError("device: must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


def check_lora_settings(lora_r: int, lora_alpha: int, lora_dropout: float) -> None:
    """The LoRA knobs every adapter-training job kind has."""
    if lora_r <= 0:
        raise ValueError("lora_r: must be positive")
    if lora_alpha <= 0:
        raise ValueError("lora_alpha: must be positive")
    if not 0.0 <= lora_dropout < 1.0:
        raise ValueError("lora_dropout: must be in [0, 1)")
