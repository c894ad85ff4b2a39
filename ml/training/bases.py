"""The base models a job can start from without the network: built-in architectures (randomly initialised,
built on the worker), local model folders, the local Hugging Face cache, and registry versions (warm starts).

Torch-free at import: the web server lists and validates bases from here; only `resolve_base` builds models.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
REGISTRY_PREFIX = "registry:v"
REGISTRY_PRODUCTION = "registry:production"  # whichever version is in production when the job starts
TINY_CNN = "tiny-cnn"
MARKER_FILE = (
    "hardcase_base.json"  # beside a model folder: {"pretrained": bool, "model": subdir, "label": str}
)
WARM_START_DIR = "warm_start"  # under a job's workdir: registry artifacts unpacked by the runner

# What a job kind can load: an HF image classifier, the built-in CNN student, a Qwen-VL model, a YOLO model.
IMAGE_CLASSIFIER, CNN, VLM, DETECTOR = "image_classifier", "tiny_cnn", "vlm", "detector"
KIND_FAMILIES: dict[str, tuple[str, ...]] = {
    "classifier_lora": (IMAGE_CLASSIFIER,),
    "distill": (CNN, IMAGE_CLASSIFIER),
    "pretrain": (IMAGE_CLASSIFIER,),
    "yolo": (DETECTOR,),
    "vlm_sft": (VLM,),
    "vlm_dpo": (VLM,),
    "vlm_distill": (VLM,),
}
# Registry kinds whose artifact another kind can start from (their files role -> what it holds).
# A pretrain version is a backbone (an image classifier folder whose head is a linear probe).
PRETRAIN_KIND = "pretrain"
WARM_START_SOURCES: dict[str, tuple[str, ...]] = {
    "classifier_lora": ("classifier_lora", "distill", PRETRAIN_KIND),
    "distill": ("distill", "classifier_lora", PRETRAIN_KIND),
    "pretrain": (PRETRAIN_KIND, "classifier_lora"),
    "yolo": ("yolo",),
}
VLM_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
VISION_MODEL_TYPES = (
    "vit",
    "deit",
    "beit",
    "swin",
    "swinv2",
    "convnext",
    "convnextv2",
    "dinov2",
    "resnet",
    "efficientnet",
    "mobilenet_v2",
    "mobilevit",
    "regnet",
    "levit",
)


@dataclass(frozen=True)
class Builtin:
    name: str
    family: str
    description: str
    builder: (
        str  # "module:function" called as function(path); empty for architectures the trainer builds itself
    )


BUILTINS: tuple[Builtin, ...] = (
    Builtin(
        "builtin:vit-small",
        IMAGE_CLASSIFIER,
        "ViT, 64 px input, 4 layers, hidden 128 (0.8 M parameters), random initialisation: full fine-tuning",
        "ml.training.bases:build_vit_small",
    ),
    Builtin(
        "builtin:vit-tiny",
        IMAGE_CLASSIFIER,
        "ViT, 32 px input, 2 layers, hidden 32, random initialisation: seconds on a CPU (smoke tests)",
        "ml.training.bases:build_vit_tiny",
    ),
    Builtin(TINY_CNN, CNN, "three-block CNN student (distill), random initialisation", ""),
    Builtin(
        "builtin:tiny-qwen2-vl",
        VLM,
        "two-layer Qwen2-VL with a locally trained tokenizer, random initialisation: a pipeline check, "
        "not a useful VLM (put a real checkpoint in the models directory)",
        "ml.training.vlm.tiny:build_tiny_qwen2_vl",
    ),
    *(
        Builtin(
            name, DETECTOR, f"ultralytics {name.removesuffix('.yaml')} architecture, trained from scratch", ""
        )
        for name in ("yolov8n.yaml", "yolov8s.yaml", "yolo11n.yaml", "yolo11s.yaml")
    ),
)
BUILTIN_BY_NAME = {b.name: b for b in BUILTINS}
BUILTIN_IMAGE_SIZES = {"builtin:vit-small": 64, "builtin:vit-tiny": 32}  # fixed by their position embeddings


def builtins_for(kind: str) -> list[Builtin]:
    families = KIND_FAMILIES.get(kind, ())
    return [b for b in BUILTINS if b.family in families]


def registry_reference(version: int) -> str:
    return f"{REGISTRY_PREFIX}{version}"


def registry_version(reference: str) -> int | None:
    """N of 'registry:vN', else None."""
    if not reference.startswith(REGISTRY_PREFIX):
        return None
    suffix = reference.removeprefix(REGISTRY_PREFIX)
    return int(suffix) if suffix.isdigit() else None


def is_registry_reference(reference: str) -> bool:
    return reference == REGISTRY_PRODUCTION or registry_version(reference) is not None


def warm_start_folder(reference: str) -> str:
    """Where the runner unpacks a registry reference inside the job's warm-start directory."""
    return "production" if reference == REGISTRY_PRODUCTION else f"v{registry_version(reference)}"


