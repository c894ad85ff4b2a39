"""Tiny models built from configs (no download) for tests, the demo and benchmarks."""

from __future__ import annotations

from pathlib import Path


def build_tiny_vit_classifier(
    path: Path,
    num_labels: int = 2,
    image_size: int = 32,
    seed: int = 0,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
) -> Path:
    """A 2-layer ViT (hidden 32) with a ViTImageProcessor beside it, saved to `path` for from_pretrained.

    Benchmarks pass a larger hidden_size / num_hidden_layers for a less toy-like comparison."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    labels = ["negative", "positive"] if num_labels == 2 else [f"class_{i}" for i in range(num_labels)]
    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2 if hidden_size <= 64 else hidden_size // 64,
        intermediate_size=2 * hidden_size if hidden_size <= 64 else 4 * hidden_size,
        num_labels=num_labels,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    path = Path(path)
    ViTForImageClassification(config).save_pretrained(path)
    processor = ViTImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor.save_pretrained(path)
    return path
