"""The self-supervised step and loop: lightly's heads, losses and two-view augmentations around any backbone that
maps pixel_values to a feature vector; plus the linear probe that reads what the backbone learned.

Shared by the pretrain job and bench/pretrain.py, so the benchmark measures exactly what the job runs."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ml.training.common.checkpoint import (
    load_latest_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from ml.training.common.data import Normalisation, epoch_batches
from ml.training.common.models import auto_head_modules
from ml.training.reporting import Reporter, check_cancelled

MIN_BATCH = 2  # the heads' BatchNorm and the contrastive loss need two images


class HeadlessClassifier(nn.Module):
    """An HF image classifier with its head swapped for Identity: pixel_values -> (n, features).

    `restore()` puts the head back, so the trained backbone is saved as the classifier it came from (ViT: the
    CLS token after the final layer norm, exactly what its classification head reads)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head_name = auto_head_modules(model)[0]
        self._head = [getattr(model, self.head_name)]  # a list: not a submodule, so not trained here
        setattr(model, self.head_name, nn.Identity())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values)
        features = output.logits if hasattr(output, "logits") else output
        return features.flatten(1)

    def restore(self) -> nn.Module:
        setattr(self.model, self.head_name, self._head[0])
        return self.model


def feature_dim(backbone: nn.Module, size: int) -> int:
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        dim = backbone(torch.zeros(2, 3, size, size)).shape[1]
    backbone.train(was_training)
    return int(dim)


class SimCLR(nn.Module):
    """SimCLR: a projection head and the NT-Xent loss between two views of each image (lightly)."""

    def __init__(self, backbone: nn.Module, dim: int, hidden_dim: int, out_dim: int, temperature: float):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        self.backbone = backbone
        self.head = SimCLRProjectionHead(dim, hidden_dim, out_dim)
        self.criterion = NTXentLoss(temperature=temperature)

    def before_step(self, step: int, total: int) -> None:
        pass

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.head(self.backbone(view0)), self.head(self.backbone(view1)))


