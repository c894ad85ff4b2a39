"""The one training loop: step-based, reports progress and val MCC, checks cancellation every step,
checkpoints every N steps and resumes from the latest checkpoint with the same data order and RNG."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml.evaluation import mcc_optimal_threshold
from ml.multiclass import multiclass_mcc
from ml.training.common.checkpoint import (
    load_latest_checkpoint,
    load_trainable_state,
    restore_rng_state,
    save_checkpoint,
    trainable_state,
)
from ml.training.common.config import ImageTrainingConfig
from ml.training.common.data import NO_LABEL, epoch_batches
from ml.training.common.ema import WeightEMA
from ml.training.reporting import Reporter, check_cancelled

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
Evaluate = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainOutcome:
    steps: int
    resumed_from: int
    ema: WeightEMA | None


def total_steps(config: ImageTrainingConfig, n_train: int) -> int:
    if config.max_steps > 0:
        return config.max_steps
    return max(1, config.epochs * math.ceil(n_train / config.batch_size))


def logits_of(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """HF models return an output object, plain modules a tensor."""
    output = model(pixel_values=pixel_values)
    return output.logits if hasattr(output, "logits") else output


@torch.no_grad()
def predict_logits(
    model: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, K), labels (n,)) in loader order; labels are NO_LABEL for unlabeled items."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for batch in loader:
        logits.append(logits_of(model, batch["pixel_values"].to(device)).float().cpu())
        labels.append(batch["labels"])
    model.train(was_training)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def positive_probability(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).double(), dim=-1)[:, 1].numpy()


def val_mcc_evaluator(loader: DataLoader, device: torch.device, n_thresholds: int) -> Evaluate:
    """The MCC callback: val MCC at the best threshold for two classes (threshold-free, fair to a rare class),
    the multiclass MCC of the argmax for more."""

    def evaluate(model: nn.Module) -> dict[str, float]:
        logits, labels = predict_logits(model, loader, device)
        keep = labels != NO_LABEL
        if logits.shape[1] > 2:
            return {"val_mcc": multiclass_mcc(labels[keep], logits[keep].argmax(axis=1), logits.shape[1])}
        _, best = mcc_optimal_threshold(positive_probability(logits)[keep], labels[keep], n_thresholds)
        return {"val_mcc": best}

    return evaluate


def seeded_loader(dataset: Dataset, batches: list[list[int]], num_workers: int, seed: int) -> DataLoader:
    # an explicit generator keeps the DataLoader from drawing on the global RNG, which a resume restores
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, generator=generator)


def _scheduler(optimizer: torch.optim.Optimizer, total: int, warmup_ratio: float):
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resume(checkpoint_dir: Path, model, optimizer, scheduler, ema, reporter: Reporter) -> int:
    state = load_latest_checkpoint(checkpoint_dir)
    if state is None:
        return 0
    load_trainable_state(model, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    restore_rng_state(state["rng"])
    reporter.log(f"resumed from checkpoint at step {state['step']}")
    return int(state["step"])


def _eval_metrics(model: nn.Module, ema: WeightEMA | None, evaluate: Evaluate) -> dict[str, float]:
    metrics = evaluate(model)
    if ema is not None:
        with ema.applied(model):
            metrics.update({f"ema_{k}": v for k, v in evaluate(model).items()})
    return metrics


def train_steps(
    model: nn.Module,
    train_data: Dataset,
    loss_fn: LossFn,
    evaluate: Evaluate,
    config: ImageTrainingConfig,
    reporter: Reporter,
    workdir: Path,
    device: torch.device,
) -> TrainOutcome:
    """Trains `model` in place to `total_steps`; resumes from `workdir/checkpoints` when a checkpoint exists."""
    check_cancelled(reporter)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    total = total_steps(config, len(train_data))
    scheduler = _scheduler(optimizer, total, config.warmup_ratio)
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    checkpoint_dir = workdir / "checkpoints"
    step = resumed_from = _resume(checkpoint_dir, model, optimizer, scheduler, ema, reporter)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    losses: list[float] = []
    model.train()
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = epoch_batches(len(train_data), config.batch_size, epoch, config.seed)[offset:]
        for batch in seeded_loader(train_data, batches, config.num_workers, config.seed + epoch):
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            if ema is not None:
                ema.update(model)
            losses.append(float(loss.detach()))
            if step % config.eval_every == 0 or step == total:
                values = {"train_loss": float(np.mean(losses)), "lr": scheduler.get_last_lr()[0]}
                reporter.metrics(step, {**values, **_eval_metrics(model, ema, evaluate)})
                losses = []
            if step % config.checkpoint_every == 0 or step == total:
                state = {
                    "model": trainable_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema else None,
                }
                save_checkpoint(checkpoint_dir, step, state)
            reporter.progress(step, total)
            check_cancelled(reporter)
            if step >= total:
                break
    return TrainOutcome(steps=step, resumed_from=resumed_from, ema=ema)
