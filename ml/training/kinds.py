"""The catalogue of job kinds. Importing this module is cheap (no torch): the web server uses it
to validate job requests and to build the job form from each config dataclass's fields."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    config_path: str  # "module:Class" of the config dataclass (module must not import torch)
    run_path: str  # "module:function" of run(config, dataset, reporter, workdir) -> TrainingResult
    queue: str = "gpu"

    def config_class(self) -> type:
        return _load(self.config_path)

    def runner(self) -> Callable[..., Any]:
        return _load(self.run_path)


JOB_KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in [
        JobKind(
            "classifier_lora",
            "Image classifier + LoRA",
            "ml.training.classifier_lora.config:ClassifierLoraConfig",
            "ml.training.classifier_lora.trainer:run",
        ),
        JobKind(
            "distill",
            "Distil the ensemble into a student",
            "ml.training.distill.config:DistillConfig",
            "ml.training.distill.trainer:run",
        ),
        JobKind(
            "pretrain",
            "Self-supervised backbone pretraining on the pool (lightly SimCLR / BYOL)",
            "ml.training.pretrain.config:PretrainConfig",
            "ml.training.pretrain.trainer:run",
        ),
        JobKind(
            "yolo",
            "YOLO detector fine-tune",
            "ml.training.yolo.config:YoloConfig",
            "ml.training.yolo.trainer:run",
        ),
        JobKind(
            "vlm_sft",
            "VLM supervised fine-tune (trl SFT)",
            "ml.training.vlm.config:VlmSftConfig",
            "ml.training.vlm.sft:run",
        ),
        JobKind(
            "vlm_dpo",
            "VLM preference training (trl DPO)",
            "ml.training.vlm.config:VlmDpoConfig",
            "ml.training.vlm.dpo:run",
        ),
        JobKind(
            "vlm_distill",
            "VLM → smaller VLM distillation (teacher answer distributions)",
            "ml.training.vlm.config:VlmDistillConfig",
            "ml.training.vlm.distill:run",
        ),
    ]
}


def _load(path: str) -> Any:
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_config(kind: str, values: dict[str, Any]) -> Any:
    """Builds a config from user values; raises ValueError naming the offending field."""
    if kind not in JOB_KINDS:
        raise ValueError(f"kind: unknown job kind {kind!r}; known: {sorted(JOB_KINDS)}")
    cls = JOB_KINDS[kind].config_class()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"config.{unknown[0]}: unknown parameter for {kind}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"config: {exc}") from exc


def config_fields(kind: str) -> list[dict[str, Any]]:
    """Name, default, type and help of every knob: drives the job form and the API docs."""
    cls = JOB_KINDS[kind].config_class()
    out = []
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append(
            {"name": f.name, "default": default, "type": str(f.type), "help": f.metadata.get("help", "")}
        )
    return out
