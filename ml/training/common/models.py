"""Loading HF image classifiers offline, choosing LoRA targets per architecture, counting parameters."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ml.training.common.data import Normalisation
from ml.training.common.runtime import hub_offline

# LoRA targets by attention naming, first match wins. transformers 4.x ViT/DeiT/BEiT name the attention
# projections query/key/value; transformers 5.x renames ViT's to q_proj/k_proj/v_proj/o_proj. Swin, ConvNeXt-V2
# and Dinov2 follow one of these two; Hiera/EVA-style fused blocks use qkv.
LORA_TARGET_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("q_proj", "v_proj"),
    ("query", "value"),
    ("qkv",),
    ("query_key_value",),
)
HEAD_NAMES = ("classifier", "head", "fc", "score")
DEFAULT_IMAGE_SIZE = 224
PLAIN_NORMALISATION = Normalisation(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def linear_leaf_names(model: nn.Module) -> set[str]:
    return {
        name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)
    }


def auto_target_modules(model: nn.Module) -> list[str]:
    names = linear_leaf_names(model)
    for candidate in LORA_TARGET_CANDIDATES:
        if all(name in names for name in candidate):
            return list(candidate)
    raise ValueError(
        f"target_modules: cannot detect the attention projections of {type(model).__name__}; "
        f"set target_modules explicitly (linear layers: {sorted(names)[:12]})"
    )


def auto_head_modules(model: nn.Module) -> list[str]:
    """The classification head, trained in full next to the adapter (it is freshly initialised)."""
    children = dict(model.named_children())
    found = [name for name in HEAD_NAMES if name in children]
    if found:
        return found[:1]
    raise ValueError(f"modules_to_save: no classification head among {sorted(children)}; set it explicitly")


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def load_image_classifier(base_model: str, classes: list[str]):
    """AutoModelForImageClassification with a head for `classes`, from a local path or the local HF cache."""
    hub_offline()
    from transformers import AutoModelForImageClassification

    source = str(Path(base_model)) if Path(base_model).exists() else base_model
    return AutoModelForImageClassification.from_pretrained(
        source,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={name: i for i, name in enumerate(classes)},
        ignore_mismatched_sizes=True,
    )


def load_image_processor(base_model: str):
    """The model's image processor, or None when it ships without one."""
    hub_offline()
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(base_model)
    except (OSError, ValueError):
        return None


def input_size(requested: int, model: nn.Module, processor) -> int:
    """The requested size, else the model's configured size, else the processor's.

    Models with a fixed size (ViT position embeddings) reject another one here, before any training."""
    configured = getattr(getattr(model, "config", None), "image_size", None)
    if requested > 0:
        if isinstance(configured, int) and configured != requested:
            raise ValueError(f"image_size: this model takes {configured}px inputs, not {requested}px (use 0)")
        return requested
    if isinstance(configured, int):
        return configured
    size = getattr(processor, "size", None) or {}
    return int(size.get("height") or size.get("shortest_edge") or DEFAULT_IMAGE_SIZE)


def normalisation_of(processor) -> Normalisation:
    if processor is None or getattr(processor, "image_mean", None) is None:
        return PLAIN_NORMALISATION
    return Normalisation(mean=tuple(processor.image_mean), std=tuple(processor.image_std))


def export_processor(processor, size: int, normalisation: Normalisation):
    """The processor saved with the model: resizes and normalises exactly as training did."""
    from transformers import ViTImageProcessor

    if processor is not None and "height" in (getattr(processor, "size", None) or {}):
        processor.size = {"height": size, "width": size}
        return processor
    return ViTImageProcessor(
        size={"height": size, "width": size},
        image_mean=list(normalisation.mean),
        image_std=list(normalisation.std),
    )
