"""The real sample photos in shared/data (roadwork positives, non-road negatives), read from their manifests,
and the simulated cascade predictions the demo and the roadwork simulator give them.

The folder is configurable with HARDCASE_SAMPLE_DATA; its licenses allow test and demo use, not redistribution,
so nothing here copies it. `synthetic_roadwork_images` stands in where the folder is absent.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def sample_data_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("HARDCASE_SAMPLE_DATA", default))


def has_sample_data(data_dir: Path | None = None) -> bool:
    return ((data_dir or sample_data_dir()) / "roadwork" / "tracon" / "manifest.csv").exists()


# The two sources name the same object differently; the demo and tests use one class list.
CLASS_ALIASES = {"traffic_cone": "cone"}


def _yolo_boxes(label_file: Path, class_map: list[int]) -> list[list]:
    """YOLO (class cx cy w h, normalised) -> [x1, y1, x2, y2, class_index], normalised; `class_map` takes
    the file's class numbers to the merged class list."""
    if not label_file.exists():
        return []
    boxes = []
    for line in label_file.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:])
        corners = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        boxes.append([*(min(max(v, 0.0), 1.0) for v in corners), class_map[cls]])  # some spill over the edge
    return boxes


def _class_names(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [CLASS_ALIASES.get(name, name) for name in names]


def merged_box_classes(*sources: list[str]) -> tuple[list[str], list[list[int]]]:
    """One class list for several sources (first seen first), and each source's map into it."""
    merged: list[str] = []
    for names in sources:
        merged.extend(name for name in names if name not in merged)
    return merged, [[merged.index(name) for name in names] for names in sources]


def roadwork_pool(data_dir: Path | None = None) -> tuple[list[dict], list[str]]:
    """Every real photo with its label, boxes and day/night flag; and the merged box class names
    (the dashcam set's classes; the cone set's `traffic_cone` is its `cone`).

    Each entry: {"source", "image" (Path), "label" (1 = roadwork), "boxes" ([x1,y1,x2,y2,class] normalised),
    "is_night"}.
    """
    data_dir = data_dir or sample_data_dir()
    tracon, vtti = data_dir / "roadwork" / "tracon", data_dir / "roadwork" / "vtti"
    box_classes, (vtti_map, tracon_map) = merged_box_classes(
        _class_names(vtti / "classes.txt"), _class_names(tracon / "classes.txt")
    )
    pool = []
    with (tracon / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            image = tracon / row["file"]
            boxes = _yolo_boxes(tracon / "labels" / (image.stem + ".txt"), tracon_map)
            pool.append(
                {
                    "source": "tracon",
                    "image": image,
                    "label": int(row["has_cone"]),
                    "boxes": boxes,
                    "is_night": False,
                }
            )
    with (vtti / "manifest.csv").open() as fh:
        for row in csv.DictReader(fh):
            image = vtti / row["file"]
            boxes = _yolo_boxes(vtti / "labels_yolo" / (image.stem + ".txt"), vtti_map)
            pool.append(
                {"source": "vtti", "image": image, "label": 1, "boxes": boxes, "is_night": row["day"] == "0"}
            )
    for image in sorted((data_dir / "negatives").iterdir()):
        if image.suffix.lower() in IMAGE_SUFFIXES:
            pool.append({"source": "negatives", "image": image, "label": 0, "boxes": [], "is_night": False})
    return pool, box_classes


def synthetic_roadwork_images(n: int, seed: int = 0, size: int = 160) -> list[dict]:
    """Drawn stand-ins (grey road, orange cones on positives) for machines without the sample folder."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for index in range(n):
        label = int(rng.random() < 0.3)
        image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(60, 140, 3)))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, size * 0.6, size, size], fill=(70, 70, 75))
        boxes = []
        for _ in range(int(rng.integers(1, 4)) if label else 0):
            x, y, w = float(rng.uniform(10, size - 40)), float(rng.uniform(size * 0.55, size - 40)), 20.0
            draw.polygon([(x, y + 30), (x + w / 2, y), (x + w, y + 30)], fill=(255, 120, 0))
            boxes.append([x / size, y / size, (x + w) / size, (y + 30) / size, 0])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append(
            {
                "source": "synthetic",
                "image_bytes": buffer.getvalue(),
                "name": f"synthetic-{index:04d}",
                "label": label,
                "boxes": boxes,
                "is_night": bool(rng.random() < 0.2),
            }
        )
    return out


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def simulated_cascade(
    label: int,
    boxes: list[list],
    is_night: bool,
    rng: np.random.Generator,
    class_names: list[str] | None = None,
) -> list[dict]:
    """Three models with different blind spots: the detector misses at night, the VLM is confidently wrong
    now and then, the classifier is noisy everywhere. Their disagreements are what the queue surfaces.
    With `class_names` the detector names its box classes, as a real cascade does ("barrier")."""
    sign = 1 if label else -1
    det_skill = 0.6 if is_night else 2.5
    det_score = _sigmoid(sign * det_skill + rng.normal(0, 1.0))

    def cls(index: int) -> int | str:
        return class_names[int(index)] if class_names else int(index)

    det_boxes = [
        [*(float(np.clip(v + rng.normal(0, 0.01), 0, 1)) for v in b[:4]), cls(b[4]), round(det_score, 3)]
        for b in boxes
        if det_score > 0.3
    ]
    det_boxes = [
        [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3]), b[4], b[5]] for b in det_boxes
    ]
    vlm_wrong = rng.random() < (0.35 if is_night else 0.15)
    vlm_says_yes = bool(label) != vlm_wrong
    vlm_score = float(np.clip((0.9 if vlm_says_yes else 0.1) + rng.normal(0, 0.05), 0.01, 0.99))
    clf_score = _sigmoid(sign * 1.2 + rng.normal(0, 1.3))
    return [
        {
            "model": "yolo-cones",
            "model_version": "v8n-2026.10",
            "score": round(det_score, 4),
            "boxes": det_boxes,
        },
        {"model": "vit-roadwork", "model_version": "b16-lora-3", "score": round(clf_score, 4)},
        {
            "model": "qwen2.5-vl",
            "model_version": "7b-instruct",
            "score": round(vlm_score, 4),
            "label": "yes" if vlm_says_yes else "no",
        },
    ]
