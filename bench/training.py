"""What the training benchmarks share: a Reporter that times optimizer steps, a dataset of real roadwork photos."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class StepClock:
    """A Reporter that timestamps every optimizer step (the bench's only source of timing)."""

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
        """Steady state: the median step interval, so evaluation pauses and the first (compiling) step don't count."""
        intervals = [
            (t1 - t0) / (s1 - s0)
            for (s0, t0), (s1, t1) in zip(self.times, self.times[1:], strict=False)
            if s1 > s0
        ]
        return 1.0 / statistics.median(intervals) if intervals else float("nan")


def write_bench_dataset(root: Path, n_items: int, seed: int = 0):
    """Real photos, stratified 60/20/20, with simulated cascade predictions (a 'vlm' model among them)."""
    from ml.dataset import DatasetInfo, DatasetRecord, StoredPrediction, write_dataset_dir
    from ml.sample_data import roadwork_pool

    rng = np.random.default_rng(seed)
    pool, box_classes = roadwork_pool()
    chosen = [pool[i] for i in rng.permutation(len(pool))[:n_items]]
    records = []
    for index, item in enumerate(chosen):
        split = ("train", "train", "train", "val", "holdout")[index % 5]
        predictions = []
        for model, skill in (("yolo", 2.0), ("vlm", 1.0), ("clf", 0.8)):
            score = float(1 / (1 + np.exp(-(skill * (2 * item["label"] - 1) + rng.normal(0, 1.5)))))
            boxes = [[*b[:4], b[4], round(score, 3)] for b in item["boxes"]] if model == "yolo" else []
            label = ("yes" if score >= 0.5 else "no") if model == "vlm" else None
            predictions.append(StoredPrediction(model=model, score=score, label=label, boxes=boxes))
        records.append(
            DatasetRecord(
                item_id=index + 1,
                external_id=f"{item['source']}/{item['image'].stem}",
                image=str(item["image"]),
                label=item["label"],
                split=split,
                boxes=item["boxes"],
                predictions=predictions,
                metadata={"is_night": item["is_night"], "camera_id": f"cam-{index % 4}"},
            )
        )
    info = DatasetInfo(project="bench", version=1, content_hash=f"bench-{seed}", box_classes=box_classes)
    return write_dataset_dir(root, info, records)
