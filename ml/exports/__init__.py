"""Exports of a frozen dataset version to the formats other tools read (HF, YOLO, COCO, Label Studio, DPO)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ml.dataset import DatasetVersionDir
from ml.exports._files import IN_FOLDER, ExportFiles, has_box_annotation
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
# The formats that hold the images themselves; each exporter takes where to put them (`files`).
IMAGE_FORMATS = frozenset({"imagefolder", "yolo", "coco"})


def export_dataset(dataset: DatasetVersionDir, fmt: str, out: Path, files: ExportFiles = IN_FOLDER) -> Path:
    """Writes `dataset` in format `fmt` under `out`; returns the main file or folder of the export. The
    images of an image format (and YOLO's label files) go to `files` (by default into `out` itself)."""
    if fmt not in EXPORTERS:
        raise ValueError(f"fmt: unknown export format {fmt!r}; known: {list(EXPORT_FORMATS)}")
    if fmt in IMAGE_FORMATS:
        return EXPORTERS[fmt](dataset, Path(out), files)
    return EXPORTERS[fmt](dataset, Path(out))


__all__ = [
    "EXPORT_FORMATS",
    "IMAGE_FORMATS",
    "IN_FOLDER",
    "ExportFiles",
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
