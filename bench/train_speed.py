"""Training speed of classifier_lora vs full fine-tuning of the same ViT, in one process, on real roadwork photos.

    python -m bench.train_speed [--steps 40] [--batch-size 16] [--image-size 32] [--hidden 32] [--layers 2]
                                [--device auto] [--json out.json]

Steps/s is the median over optimizer steps (progress timestamps), so model loading, evaluation and saving are
not counted. The default model is the 2-layer tiny ViT of the tests; pass --hidden 192 --layers 6 --image-size 64
for a less toy-like comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction, write_dataset_dir
from ml.sample_data import roadwork_pool


@dataclass
class TimingReporter:
    """A Reporter that timestamps every step."""

    times: list[tuple[int, float]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def progress(self, step: int, total: int) -> None:
        self.times.append((step, time.perf_counter()))

    def metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def log(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return False

    def steps_per_second(self) -> float:
        intervals = [t1 - t0 for (_, t0), (_, t1) in zip(self.times, self.times[1:], strict=False)]
        return 1.0 / statistics.median(intervals) if intervals else float("nan")


def write_dataset(root: Path, n_items: int, seed: int = 0) -> DatasetVersionDir:
    rng = np.random.default_rng(seed)
    pool, _ = roadwork_pool()
    chosen = [pool[i] for i in rng.permutation(len(pool))[:n_items]]
    records = []
    for index, item in enumerate(chosen):
        score = float(1 / (1 + np.exp(-(2.0 * (2 * item["label"] - 1) + rng.normal(0, 1.5)))))
        records.append(
            DatasetRecord(
                item_id=index + 1,
                external_id=str(item["image"].name),
                image=str(item["image"]),
                label=item["label"],
                split=("train", "train", "train", "val", "holdout")[index % 5],
                predictions=[StoredPrediction(model="yolo", score=score)],
            )
        )
    return write_dataset_dir(root, DatasetInfo(project="bench", version=1), records)


def measure(base: Path, dataset: DatasetVersionDir, workdir: Path, args, full_finetune: bool) -> dict:
    from ml.training.classifier_lora.config import ClassifierLoraConfig
    from ml.training.classifier_lora.trainer import run

    config = ClassifierLoraConfig(
        base_model=str(base),
        max_steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.steps,
        checkpoint_every=args.steps,
        full_finetune=full_finetune,
        device=args.device,
        augment=False,
    )
    reporter = TimingReporter()
    started = time.perf_counter()
    result = run(config, dataset, reporter, workdir)
    return {
        "method": "full" if full_finetune else "lora",
        "steps_per_s": reporter.steps_per_second(),
        "images_per_s": reporter.steps_per_second() * args.batch_size,
        "wall_s": time.perf_counter() - started,
        "trainable_params": int(result.metrics["trainable_params"]),
        "total_params": int(result.metrics["total_params"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    from ml.tiny import build_tiny_vit_classifier

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        base = build_tiny_vit_classifier(
            scratch / "vit",
            image_size=args.image_size,
            hidden_size=args.hidden,
            num_hidden_layers=args.layers,
        )
        dataset = write_dataset(scratch / "dataset", args.items)
        # warm-up run: the first one pays for imports, kernel selection and image decoding
        measure(base, dataset, scratch / "warmup", argparse.Namespace(**{**vars(args), "steps": 3}), False)
        rows = [measure(base, dataset, scratch / m, args, m == "full") for m in ("lora", "full")]
    for row in rows:
        print(
            f"{row['method']:>5}: {row['steps_per_s']:8.2f} steps/s  {row['images_per_s']:9.1f} images/s  "
            f"trainable {row['trainable_params']:,} / {row['total_params']:,}"
        )
    lora, full = rows
    ratio = lora["steps_per_s"] / full["steps_per_s"]
    print(
        f"LoRA / full fine-tune speed ratio: {ratio:.2f}x; trainable params ratio: "
        f"{lora['trainable_params'] / full['trainable_params']:.4f}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "rows": rows, "speed_ratio": ratio}, indent=2)
        )


if __name__ == "__main__":
    main()
