"""Knobs of the classifier_lora job (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ml.training.bases import BUILTINS, IMAGE_CLASSIFIER
from ml.training.common.config import ImageTrainingConfig, check_lora_settings


@dataclass
class ClassifierLoraConfig(ImageTrainingConfig):
    base_model: str = field(
        default="builtin:vit-small",
        metadata={
            "help": "What to start from (GET /api/v1/projects/{p}/base-models): a built-in architecture "
            f"({', '.join(b.name for b in BUILTINS if b.family == IMAGE_CLASSIFIER)}), a model folder in the "
            "models directory, a hub id already in the local HF cache, or registry:vN (warm start)."
        },
    )
    method: Literal["auto", "lora", "full"] = field(
        default="auto",
        metadata={
            "help": "'auto': LoRA on a pretrained backbone (or a warm start), full fine-tuning on a randomly "
            "initialised one; 'lora' or 'full' to force."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA branch."})
    target_modules: str = field(
        default="auto",
        metadata={"help": "Comma-separated module names to adapt; 'auto' detects the attention projections."},
    )
    modules_to_save: str = field(
        default="auto",
        metadata={"help": "Comma-separated modules trained in full; 'auto' = the classifier head."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base_model.strip():
            raise ValueError("base_model: must name a local path or a hub id")
        if self.method not in ("auto", "lora", "full"):
            raise ValueError("method: must be 'auto', 'lora' or 'full'")
        check_lora_settings(self.lora_r, self.lora_alpha, self.lora_dropout)
        for name in ("target_modules", "modules_to_save"):
            if not module_names(getattr(self, name)) and getattr(self, name).strip() != "auto":
                raise ValueError(f"{name}: 'auto' or comma-separated module names")


def module_names(value: str) -> list[str]:
    """Names from a comma-separated knob; [] for 'auto'."""
    if value.strip() == "auto":
        return []
    return [name.strip() for name in value.split(",") if name.strip()]
