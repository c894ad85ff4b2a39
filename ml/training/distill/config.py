"""Knobs of the distill job (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.training.bases import TINY_CNN
from ml.training.common.config import ImageTrainingConfig

__all__ = ["TINY_CNN", "DistillConfig"]


@dataclass
class DistillConfig(ImageTrainingConfig):
    student: str = field(
        default=TINY_CNN,
        metadata={
            "help": "'tiny-cnn' (built-in small CNN), a built-in ViT ('builtin:vit-small'), a local "
            "AutoModelForImageClassification folder, or registry:vN (warm start from a distill or classifier "
            "version); see GET /api/v1/projects/{p}/base-models."
        },
    )
    alpha: float = field(
        default=0.5,
        metadata={"help": "Weight of the soft (teacher) term; 1 - alpha weighs the human-label term."},
    )
    temperature: float = field(
        default=2.0, metadata={"help": "Softening temperature T of the KL term (scaled by T²)."}
    )
    teacher_weights: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "Cascade model name -> weight in the teacher ensemble; empty = every model, equal weights."
        },
    )
    use_unlabeled: bool = field(
        default=True, metadata={"help": "Train on unlabeled items too (soft term only)."}
    )
    tiny_cnn_width: int = field(
        default=32, metadata={"help": "Channels of the first tiny-cnn block (doubles twice)."}
    )
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak AdamW learning rate."})
    image_size: int = field(
        default=64, metadata={"help": "Square input size in pixels; 0 = the student's own size."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.student.strip():
            raise ValueError("student: 'tiny-cnn' or a local model path")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha: must be in [0, 1]")
        if self.temperature <= 0:
            raise ValueError("temperature: must be positive")
        if any(w < 0 for w in self.teacher_weights.values()):
            raise ValueError("teacher_weights: weights must not be negative")
        if self.teacher_weights and sum(self.teacher_weights.values()) <= 0:
            raise ValueError("teacher_weights: at least one weight must be positive")
        if self.tiny_cnn_width <= 0:
            raise ValueError("tiny_cnn_width: must be positive")
        if self.student == TINY_CNN and self.image_size == 0:
            raise ValueError("image_size: the tiny-cnn student needs an explicit image size")
