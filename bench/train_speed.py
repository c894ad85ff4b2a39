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
import tempfile
import time
from pathlib import Path

from bench.training import StepClock, write_bench_dataset
from ml.dataset import DatasetVersionDir


def measure(base: Path, dataset: DatasetVersionDir, workdir: Path, args, full_finetune: bool) -> dict:
    from ml.training.classifier_lora.config import ClassifierLoraConfig
    from ml.training.classifier_lora.trainer import run

    config = ClassifierLoraConfig(
        base_model=str(base),
        max_steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.steps,
        checkpoint_every=args.steps,
        method="full" if full_finetune else "lora",
        device=args.device,
        augment=False,
    )
    reporter = StepClock()
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
        dataset = write_bench_dataset(scratch / "dataset", args.items)
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
