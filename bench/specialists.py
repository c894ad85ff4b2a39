"""Slice specialists and VLM distillation measured on the demo data (../shared/data), in one process.

    python -m bench.specialists [--steps 150] [--vlm-steps 20] [--vlm-items 48] [--seed 0] [--json out.json]

1. Night slice: how many night items the demo holdout has, and the generalist's MCC there. The demo has only
   4 night frames (VTTI dashcam), all positives: a night-only specialist cannot be trained (one class) and its
   MCC is undefined, so the bench says so and measures the same machinery on the low-light slice instead (the
   darkest quarter of the photos by mean luminance, a numeric metadata range), where a specialist with the
   gamma illumination step is trained on slice items only and compared with the generalist on the holdout's
   slice items by the registry's paired bootstrap.
2. VLM -> VLM distillation: a tiny Qwen3-VL teacher (fine-tuned on the human labels with vlm_sft) distilled into
   a tiny Qwen2-VL student (vlm_distill), against the same student fine-tuned on human labels alone (vlm_sft):
   the student's agreement with the teacher on the holdout and each one's holdout MCC. The tiny models are
   built from configs with random weights, so these figures prove the mechanics, not the method's value.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, write_dataset_dir
from ml.evaluation import binary_metrics, bootstrap_mcc_difference
from ml.sample_data import roadwork_pool
from ml.slices import slice_matches

LOW_LIGHT_QUANTILE = 0.25


def mean_luminance(path: Path) -> float:
    with Image.open(path) as image:
        image.draft("RGB", (64, 64))
        return float(np.asarray(image.convert("L").resize((64, 64))).mean() / 255.0)


def stratified_splits(keys: list[tuple], seed: int, holdout: float = 0.3, val: float = 0.15) -> list[str]:
    """holdout / val / train within every (label, slice) stratum, so the rare slices reach the holdout."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * len(keys)
    for key in sorted(set(keys)):
        members = [i for i, k in enumerate(keys) if k == key]
        members = [members[j] for j in rng.permutation(len(members))]
        n_holdout = max(1, round(len(members) * holdout)) if len(members) > 1 else 0
        n_val = max(1, round(len(members) * val)) if len(members) > 2 else 0
        for j, index in enumerate(members):
            splits[index] = "holdout" if j < n_holdout else "val" if j < n_holdout + n_val else "train"
    return splits


def demo_records(seed: int) -> tuple[list[DatasetRecord], float]:
    pool, _ = roadwork_pool()
    luma = [mean_luminance(p["image"]) for p in pool]
    cut = float(np.quantile(luma, LOW_LIGHT_QUANTILE))
    keys = [(p["label"], p["is_night"], value < cut) for p, value in zip(pool, luma, strict=True)]
    splits = stratified_splits(keys, seed)
    records = [
        DatasetRecord(
            item_id=i + 1,
            external_id=f"{p['source']}/{p['image'].stem}",
            image=str(p["image"]),
            label=int(p["label"]),
            split=split,
            boxes=list(p["boxes"]),
            predictions=[],
            metadata={"is_night": bool(p["is_night"]), "luminance": value},
        )
        for i, (p, value, split) in enumerate(zip(pool, luma, splits, strict=True))
    ]
    return records, cut


def write_version(
    root: Path, records: list[DatasetRecord], spec: dict | None, version: int
) -> DatasetVersionDir:
    """The whole stream, or (with `spec`) train/val on the slice only and the holdout whole, as a freeze does."""
    kept = [r for r in records if spec is None or r.split == "holdout" or slice_matches(spec, r.metadata)]
    info = DatasetInfo(project="roadwork-bench", version=version, content_hash=f"bench-{version}")
    return write_dataset_dir(root / f"v{version}", info, kept)


