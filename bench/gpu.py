"""GPU training throughput: every job kind for a fixed number of steps on real roadwork photos; steps/s, peak memory.

    python -m bench.gpu [--steps 30] [--kinds vlm_sft,vlm_dpo] [--vlm-model PATH] [--classifier-model PATH]
                        [--json results.json]

Models are tiny ones built from configs unless a local checkpoint is given (the GPU machines reach no hub).
VLM kinds run as plain peft LoRA, plus QLoRA (bitsandbytes) and Unsloth variants when those packages are
installed, and the report ends with the Unsloth/peft and QLoRA/LoRA ratios. Each variant runs in its own
process so peak memory and Unsloth's patching of transformers do not leak between them. Without CUDA it exits
with status 2: CPU figures would say nothing about the GPU workers.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.training import StepClock, write_bench_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
ALL_KINDS = ("classifier_lora", "distill", "yolo", "vlm_sft", "vlm_dpo")
VLM_VARIANTS = (("peft", "none"), ("peft", "4bit"), ("unsloth", "none"), ("unsloth", "4bit"))


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str
    values: dict[str, Any]

    def needs(self) -> list[str]:
        packages = []
        if self.values.get("backend") == "unsloth":
            packages.append("unsloth")
        if self.values.get("quantization") == "4bit":
            packages.append("bitsandbytes")
        return packages


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        print(
            "bench.gpu: no CUDA device here; it measures the GPU workers and refuses to run on CPU",
            file=sys.stderr,
        )
        sys.exit(2)


def build_models(scratch: Path, args: argparse.Namespace) -> dict[str, str]:
    from ml.tiny import build_tiny_vit_classifier
    from ml.training.vlm.tiny import build_tiny_qwen2_vl

    models = {"classifier": args.classifier_model, "vlm": args.vlm_model}
    if not models["classifier"]:
        models["classifier"] = str(build_tiny_vit_classifier(scratch / "tiny-vit", image_size=64))
    if not models["vlm"]:
        models["vlm"] = str(build_tiny_qwen2_vl(scratch / "tiny-qwen2-vl"))
    return models


def variants(kinds: list[str], steps: int, models: dict[str, str]) -> list[Variant]:
    never = 10 * steps  # no mid-run evaluation or checkpoint inside the timed steps
    image_common = {"max_steps": steps, "device": "cuda", "eval_every": never, "checkpoint_every": never}
    vlm_common = {
        "model_name_or_path": models["vlm"],
        "max_steps": steps,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "logging_steps": steps,
        "save_steps": never,
    }
    out = []
    for kind in kinds:
        if kind == "classifier_lora":
            base = {**image_common, "base_model": models["classifier"], "batch_size": 32}
            out += [Variant("lora", kind, base), Variant("full", kind, {**base, "method": "full"})]
        elif kind == "distill":
            out.append(Variant("tiny-cnn", kind, {**image_common, "batch_size": 64}))
        elif kind == "yolo":
            out.append(
                Variant(
                    "yolov8n",
                    kind,
                    {
                        "model": "yolov8n.yaml",
                        "image_size": 320,
                        "batch": 16,
                        "epochs": max(1, math.ceil(steps / 4)),
                        "device": "cuda",
                    },
                )
            )
        elif kind in ("vlm_sft", "vlm_dpo"):
            extra = {"vlm_model_name": "vlm", "low_confidence_margin": 0.5} if kind == "vlm_dpo" else {}
            for backend, quantization in VLM_VARIANTS:
                values = {**vlm_common, **extra, "backend": backend, "quantization": quantization}
                out.append(
                    Variant(f"{backend}-{'qlora' if quantization == '4bit' else 'lora'}", kind, values)
                )
        else:
            raise SystemExit(f"bench.gpu: unknown kind {kind!r}; known: {', '.join(ALL_KINDS)}")
    return out


def run_variant(variant: Variant, dataset_root: Path, workdir: Path) -> dict[str, Any]:
    """Runs one variant in this process; returns its figures."""
    if variant.values.get("backend") == "unsloth":
        import unsloth  # noqa: F401  (must patch transformers before anything imports it)
    import torch

    from ml.dataset import DatasetVersionDir
    from ml.training.kinds import JOB_KINDS, build_config

    job = JOB_KINDS[variant.kind]
    config = build_config(variant.kind, variant.values)
    clock = StepClock()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = job.runner()(config, DatasetVersionDir(dataset_root), clock, workdir)
    wall = time.perf_counter() - start
    return {
        "kind": variant.kind,
        "variant": variant.name,
        "steps": clock.times[-1][0] if clock.times else 0,
        "steps_per_s": clock.steps_per_second(),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "wall_s": wall,
        "holdout_mcc": result.metrics.get("mcc", float("nan")),
        "device": torch.cuda.get_device_name(),
    }


def _child(variant: Variant, dataset_root: Path, scratch: Path) -> dict[str, Any]:
    missing = [p for p in variant.needs() if importlib.util.find_spec(p) is None]
    if missing:
        return {
            "kind": variant.kind,
            "variant": variant.name,
            "skipped": f"{', '.join(missing)} not installed",
        }
    out = scratch / f"{variant.kind}-{variant.name}.json"
    spec = json.dumps({"name": variant.name, "kind": variant.kind, "values": variant.values})
    cmd = [
        sys.executable,
        "-m",
        "bench.gpu",
        "--one",
        spec,
        "--dataset",
        str(dataset_root),
        "--out",
        str(out),
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(scratch / "ultralytics"),
    }
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"kind": variant.kind, "variant": variant.name, "failed": " | ".join(tail)}
    return json.loads(out.read_text())


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    """Unsloth vs peft speed and QLoRA vs LoRA memory for each VLM kind, where both sides ran."""
    by = {(r["kind"], r["variant"]): r for r in rows if "steps_per_s" in r}
    lines = []
    for kind in ("vlm_sft", "vlm_dpo"):
        for a, b, what in (
            ("unsloth-lora", "peft-lora", "speed"),
            ("unsloth-qlora", "peft-qlora", "speed"),
            ("peft-qlora", "peft-lora", "memory"),
            ("unsloth-qlora", "unsloth-lora", "memory"),
        ):
            if (kind, a) in by and (kind, b) in by:
                key = "steps_per_s" if what == "speed" else "peak_gib"
                lines.append(f"{kind}: {a} / {b} {what} = {by[(kind, a)][key] / by[(kind, b)][key]:.2f}×")
    cls = {r["variant"]: r for r in rows if r["kind"] == "classifier_lora" and "steps_per_s" in r}
    if {"lora", "full"} <= set(cls):
        lines.append(
            f"classifier_lora: lora / full memory = {cls['lora']['peak_gib'] / cls['full']['peak_gib']:.2f}×"
        )
    return lines


def print_report(rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout, delimiter="\t")
    writer.writerow(["kind", "variant", "steps", "steps/s", "peak GiB", "wall s", "holdout MCC", "note"])
    for r in rows:
        if "steps_per_s" in r:
            writer.writerow(
                [
                    r["kind"],
                    r["variant"],
                    r["steps"],
                    f"{r['steps_per_s']:.2f}",
                    f"{r['peak_gib']:.2f}",
                    f"{r['wall_s']:.1f}",
                    f"{r['holdout_mcc']:.3f}",
                    "",
                ]
            )
        else:
            writer.writerow(
                [r["kind"], r["variant"], "", "", "", "", "", r.get("skipped") or f"FAILED {r['failed']}"]
            )
    for line in ratios(rows):
        print(line)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per variant")
    parser.add_argument("--kinds", default=",".join(ALL_KINDS), help="comma-separated job kinds")
    parser.add_argument("--items", type=int, default=160, help="photos in the bench dataset")
    parser.add_argument("--vlm-model", default="", help="local Qwen-VL checkpoint (default: tiny Qwen2-VL)")
    parser.add_argument("--classifier-model", default="", help="local image classifier (default: tiny ViT)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_cuda()
    if args.one:
        spec = json.loads(args.one)
        workdir = Path(tempfile.mkdtemp(prefix="bench-gpu-job-"))
        row = run_variant(Variant(spec["name"], spec["kind"], spec["values"]), Path(args.dataset), workdir)
        Path(args.out).write_text(json.dumps(row))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        scratch = Path(tmp)
        dataset = write_bench_dataset(scratch / "dataset", args.items)
        models = build_models(scratch, args)
        rows = [_child(v, dataset.root, scratch) for v in variants(args.kinds.split(","), args.steps, models)]
    print_report(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
