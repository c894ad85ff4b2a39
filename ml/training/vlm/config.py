"""Configs of the VLM job kinds (trl SFT and DPO on a Qwen-VL model); importable without torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.training.common.config import check_lora_settings

BACKENDS = ("peft", "unsloth")
QUANTIZATIONS = ("none", "4bit")
# trl 1.16's DPO losses that need nothing beyond a chosen/rejected pair.
DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
)


@dataclass
class VlmBaseConfig:
    """Knobs shared by `vlm_sft` and `vlm_dpo`: model, adapter, optimisation, checkpoints, evaluation."""

    model_name_or_path: str = field(
        default="builtin:tiny-qwen2-vl",
        metadata={
            "help": "Qwen2-VL, Qwen2.5-VL or Qwen3-VL checkpoint: a folder in the models directory, a hub id "
            "already in the local HF cache (e.g. Qwen/Qwen2.5-VL-3B-Instruct), or 'builtin:tiny-qwen2-vl' "
            "(random weights: checks the pipeline only)."
        },
    )
    backend: str = field(
        default="peft",
        metadata={"help": "'peft' (plain transformers + peft, runs anywhere) or 'unsloth' (CUDA + unsloth)."},
    )
    quantization: str = field(
        default="none", metadata={"help": "'none' or '4bit' (QLoRA through bitsandbytes; needs CUDA)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={
            "help": "Language-model linear layers that get a LoRA adapter (the vision tower is frozen)."
        },
    )
    train_vision_merger: bool = field(
        default=False, metadata={"help": "Also put LoRA on the vision merger (the projector into the LM)."}
    )
    with_rationale: bool = field(
        default=True,
        metadata={"help": "Follow a 'yes' answer with the labeled objects ('yes — 3 traffic cones')."},
    )
    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate of the adapter."})
    max_steps: int = field(default=200, metadata={"help": "Optimizer steps; -1 runs num_train_epochs."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs when max_steps is -1."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Examples per device per step."})
    gradient_accumulation_steps: int = field(
        default=4, metadata={"help": "Micro-batches per optimizer step."}
    )
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "Trade compute for memory on CUDA (always off on CPU)."}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Truncate sequences to this many tokens; None keeps whole images (safer for VLMs)."
        },
    )
    warmup_ratio: float = field(default=0.03, metadata={"help": "Fraction of steps of linear warm-up."})
    logging_steps: int = field(default=10, metadata={"help": "Report loss and learning rate every N steps."})
    save_steps: int = field(
        default=50, metadata={"help": "Checkpoint every N steps (a retried job resumes)."}
    )
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept in workdir/checkpoints."})
    max_image_pixels: int | None = field(
        default=512 * 28 * 28,
        metadata={
            "help": "Resize images to at most this many pixels (Qwen: 28×28 px per image token); None keeps "
            "the processor's own limit."
        },
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Images per forward pass when scoring P(yes)."})
    seed: int = field(default=0, metadata={"help": "Seed of data order and adapter initialisation."})

    def __post_init__(self) -> None:
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path: give a local directory or a hub id")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: must be one of {BACKENDS}, got {self.backend!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization: must be one of {QUANTIZATIONS}, got {self.quantization!r}")
        check_lora_settings(self.lora_r, self.lora_alpha, self.lora_dropout)
        if not self.lora_target_modules:
            raise ValueError("lora_target_modules: name at least one linear layer")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate: must be positive")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps: must be positive, or -1 to train num_train_epochs")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError("num_train_epochs: must be positive when max_steps is -1")
        for name in (
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.save_total_limit <= 0:
            raise ValueError("save_total_limit: must be positive")
        if self.eval_batch_size <= 0:
            raise ValueError("eval_batch_size: must be positive")
        if self.max_length is not None and self.max_length < 32:
            raise ValueError("max_length: must be at least 32 tokens, or None")
        if self.max_image_pixels is not None and self.max_image_pixels < 28 * 28 * 4:
            raise ValueError("max_image_pixels: must be at least 3136 (four image tokens), or None")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio: must be in [0, 1)")


@dataclass
class VlmSftConfig(VlmBaseConfig):
    """Supervised fine-tuning: image + question → the human answer."""


@dataclass
class VlmDpoConfig(VlmBaseConfig):
    """Preference training: the human answer is preferred to the VLM's own (wrong or unsure) answer."""

    learning_rate: float = field(default=5e-6, metadata={"help": "Peak learning rate (DPO wants it small)."})
    with_rationale: bool = field(
        default=False, metadata={"help": "Follow the chosen 'yes' with the labeled objects."}
    )
    vlm_model_name: str | None = field(
        default=None,
        metadata={
            "help": "Cascade model whose stored answers are the rejected side; None (or an item it did not "
            "answer) makes the opposite answer the rejected one."
        },
    )
    low_confidence_margin: float = field(
        default=0.15,
        metadata={"help": "An agreeing answer still makes a pair when |P(yes) − 0.5| is below this."},
    )
    beta: float = field(
        default=0.1, metadata={"help": "DPO temperature: how far from the reference to move."}
    )
    loss_type: str = field(default="sigmoid", metadata={"help": "trl DPO loss: 'sigmoid', 'ipo', 'hinge', …"})
    init_adapter_path: str | None = field(
        default=None,
        metadata={
            "help": "A LoRA adapter (e.g. a vlm_sft artifact's adapter/) merged into the model first: it becomes "
            "the DPO reference and a fresh adapter trains on top."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.low_confidence_margin <= 0.5:
            raise ValueError("low_confidence_margin: must be in [0, 0.5]")
        if self.beta <= 0:
            raise ValueError("beta: must be positive")
        if self.loss_type not in DPO_LOSSES:
            raise ValueError(f"loss_type: must be one of {DPO_LOSSES}, got {self.loss_type!r}")
        if self.init_adapter_path and (self.backend != "peft" or self.quantization != "none"):
            raise ValueError(
                "init_adapter_path: merging a starting adapter needs backend='peft', quantization='none'"
            )


@dataclass
class VlmDistillConfig(VlmBaseConfig):
    """A teacher VLM's answer distributions distilled into a smaller student VLM (LoRA on the student).

    `model_name_or_path` is the student. The teacher scores every train item, labeled or not (freeze with
    include_unlabeled for the unlabeled pool); the student learns the teacher's yes/no distribution at the
    answer position (KL at `temperature`), mixed with the human answer where one exists."""

    teacher: str = field(
        default="builtin:tiny-qwen2-vl",
        metadata={
            "help": "The teacher VLM: a folder in the models directory or any local path, a hub id already in the "
            "local HF cache (e.g. Qwen/Qwen2.5-VL-72B-Instruct), or a builtin."
        },
    )
    teacher_adapter: str | None = field(
        default=None,
        metadata={
            "help": "A LoRA adapter folder applied to the teacher (e.g. a vlm_sft artifact's adapter/)."
        },
    )
    temperature: float = field(
        default=2.0, metadata={"help": "Softens both yes/no distributions in the KL term (scaled by T²)."}
    )
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "Weight of the KL to the teacher where a human answer exists (1 − alpha on the human "
            "answer); items without one learn from the teacher alone."
        },
    )
    teacher_batch_size: int = field(default=8, metadata={"help": "Images per teacher forward pass."})
    with_rationale: bool = field(
        default=False, metadata={"help": "Unused: the student learns the first answer token only."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.teacher:
            raise ValueError("teacher: give a local directory, a hub id or a builtin")
        if self.temperature <= 0:
            raise ValueError("temperature: must be positive")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError("alpha: must be in [0, 1]")
        if self.teacher_batch_size <= 0:
            raise ValueError("teacher_batch_size: must be positive")
