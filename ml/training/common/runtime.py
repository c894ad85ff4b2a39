"""Where a job runs: offline settings for every hub client, and the torch device its `device` knob names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def hub_offline() -> None:
    """Model loading must never reach the network from a worker (weights come from local paths or the cache)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'; asking for CUDA on a CPU worker is a config error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} was asked for but CUDA is not available on this worker")
    return torch.device(name)


def describe_device(name: str) -> str:
    """What a job's `device` knob resolves to on this worker, as its log and job page show it:
    'cpu', or e.g. 'cuda:0 (NVIDIA H200)'."""
    import torch

    device = resolve_device(name)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
