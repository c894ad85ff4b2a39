"""Exports of a frozen dataset version to the formats other tools read (HF, YOLO, COCO, Label Studio, DPO)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.exports._files import ImageLinker, has_box_annotation, link_image
from ml.exports.detection import export_coco, export_yolo
from ml.exports.dpo import export_dpo_pairs
from ml.exports.label_studio import export_label_studio
from ml.exports.tables import export_imagefolder, export_jsonl, export_parquet

EXPORTERS: dict[str, Callable[..., Path]] = {
    "jsonl": export_jsonl,
    "parquet": export_parquet,
    "imagefolder": export_imagefolder,
    "yolo": export_yolo,
    "coco": export_coco,
    "label_studio": export_label_studio,
    "dpo_pairs": export_dpo_pairs,
}
EXPORT_FORMATS: tuple[str, ...] = tuple(EXPORTERS)
# The formats that hold the images themselves; each exporter takes how to put them (`link`).
IMAGE_FORMATS = frozenset({"imagefolder", "yolo", "coco"})


def export_dataset(dataset: DatasetVersionDir, fmt: str, out: Path, link: ImageLinker = link_image) -> Path:
    """Writes `dataset` in format `fmt` under `out`; returns the main file or folder of the export. The
    images of an image format are put in place by `link` (by default linked into `out`)."""
    if fmt not in EXPORTERS:
        raise ValueError(f"fmt: unknown export format {fmt!r}; known: {list(EXPORT_FORMATS)}")
    if fmt in IMAGE_FORMATS:
        return EXPORTERS[fmt](dataset, Path(out), link)
    return EXPORTERS[fmt](dataset, Path(out))


__all__ = [
    "EXPORT_FORMATS",
    "IMAGE_FORMATS",
    "ImageLinker",
    "export_coco",
    "export_dataset",
    "export_dpo_pairs",
    "export_imagefolder",
    "export_jsonl",
    "export_label_studio",
    "export_parquet",
    "export_yolo",
    "has_box_annotation",
]