def default_method(pretrained: bool) -> str:
    """LoRA adapts pretrained weights; on random ones it only trains a few adapters on noise (MCC 0.60 vs 0.90)."""
    return "lora" if pretrained else "full"


# --- what a folder holds (torch-free) -------------------------------------------------------------------------


def read_marker(folder: Path) -> dict:
    marker = folder / MARKER_FILE
    if not marker.is_file():
        return {}
    try:
        return json.loads(marker.read_text())
    except ValueError:
        return {}


def folder_family(folder: Path) -> str | None:
    """Which family a model folder belongs to, from its config files; None when it is not a model."""
    if (folder / "student.json").is_file():
        return CNN
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text())
    except ValueError:
        return None
    model_type = str(config.get("model_type", ""))
    architectures = [str(a) for a in config.get("architectures") or []]
    if model_type in VLM_MODEL_TYPES:
        return VLM
    if model_type in VISION_MODEL_TYPES or any(a.endswith("ForImageClassification") for a in architectures):
        return IMAGE_CLASSIFIER
    return None


def path_family(path: Path) -> str | None:
    if path.is_file():
        return DETECTOR if path.suffix == ".pt" else None
    return folder_family(path) if path.is_dir() else None


# --- resolving a reference on the worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedBase:
    reference: str  # as the job named it
    source: str  # builtin | local | hub | registry | pretrain (a registry version of a pretrain job)
    path: str  # what the trainer loads (a folder, a .pt file, a yaml name or a hub id)
    pretrained: bool  # False: random initialisation, so full fine-tuning is the sensible method
    label: str  # for the model card

    @property
    def method(self) -> str:
        return default_method(self.pretrained)


def resolve_base(reference: str, workdir: Path) -> ResolvedBase:
    """Where the trainer loads `reference` from; builds a built-in model into the workdir (seeded, so a resumed
    job rebuilds the same weights). Registry versions must have been unpacked by the runner beforehand."""
    if reference in BUILTIN_BY_NAME:
        builtin = BUILTIN_BY_NAME[reference]
        path = build_builtin(builtin, workdir / "base_models") if builtin.builder else reference
        return ResolvedBase(reference, "builtin", str(path), False, f"{reference} ({builtin.description})")
    if is_registry_reference(reference):
        folder = Path(workdir) / WARM_START_DIR / warm_start_folder(reference)
        marker = read_marker(folder)
        if not marker:
            raise ValueError(f"base_model: {reference} was not unpacked for this job")
        if marker.get("kind") == PRETRAIN_KIND:
            label = f"self-supervised backbone {marker.get('label', reference)}"
            return ResolvedBase(reference, PRETRAIN_KIND, str(folder / marker["model"]), True, label)
        label = f"warm start from {marker.get('label', reference)}"
        return ResolvedBase(reference, "registry", str(folder / marker["model"]), True, label)
    path = Path(reference)
    if path.exists():
        pretrained = bool(read_marker(path).get("pretrained", True))
        return ResolvedBase(reference, "local", str(path), pretrained, reference)
    return ResolvedBase(reference, "hub", reference, True, f"{reference} (local Hugging Face cache)")


def build_builtin(builtin: Builtin, root: Path) -> Path:
    path = Path(root) / builtin.name.removeprefix(BUILTIN_PREFIX)
    if not (path / MARKER_FILE).is_file():
        module, function = builtin.builder.split(":")
        getattr(importlib.import_module(module), function)(path)
        marker = {"pretrained": False, "label": builtin.name, "model": "."}
        (path / MARKER_FILE).write_text(json.dumps(marker))
    return path


def build_vit_small(path: Path) -> Path:
    from ml.tiny import build_tiny_vit_classifier

    size = BUILTIN_IMAGE_SIZES["builtin:vit-small"]
    return build_tiny_vit_classifier(path, image_size=size, hidden_size=128, num_hidden_layers=4)


def build_vit_tiny(path: Path) -> Path:
    from ml.tiny import build_tiny_vit_classifier

    return build_tiny_vit_classifier(path, image_size=BUILTIN_IMAGE_SIZES["builtin:vit-tiny"])
