"""Self-supervised pretraining (the pretrain job's lightly SimCLR/BYOL step) vs random initialisation, at equal labels.

MNIST: pretrain a small ViT on unlabeled training images, then with 20, 100 and 500 labels fit a linear probe
on frozen features and fine-tune (the product's method 'auto': LoRA on the pretrained backbone, full fine-tuning
from random initialisation); error and MCC on the test images, several seeds, and their ratio.
Roadwork: pretrain on every roadwork and negative photo under the sample data, then the same with a labeled
subset (has_cone / workzone from the manifests, negatives 0); MCC on the photos outside the subset.

    nice -n 10 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python -m bench.pretrain --seeds 0,1,2

Both backbones of a comparison have the same architecture and the same seed; the labeled subsets and test sets
are the same for both at each seed (paired)."""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import matthews_corrcoef

from ml.sample_data import roadwork_pool, sample_data_dir
from ml.tiny import build_tiny_vit_classifier
from ml.training.common.data import Normalisation, image_transform, load_image
from ml.training.common.models import auto_head_modules, auto_target_modules, load_image_classifier
from ml.training.pretrain.ssl import (
    HeadlessClassifier,
    SSLSettings,
    TwoViews,
    build_ssl,
    extract_features,
    fit_linear_probe,
    train_ssl,
    two_view_transform,
)

PLAIN = Normalisation(mean=(0.5,) * 3, std=(0.5,) * 3)  # what the built-in ViTs' processors use
CPU = torch.device("cpu")


class PrintReporter:
    """Prints the SSL loss as the job's reporter would record it."""

    def __init__(self, name: str, every: int) -> None:
        self.name, self.every, self.start = name, every, time.perf_counter()

    def progress(self, step: int, total: int) -> None:
        pass

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "loss" in values and step % self.every == 0:
            elapsed = time.perf_counter() - self.start
            print(f"  [{self.name}] step {step}: loss {values['loss']:.4f} ({elapsed:.0f} s)", flush=True)

    def log(self, message: str) -> None:
        print(f"  [{self.name}] {message}", flush=True)

    def cancelled(self) -> bool:
        return False


# --- data -------------------------------------------------------------------------------------------------


def mnist(path: Path, n_pool: int, n_test: int, seed: int) -> dict:
    raw = np.load(path)
    rng = np.random.default_rng(seed)
    pool = rng.permutation(len(raw["x_train"]))[:n_pool]
    test = rng.permutation(len(raw["x_test"]))[:n_test]
    return {
        "pool": [Image.fromarray(x).convert("RGB") for x in raw["x_train"][pool]],
        "pool_labels": raw["y_train"][pool].astype(int),
        "test": [Image.fromarray(x).convert("RGB") for x in raw["x_test"][test]],
        "test_labels": raw["y_test"][test].astype(int),
        "classes": 10,
    }


def roadwork(size: int) -> dict:
    pool, _ = roadwork_pool()
    return {
        "pool": [load_image(item["image"], size) for item in pool],
        "pool_labels": np.array([item["label"] for item in pool]),
        "classes": 2,
    }


def labeled_subset(labels: np.ndarray, n: int, n_classes: int, seed: int) -> np.ndarray:
    """n indices with every class present (one of each first, the rest at random)."""
    rng = np.random.default_rng([seed, n])
    firsts = [rng.choice(np.flatnonzero(labels == k)) for k in range(n_classes) if (labels == k).any()]
    rest = rng.permutation(np.setdiff1d(np.arange(len(labels)), firsts))[: max(0, n - len(firsts))]
    return np.concatenate([firsts, rest]).astype(int)


def tensors(images: list[Image.Image], size: int) -> torch.Tensor:
    plain = image_transform(size, PLAIN, augment=False)
    return torch.stack([plain(im.resize((size, size), Image.BILINEAR)) for im in images])


# --- backbones --------------------------------------------------------------------------------------------


def build_backbone(folder: Path, size: int, hidden: int, layers: int, n_classes: int, seed: int) -> Path:
    return build_tiny_vit_classifier(
        folder, num_labels=n_classes, image_size=size, seed=seed, hidden_size=hidden, num_hidden_layers=layers
    )


def pretrain(
    random_folder: Path,
    out: Path,
    images: list[Image.Image],
    size: int,
    settings: SSLSettings,
    n_classes: int,
) -> float:
    """SSL exactly as the pretrain job runs it; saves the backbone beside the random one; returns seconds."""
    model = load_image_classifier(str(random_folder), classes_of(n_classes))
    backbone = HeadlessClassifier(model)
    views = TwoViews(
        lambda i: images[i], len(images), two_view_transform(settings.method, size, PLAIN, settings.min_scale)
    )
    ssl = build_ssl(backbone, size, settings)
    start = time.perf_counter()
    train_ssl(ssl, views, settings, PrintReporter(f"{settings.method} {out.name}", settings.log_every), CPU)
    seconds = time.perf_counter() - start
    backbone.restore().save_pretrained(out)
    return seconds