class BYOL(nn.Module):
    """BYOL: online encoder + predictor regress a momentum encoder's projection of the other view (lightly)."""

    def __init__(self, backbone: nn.Module, dim: int, hidden_dim: int, out_dim: int, momentum: float):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.projection = BYOLProjectionHead(dim, hidden_dim, out_dim)
        self.prediction = BYOLPredictionHead(out_dim, hidden_dim, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.momentum = momentum

    def before_step(self, step: int, total: int) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(step, max(total, 2), self.momentum, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m=m)
        update_momentum(self.projection, self.projection_momentum, m=m)

    def _online(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction(self.projection(self.backbone(x)))

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.projection_momentum(self.backbone_momentum(x)).detach()

    def loss(self, view0: torch.Tensor, view1: torch.Tensor) -> torch.Tensor:
        return 0.5 * (
            self.criterion(self._online(view0), self._target(view1))
            + self.criterion(self._online(view1), self._target(view0))
        )


@dataclass(frozen=True)
class SSLSettings:
    method: str = "simclr"
    steps: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    temperature: float = 0.2
    momentum: float = 0.99
    projection_dim: int = 64
    hidden_dim: int = 256
    min_scale: float = 0.2
    log_every: int = 10
    checkpoint_every: int = 50
    num_workers: int = 0
    seed: int = 0


def build_ssl(backbone: nn.Module, size: int, settings: SSLSettings) -> nn.Module:
    dim = feature_dim(backbone, size)
    if settings.method == "simclr":
        return SimCLR(backbone, dim, settings.hidden_dim, settings.projection_dim, settings.temperature)
    if settings.method == "byol":
        return BYOL(backbone, dim, settings.hidden_dim, settings.projection_dim, settings.momentum)
    raise ValueError(f"method: unknown self-supervised method {settings.method!r}")


def two_view_transform(method: str, size: int, normalisation: Normalisation, min_scale: float) -> Callable:
    """lightly's augmentation pair for the method, scaled for small images (no blur below 64 px: it erases
    them; colour jitter at half strength, as lightly recommends for CIFAR-sized inputs)."""
    from lightly.transforms import BYOLTransform, SimCLRTransform
    from lightly.transforms.byol_transform import BYOLView1Transform, BYOLView2Transform

    normalize = {"mean": list(normalisation.mean), "std": list(normalisation.std)}
    blur = 0.5 if size >= 64 else 0.0
    common = dict(input_size=size, min_scale=min_scale, cj_strength=0.5, normalize=normalize)
    if method == "byol":
        return BYOLTransform(
            BYOLView1Transform(**common, gaussian_blur=blur * 2),
            BYOLView2Transform(**common, gaussian_blur=blur * 0.2),
        )
    return SimCLRTransform(**common, gaussian_blur=blur)


class TwoViews(Dataset):
    """Two augmented views of image i; `image(i)` gives the PIL image (decoded once, kept when small)."""

    def __init__(self, image: Callable[[int], Image.Image], n: int, transform: Callable, cache: bool = True):
        self.image, self.n, self.transform = image, n, transform
        self._cache: dict[int, Image.Image] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def _load(self, index: int) -> Image.Image:
        if self._cache is None:
            return self.image(index)
        if index not in self._cache:
            self._cache[index] = self.image(index)
        return self._cache[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        view0, view1 = self.transform(self._load(index))[:2]
        return {"view0": view0, "view1": view1}


def ssl_batches(n_items: int, batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    """One shuffled epoch (a pure function of epoch and seed: a resume replays it), without a last batch too
    small for BatchNorm and the contrastive loss."""
    return [b for b in epoch_batches(n_items, batch_size, epoch, seed) if len(b) >= MIN_BATCH]


def _lr_factor(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return factor


def train_ssl(
    model: nn.Module,
    data: TwoViews,
    settings: SSLSettings,
    reporter: Reporter,
    device: torch.device,
    checkpoint_dir: Path | None = None,
) -> list[float]:
    """Trains `model` (SimCLR/BYOL around a backbone) for settings.steps steps; reports 'loss' (mean since the
    last report) and progress, checks cancellation each step, checkpoints and resumes from checkpoint_dir.
    Returns the loss of every step run in this call."""
    if len(data) < MIN_BATCH:
        raise ValueError(
            f"dataset: self-supervised training needs at least {MIN_BATCH} images, got {len(data)}"
        )
    check_cancelled(reporter)
    torch.manual_seed(settings.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_factor(settings.steps, settings.warmup_ratio)
    )
    step = _resume(checkpoint_dir, model, optimizer, scheduler, reporter)
    batch_size = min(settings.batch_size, len(data))
    steps_per_epoch = len(ssl_batches(len(data), batch_size, 0, settings.seed))
    model.to(device).train()
    losses: list[float] = []
    window: list[float] = []
    while step < settings.steps:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = ssl_batches(len(data), batch_size, epoch, settings.seed)[offset:]
        generator = torch.Generator().manual_seed(settings.seed + epoch)
        loader = DataLoader(
            data, batch_sampler=batches, num_workers=settings.num_workers, generator=generator
        )
        for batch in loader:
            model.before_step(step, settings.steps)
            loss = model.loss(batch["view0"].to(device), batch["view1"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ValueError(f"learning_rate: the loss diverged to {value} at step {step}; lower it")
            losses.append(value)
            window.append(value)
            if step % settings.log_every == 0 or step == settings.steps:
                reporter.metrics(step, {"loss": float(np.mean(window)), "lr": scheduler.get_last_lr()[0]})
                window = []
            if checkpoint_dir is not None and (
                step % settings.checkpoint_every == 0 or step == settings.steps
            ):
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
                save_checkpoint(checkpoint_dir, step, {**state, "scheduler": scheduler.state_dict()})
            reporter.progress(step, settings.steps)
            check_cancelled(reporter)
            if step >= settings.steps:
                break
    return losses


def _resume(checkpoint_dir: Path | None, model, optimizer, scheduler, reporter: Reporter) -> int:
    state = load_latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng_state(state["rng"])
    reporter.log(f"resumed self-supervised training from checkpoint at step {state['step']}")
    return int(state["step"])


# --- reading the backbone: features and the linear probe ------------------------------------------------------


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    pixels: Callable[[int], torch.Tensor],
    n: int,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """(n, d) features of images 0..n-1 (`pixels(i)`: a normalised (3, s, s) tensor), backbone in eval mode."""
    was_training = backbone.training
    backbone.eval()
    out = []
    for start in range(0, n, batch_size):
        batch = torch.stack([pixels(i) for i in range(start, min(n, start + batch_size))]).to(device)
        out.append(backbone(batch).float().cpu())
    backbone.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def fit_linear_probe(
    features: np.ndarray, labels: np.ndarray, c: float, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression on frozen features (balanced classes); returns the (n_classes, d) weight and bias of a
    linear head whose logits give the same decisions (binary: logit[1] - logit[0] is the fitted log-odds)."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    probe.fit(features, labels)
    weight = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    classes = probe.classes_.astype(int)
    if len(classes) == 2 and probe.coef_.shape[0] == 1:
        weight[classes[1]], bias[classes[1]] = probe.coef_[0] / 2, probe.intercept_[0] / 2
        weight[classes[0]], bias[classes[0]] = -probe.coef_[0] / 2, -probe.intercept_[0] / 2
    else:
        weight[classes], bias[classes] = probe.coef_, probe.intercept_
        missing = [k for k in range(n_classes) if k not in set(classes)]
        bias[missing] = -1e4  # a class absent from the labels is never predicted
    return weight, bias


def set_linear_head(head: nn.Module, weight: np.ndarray, bias: np.ndarray) -> None:
    """Writes the probe into the classifier's (last) linear layer."""
    linear = (
        head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    )
    if tuple(linear.weight.shape) != weight.shape:
        raise ValueError(f"probe: head shape {tuple(linear.weight.shape)} != probe {weight.shape}")
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
