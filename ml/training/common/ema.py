"""Exponential moving average of the trainable weights and of the floating-point buffers (BatchNorm running
statistics), so averaged weights are evaluated with statistics that match them. For LoRA only the adapter
and head are averaged: cheap."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def averaged_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and floating-point buffers (running mean/var); integer counters are left alone."""
    tensors = {name: p for name, p in model.named_parameters() if p.requires_grad}
    tensors.update({name: b for name, b in model.named_buffers() if b.is_floating_point()})
    return tensors


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {name: t.detach().clone() for name, t in averaged_tensors(model).items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        # warm-up: early on the average would be dominated by the initial weights
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, tensor in averaged_tensors(model).items():
            if name in self.shadow:
                self.shadow[name].lerp_(tensor.detach(), 1.0 - decay)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swaps the averaged weights and statistics into `model`."""
        current = averaged_tensors(model)
        raw = {name: current[name].detach().clone() for name in self.shadow if name in current}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in raw.items():
                    current[name].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        current = averaged_tensors(model)
        for name, value in self.shadow.items():
            if name in current:
                current[name].copy_(value)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for name, value in state["shadow"].items():
            if name in self.shadow:
                self.shadow[name].copy_(value)
