"""Self-supervised MNIST features: a small SimCLR (lightly's NT-Xent loss and projection head) on a small CNN,
trained on the 60,000 training images without their labels, features cached to disk (imports torch).

Sized for one CPU core: the time budget counts this process's CPU seconds (not wall time on a shared box); a
16-32-64-128 channel CNN with strided convolutions, augmentations done on whole batches
(random affine = crop, rotation, shear, shift; plus random erasing), a time budget that stops training."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FEATURES_FILE = "features.npz"


@dataclass
class SSLConfig:
    out: Path
    epochs: float = 8.0
    batch_size: int = 128
    learning_rate: float = 3e-3
    temperature: float = 0.2
    width: int = 32
    feature_dim: int = 128
    time_budget_s: float = 600.0
    train_size: int = 0  # 0 = all 60,000
    seed: int = 0
    threads: int = 1
    method: str = "simclr"  # or "pca": the unsupervised baseline, no network (components from the train set)
    pca_components: int = 50


class SmallCNN(nn.Module):
    def __init__(self, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        w = width
        self.body = nn.Sequential(
            block(1, w // 2, 1),  # 28
            block(w // 2, w, 2),  # 14
            block(w, 2 * w, 2),  # 7
            block(2 * w, feature_dim, 2),  # 4
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A SimCLR view of each image in the batch: random zoom-in crop, rotation, shear and shift, then erasing."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    scale, angle, shear = uniform(0.65, 1.05), uniform(-0.35, 0.35), uniform(-0.3, 0.3)
    tx, ty = uniform(-0.2, 0.2), uniform(-0.2, 0.2)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )  # (n, 2, 3): output→input coordinates, so scale < 1 zooms in
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    # random erasing: an 8×8 square zeroed in half the images
    cy = torch.randint(0, 21, (n,), generator=generator)
    cx = torch.randint(0, 21, (n,), generator=generator)
    keep = torch.rand(n, generator=generator) < 0.5
    rows = torch.arange(28)[None, :, None]
    cols = torch.arange(28)[None, None, :]
    box = (rows >= cy[:, None, None]) & (rows < cy[:, None, None] + 8)
    box = box & (cols >= cx[:, None, None]) & (cols < cx[:, None, None] + 8) & keep[:, None, None]
    return out.masked_fill(box[:, None], 0.0)


def _learning_rate(config: SSLConfig, step: int, total: int, elapsed: float) -> float:
    """Warm-up, then a cosine decay on whichever runs out first (steps or the time budget), so a run cut short
    by its budget still ends annealed."""
    warmup = max(1, total // 30)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = min(1.0, max(step / total, elapsed / config.time_budget_s))
    return config.learning_rate * 0.5 * (1 + np.cos(np.pi * progress))


def train_simclr(
    config: SSLConfig, x: np.ndarray, log: Callable[[str], None] = print
) -> tuple[SmallCNN, dict]:
    from ml.training.pretrain.ssl import SimCLR  # the pretrain job's head and loss, around the small CNN

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    encoder = SmallCNN(config.width, config.feature_dim)
    model = SimCLR(encoder, config.feature_dim, config.feature_dim, 64, config.temperature)
    steps_per_epoch = len(x) // config.batch_size
    total = max(1, int(config.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    xt = torch.from_numpy(x)
    started, losses, step = time.process_time(), [], 0  # CPU seconds: the budget is core time
    model.train()
    while step < total:
        order = torch.randperm(len(xt), generator=generator)
        for i in range(steps_per_epoch):
            batch = xt[order[i * config.batch_size : (i + 1) * config.batch_size]]
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step, total, time.process_time() - started)
            loss = model.loss(augment(batch, generator), augment(batch, generator))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            elapsed = time.process_time() - started
            if step % 50 == 0:
                log(f"simclr step {step}/{total} loss {np.mean(losses[-50:]):.3f} ({elapsed:.0f} s)")
            if step >= total or elapsed > config.time_budget_s:
                break
        if time.process_time() - started > config.time_budget_s:
            log(f"simclr: time budget reached after {step} of {total} steps")
            break
    stats = {
        "steps": step,
        "planned_steps": total,
        "seconds": time.process_time() - started,
        "loss": losses[-50:],
    }
    return encoder, stats


@torch.no_grad()
def encode(encoder: SmallCNN, x: np.ndarray, batch: int = 2000) -> np.ndarray:
    encoder.eval()
    feats = torch.cat([encoder(torch.from_numpy(x[i : i + batch])) for i in range(0, len(x), batch)])
    return feats.numpy().astype(np.float32)


def load_features(out: Path) -> dict[str, np.ndarray]:
    with np.load(Path(out) / FEATURES_FILE) as raw:
        return {k: raw[k] for k in raw.files}


def build_features(config: SSLConfig, log: Callable[[str], None] = print) -> Path:
    """Train (unless features.npz is already there) and cache train/test features with their labels."""
    from ml.simulate.data import replay_data

    path = Path(config.out) / FEATURES_FILE
    if path.is_file():
        log(f"features cached at {path}")
        return path
    data = replay_data("mnist")
    n = config.train_size or len(data.y_train)
    path.parent.mkdir(parents=True, exist_ok=True)
    if config.method == "pca":
        x_train, x_test, stats = pca_features(config, data.x_train[:n], data.x_test)
    else:
        encoder, stats = train_simclr(config, data.x_train[:n], log)
        x_train, x_test = encode(encoder, data.x_train[:n]), encode(encoder, data.x_test)
        torch.save(encoder.state_dict(), path.parent / "encoder.pt")
    np.savez(
        path.with_name("features.tmp.npz"),
        x_train=x_train,
        y_train=data.y_train[:n],
        x_test=x_test,
        y_test=data.y_test,
    )
    path.with_name("features.tmp.npz").replace(path)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    (path.parent / "ssl.json").write_text(json.dumps({"config": settings, **stats}, indent=1))
    log(f"features written to {path} ({stats['steps']} steps, {stats['seconds']:.0f} s)")
    return path


def pca_features(
    config: SSLConfig, x_train: np.ndarray, x_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Principal components of the unlabeled training images: the representation with no learning at all."""
    started = time.process_time()
    flat = x_train.reshape(len(x_train), -1).astype(np.float32)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[: config.pca_components].T

    def project(x: np.ndarray) -> np.ndarray:
        return ((x.reshape(len(x), -1) - mean) @ basis).astype(np.float32)

    return project(flat), project(x_test), {"steps": 0, "seconds": time.process_time() - started}


def describe_features(folder: Path) -> str:
    """How a cached feature set was made, for report recipes ("SimCLR, 9,000 steps" or "PCA, 50 components")."""
    meta = Path(folder) / "ssl.json"
    if not meta.is_file():
        return f"features from {folder}"
    info = json.loads(meta.read_text())
    config = info.get("config", {})
    if config.get("method") == "pca":
        return f"PCA features ({config.get('pca_components')} components of the unlabeled train images)"
    return f"SimCLR features ({info.get('steps', '?')} steps, {info.get('seconds', 0):.0f} CPU-s)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ml.simulate.ssl", description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    options = (
        ("epochs", float),
        ("time_budget_s", float),
        ("train_size", int),
        ("threads", int),
        ("pca_components", int),
    )
    for name, kind in options:
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(SSLConfig, name))
    p.add_argument("--method", choices=("simclr", "pca"), default=SSLConfig.method)
    args = p.parse_args(argv)
    config = SSLConfig(out=args.out, method=args.method, **{name: getattr(args, name) for name, _ in options})
    build_features(config, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