def train_classifier(dataset: DatasetVersionDir, workdir: Path, steps: int, illumination: str, seed: int):
    from ml.training.classifier_lora.config import ClassifierLoraConfig
    from ml.training.classifier_lora.trainer import run
    from ml.training.reporting import MemoryReporter

    config = ClassifierLoraConfig(
        max_steps=steps,
        batch_size=16,
        eval_every=max(1, steps // 3),
        checkpoint_every=steps,
        illumination=illumination,
        device="auto",
        seed=seed,
    )
    return run(config, dataset, MemoryReporter(), workdir)


def on_slice(records: list[DatasetRecord], spec: dict, generalist, specialist) -> dict:
    items = [r for r in records if r.split == "holdout" and slice_matches(spec, r.metadata)]
    labels = [int(r.label) for r in items]
    out: dict = {"n": len(items), "positives": sum(labels)}
    if not items:
        return out
    g = [generalist.holdout_scores[r.item_id] for r in items]
    out["generalist_mcc"] = binary_metrics(g, labels, generalist.threshold)["mcc"]
    out["generalist_accuracy"] = float(
        np.mean([(s >= generalist.threshold) == y for s, y in zip(g, labels, strict=True)])
    )
    if specialist is not None:
        s = [specialist.holdout_scores[r.item_id] for r in items]
        out["specialist_mcc"] = binary_metrics(s, labels, specialist.threshold)["mcc"]
        out["difference"] = bootstrap_mcc_difference(s, g, labels, specialist.threshold, generalist.threshold)
    return out


def slice_bench(root: Path, args) -> dict:
    records, cut = demo_records(args.seed)
    generalist = train_classifier(
        write_version(root, records, None, 1), root / "generalist", args.steps, "none", args.seed
    )
    night = {"key": "is_night", "value": True}
    low_light = {"key": "luminance", "max": cut}
    specialist_dataset = write_version(root, records, low_light, 2)
    specialist = train_classifier(specialist_dataset, root / "specialist", args.steps, "gamma", args.seed)
    return {
        "items": len(records),
        "night_items": sum(r.metadata["is_night"] for r in records),
        "night": on_slice(records, night, generalist, None),
        "low_light_cut": cut,
        "low_light_train_items": sum(1 for r in specialist_dataset.records("train")),
        "low_light": on_slice(records, low_light, generalist, specialist),
        "generalist_holdout_mcc": generalist.metrics.get("mcc"),
    }


def vlm_bench(root: Path, args) -> dict:
    from ml.training.reporting import MemoryReporter
    from ml.training.vlm import distill, sft
    from ml.training.vlm.config import VlmDistillConfig, VlmSftConfig
    from ml.training.vlm.tiny import build_tiny_qwen2_vl, build_tiny_qwen3_vl

    records, _ = demo_records(args.seed)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(rng.permutation(len(records))[: args.vlm_items].tolist())
    subset = [records[i] for i in chosen]
    dataset = write_version(root / "vlm", subset, None, 1)
    small = {
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-3,
        "lora_r": 8,
        "lora_alpha": 16,
        "logging_steps": 5,
        "save_steps": 10_000,
        "max_image_pixels": 112 * 112,
        "max_steps": args.vlm_steps,
    }
    teacher_base = build_tiny_qwen3_vl(root / "teacher-base", seed=1)
    student_base = build_tiny_qwen2_vl(root / "student-base", seed=2)
    teacher = sft.run(
        VlmSftConfig(**{**small, "max_steps": args.vlm_steps * 2}, model_name_or_path=str(teacher_base)),
        dataset,
        MemoryReporter(),
        root / "teacher",
    )
    distilled = distill.run(
        VlmDistillConfig(
            **small,
            model_name_or_path=str(student_base),
            teacher=str(teacher_base),
            teacher_adapter=str(teacher.artifact_dir / "adapter"),
        ),
        dataset,
        MemoryReporter(),
        root / "distilled",
    )
    human_only = sft.run(
        VlmSftConfig(**small, model_name_or_path=str(student_base), with_rationale=False),
        dataset,
        MemoryReporter(),
        root / "human-only",
    )
    teacher_scores = teacher.holdout_scores
    return {
        "items": len(subset),
        "holdout_items": len(teacher_scores),
        "teacher_mcc": teacher.metrics.get("mcc"),
        "distilled_mcc": distilled.metrics.get("mcc"),
        "distilled_agreement": distill.agreement(distilled.holdout_scores, teacher_scores),
        "human_only_mcc": human_only.metrics.get("mcc"),
        "human_only_agreement": distill.agreement(human_only.holdout_scores, teacher_scores),
    }


def fmt(value) -> str:
    return (
        "undefined"
        if value is None or (isinstance(value, float) and not np.isfinite(value))
        else f"{value:.3f}"
    )


def report_slices(slices: dict) -> None:
    night = slices["night"]
    print(
        f"demo data: {slices['items']} photos, {slices['night_items']} night frames (all roadwork positives)"
    )
    print(
        f"night slice of the holdout: {night['n']} items ({night['positives']} positive): generalist MCC "
        f"{fmt(night.get('generalist_mcc'))} (one class: MCC is undefined), accuracy {fmt(night.get('generalist_accuracy'))};"
        " no night specialist can be trained on one class"
    )
    low = slices["low_light"]
    diff = low.get("difference") or {}
    print(
        f"low-light slice (mean luminance < {slices['low_light_cut']:.3f}, darkest quarter): specialist trained on "
        f"{slices['low_light_train_items']} slice items with the gamma step; on {low['n']} holdout items "
        f"({low['positives']} positive): generalist MCC {fmt(low.get('generalist_mcc'))}, specialist MCC "
        f"{fmt(low.get('specialist_mcc'))}, difference {fmt(diff.get('mean'))} (95% CI {fmt(diff.get('ci_low'))} to "
        f"{fmt(diff.get('ci_high'))}); whole-holdout generalist MCC {fmt(slices['generalist_holdout_mcc'])}"
    )


def report_vlm(vlm: dict) -> None:
    if vlm is not None:
        print(
            f"VLM distillation (tiny random-init models, {vlm['items']} photos, {vlm['holdout_items']} holdout): "
            f"teacher MCC {fmt(vlm['teacher_mcc'])}; distilled student MCC {fmt(vlm['distilled_mcc'])}, agreement "
            f"with the teacher {fmt(vlm['distilled_agreement'].get('teacher_agreement'))}; student on human labels "
            f"alone MCC {fmt(vlm['human_only_mcc'])}, agreement {fmt(vlm['human_only_agreement'].get('teacher_agreement'))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150, help="classifier steps (generalist and specialist)")
    parser.add_argument(
        "--vlm-steps", type=int, default=20, help="student steps (the teacher gets twice as many)"
    )
    parser.add_argument("--vlm-items", type=int, default=48, help="photos in the VLM experiment")
    parser.add_argument("--skip-vlm", action="store_true")
    parser.add_argument("--skip-slices", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hardcase-specialists-") as tmp:
        slices = {} if args.skip_slices else slice_bench(Path(tmp), args)
        if slices:
            report_slices(slices)
        vlm = None if args.skip_vlm else vlm_bench(Path(tmp), args)
    report_vlm(vlm)
    if args.json:
        args.json.write_text(json.dumps({"slices": slices, "vlm": vlm}, indent=2, default=float))


if __name__ == "__main__":
    main()