def classes_of(n: int) -> list[str]:
    return [str(k) for k in range(n)]


def probe_predictions(folder: Path, n_classes: int, x_train, y_train, x_test, c: float) -> np.ndarray:
    backbone = HeadlessClassifier(load_image_classifier(str(folder), classes_of(n_classes)))
    train = extract_features(backbone, lambda i: x_train[i], len(x_train), CPU)
    test = extract_features(backbone, lambda i: x_test[i], len(x_test), CPU)
    weight, bias = fit_linear_probe(train, y_train, c, n_classes)
    return np.argmax(test @ weight.T + bias, axis=1)


def finetune_predictions(
    folder: Path, pretrained: bool, n_classes: int, x_train, y_train, x_test, args, seed: int
) -> np.ndarray:
    """What classifier_lora's method 'auto' does: LoRA (r=8) on a pretrained backbone, full fine-tuning on a random
    one; a fixed number of AdamW steps on the labeled subset."""
    torch.manual_seed(seed)
    model = load_image_classifier(str(folder), classes_of(n_classes))
    if pretrained and args.finetune_method == "auto":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=auto_target_modules(model),
            modules_to_save=auto_head_modules(model),
        )
        model = get_peft_model(model, lora)
        lr = args.lora_lr
    else:
        lr = args.finetune_lr
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(seed)
    batch = min(args.finetune_batch, len(x_train))
    y = torch.as_tensor(y_train)
    model.train()
    for _ in range(args.finetune_steps):
        idx = torch.randperm(len(x_train), generator=generator)[:batch]
        loss = F.cross_entropy(model(pixel_values=x_train[idx]).logits, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [model(pixel_values=x_test[i : i + 512]).logits for i in range(0, len(x_test), 512)]
        )
    return logits.argmax(1).numpy()


# --- the comparison ---------------------------------------------------------------------------------------


