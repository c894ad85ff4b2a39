"""Checkpoints in `workdir/checkpoints/step-N`: trainable weights, optimizer, schedule, EMA and every RNG."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

STATE_FILE = "state.pt"
KEEP_LAST = 2


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and buffers (BatchNorm statistics); frozen base weights are reloaded from disk."""
    state = {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}
    state.update({name: b.detach().cpu() for name, b in model.named_buffers()})
    return state


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_steps(checkpoint_dir: Path) -> list[int]:
    if not checkpoint_dir.exists():
        return []
    steps = []
    for path in checkpoint_dir.glob("step-*"):
        suffix = path.name.removeprefix("step-")
        if suffix.isdigit() and (path / STATE_FILE).exists():
            steps.append(int(suffix))
    return sorted(steps)


def save_checkpoint(checkpoint_dir: Path, step: int, state: dict[str, Any]) -> Path:
    """Writes atomically (tmp dir + rename) so a crash mid-write never leaves a half checkpoint to resume."""
    target = checkpoint_dir / f"step-{step}"
    tmp = checkpoint_dir / f".tmp-step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({**state, "step": step, "rng": rng_state()}, tmp / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    for old in checkpoint_steps(checkpoint_dir)[:-KEEP_LAST]:
        shutil.rmtree(checkpoint_dir / f"step-{old}", ignore_errors=True)
    return target


def load_latest_checkpoint(checkpoint_dir: Path) -> dict[str, Any] | None:
    steps = checkpoint_steps(checkpoint_dir)
    if not steps:
        return None
    return torch.load(
        checkpoint_dir / f"step-{steps[-1]}" / STATE_FILE, map_location="cpu", weights_only=False
    )


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    missing = [name for name in trainable_state(model) if name not in state]
    if missing:
        raise ValueError(f"checkpoint: does not match the model (missing {missing[:3]})")
    model.load_state_dict(state, strict=False)