def score(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    return float(np.mean(truth != predicted)), float(matthews_corrcoef(truth, predicted))


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f}±{sd:.3f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b != 0 else "n/a"


def compare(
    name: str, folders: dict[str, Path], data: dict, size: int, label_counts: list[int], args
) -> list[dict]:
    """Per label count and seed: both evaluations for both initialisations; prints the table."""
    n_classes = data["classes"]
    x_pool = tensors(data["pool"], size)
    rows = []
    for n in label_counts:
        for seed in args.seed_list:
            chosen = labeled_subset(data["pool_labels"], n, n_classes, seed)
            if "test" in data:
                x_test, y_test = tensors(data["test"], size), data["test_labels"]
            else:  # roadwork: every photo outside the labeled subset
                rest = np.setdiff1d(np.arange(len(x_pool)), chosen)
                x_test, y_test = x_pool[rest], data["pool_labels"][rest]
            x_train, y_train = x_pool[chosen], data["pool_labels"][chosen]
            for evaluation in args.eval_list:
                for init, folder in folders.items():
                    if evaluation == "probe":
                        predicted = probe_predictions(
                            folder, n_classes, x_train, y_train, x_test, args.probe_c
                        )
                    else:
                        predicted = finetune_predictions(
                            folder, init == "pretrained", n_classes, x_train, y_train, x_test, args, seed
                        )
                    error, mcc = score(y_test, predicted)
                    rows.append(
                        {"n": n, "seed": seed, "eval": evaluation, "init": init, "error": error, "mcc": mcc}
                    )
            print(f"  [{name}] {n} labels, seed {seed} done", flush=True)
    print_table(name, rows, label_counts, args)
    return rows


def pick(rows: list[dict], n: int, evaluation: str, init: str, key: str) -> list[float]:
    return [r[key] for r in rows if r["n"] == n and r["eval"] == evaluation and r["init"] == init]


def print_table(name: str, rows: list[dict], label_counts: list[int], args) -> None:
    print(
        f"\n== {name}: pretrained ({args.method}) vs random initialisation, mean±sd over seeds {args.seeds} =="
    )
    print(
        f"{'eval':9} {'labels':>6} | {'error pre':>12} {'error rand':>12} {'rand/pre':>8} | "
        f"{'MCC pre':>12} {'MCC rand':>12} {'pre/rand':>8}"
    )
    for evaluation in args.eval_list:
        for n in label_counts:
            e_pre, e_rand = (
                pick(rows, n, evaluation, "pretrained", "error"),
                pick(rows, n, evaluation, "random", "error"),
            )
            m_pre, m_rand = (
                pick(rows, n, evaluation, "pretrained", "mcc"),
                pick(rows, n, evaluation, "random", "mcc"),
            )
            label = evaluation if evaluation == "probe" else f"tune-{args.finetune_method}"
            print(
                f"{label:9} {n:>6} | {mean_sd(e_pre):>12} {mean_sd(e_rand):>12} "
                f"{ratio(statistics.mean(e_rand), statistics.mean(e_pre)):>8} | {mean_sd(m_pre):>12} "
                f"{mean_sd(m_rand):>12} {ratio(statistics.mean(m_pre), statistics.mean(m_rand)):>8}"
            )
    print(flush=True)


def run_dataset(
    name: str, data: dict, size: int, hidden: int, layers: int, settings: SSLSettings, counts, args, tmp: Path
) -> None:
    print(
        f"\n### {name}: {len(data['pool'])} unlabeled pool images, ViT {size}px hidden {hidden} x{layers} layers, "
        f"SSL {asdict(settings)}",
        flush=True,
    )
    random_folder = build_backbone(
        tmp / f"{name}-random", size, hidden, layers, data["classes"], args.init_seed
    )
    seconds = pretrain(
        random_folder, tmp / f"{name}-pretrained", data["pool"], size, settings, data["classes"]
    )
    print(f"  pretraining: {seconds:.0f} s ({settings.steps / seconds:.2f} steps/s)", flush=True)
    folders = {"pretrained": tmp / f"{name}-pretrained", "random": random_folder}
    compare(name, folders, data, size, counts, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,roadwork", help="comma-separated: mnist, roadwork")
    p.add_argument("--method", default="simclr", choices=["simclr", "byol"])
    p.add_argument("--seeds", default="0,1,2", help="label-subset / fine-tune seeds")
    p.add_argument(
        "--init-seed", type=int, default=0, help="seed of both backbones' initialisation and the SSL run"
    )
    p.add_argument("--eval", default="probe,finetune", help="comma-separated: probe, finetune")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--mnist-pool",
        type=int,
        default=5000,
        help="unlabeled MNIST training images to pretrain on (max 60000)",
    )
    p.add_argument("--mnist-test", type=int, default=2000, help="MNIST test images scored")
    p.add_argument("--mnist-labels", default="20,100,500")
    p.add_argument("--mnist-steps", type=int, default=300)
    p.add_argument("--mnist-batch", type=int, default=128)
    p.add_argument("--mnist-size", type=int, default=32)
    p.add_argument("--mnist-hidden", type=int, default=64)
    p.add_argument("--mnist-layers", type=int, default=4)
    p.add_argument("--mnist-min-scale", type=float, default=0.4)
    p.add_argument(
        "--roadwork-labels", default="20,60", help="labeled photos; the rest of the 278 are scored"
    )
    p.add_argument("--roadwork-steps", type=int, default=300)
    p.add_argument("--roadwork-batch", type=int, default=64)
    p.add_argument("--roadwork-size", type=int, default=64)
    p.add_argument("--roadwork-hidden", type=int, default=128)
    p.add_argument("--roadwork-layers", type=int, default=4)
    p.add_argument("--roadwork-min-scale", type=float, default=0.2)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="SSL peak learning rate")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--probe-c", type=float, default=1.0)
    p.add_argument(
        "--finetune-method",
        default="auto",
        choices=["auto", "full"],
        help="auto: LoRA on the pretrained backbone, full on the random one (classifier_lora's choice)",
    )
    p.add_argument("--finetune-steps", type=int, default=100)
    p.add_argument("--finetune-batch", type=int, default=64)
    p.add_argument("--finetune-lr", type=float, default=1e-3, help="full fine-tuning learning rate")
    p.add_argument("--lora-lr", type=float, default=3e-3, help="LoRA learning rate")
    args = p.parse_args(argv)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.eval_list = [e for e in args.eval.split(",") if e.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        "command: "
        + " ".join(shlex.quote(a) for a in [sys.executable, "-m", "bench.pretrain", *sys.argv[1:]])
    )
    print("settings: " + ", ".join(f"{k}={v}" for k, v in vars(args).items() if not k.endswith("_list")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    base = SSLSettings(
        method=args.method,
        learning_rate=args.learning_rate,
        temperature=args.temperature,
        hidden_dim=256,
        projection_dim=64,
        log_every=25,
        seed=args.init_seed,
    )
    started = time.perf_counter()
    data_dir = sample_data_dir()
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        if "mnist" in args.datasets:
            data = mnist(data_dir / "mnist" / "mnist.npz", args.mnist_pool, args.mnist_test, args.init_seed)
            settings = replace(
                base, steps=args.mnist_steps, batch_size=args.mnist_batch, min_scale=args.mnist_min_scale
            )
            counts = [int(n) for n in args.mnist_labels.split(",")]
            run_dataset(
                "mnist",
                data,
                args.mnist_size,
                args.mnist_hidden,
                args.mnist_layers,
                settings,
                counts,
                args,
                Path(tmp),
            )
        if "roadwork" in args.datasets:
            data = roadwork(args.roadwork_size)
            settings = replace(
                base,
                steps=args.roadwork_steps,
                batch_size=args.roadwork_batch,
                min_scale=args.roadwork_min_scale,
            )
            counts = [int(n) for n in args.roadwork_labels.split(",")]
            run_dataset(
                "roadwork",
                data,
                args.roadwork_size,
                args.roadwork_hidden,
                args.roadwork_layers,
                settings,
                counts,
                args,
                Path(tmp),
            )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
