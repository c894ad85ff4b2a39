"""Box exports: YOLO (ultralytics data.yaml + label .txt files) and COCO instances JSON, streamed from the manifest."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import yaml

from ml.dataset import SPLITS, DatasetInfo, DatasetRecord, DatasetVersionDir
from ml.exports._files import (
    IN_FOLDER,
    SPLIT_DIRS,
    ExportFiles,
    box_class_names,
    has_box_annotation,
    image_size,
    json_bytes,
    label_name,
)


def box_labelled_records(dataset: DatasetVersionDir, split: str | None = None) -> Iterator[DatasetRecord]:
    info = dataset.info
    return (r for r in dataset.iter_records(split) if has_box_annotation(info, r))  # type: ignore[arg-type]


def yolo_label_lines(record: DatasetRecord) -> list[str]:
    """`class cx cy w h`, normalised, from the human boxes `[x1, y1, x2, y2, class]` (already normalised)."""
    lines = []
    for x1, y1, x2, y2, cls in (box[:5] for box in record.boxes):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def export_yolo(dataset: DatasetVersionDir, out: Path, files: ExportFiles = IN_FOLDER) -> Path:
    """`out/data.yaml`, `out/images/<split>/`, `out/labels/<split>/` (holdout as `test`); returns data.yaml.

    Only images whose boxes are complete are exported (see `has_box_annotation`); images and label files go
    to `files` (by default linked and written into `out`).
    """
    out = out.resolve()
    # No `path`: ultralytics then resolves the splits against data.yaml's own folder, which holds both on the
    # worker and for whoever downloads the export (a server path, or `.` read against the cwd, would not).
    data = {"names": dict(enumerate(box_class_names(dataset.info)))}
    for split_dir in (SPLIT_DIRS[split] for split in SPLITS):
        (out / "images" / split_dir).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split_dir).mkdir(parents=True, exist_ok=True)
    exported: set[str] = set()
    for record in box_labelled_records(dataset):
        split_dir = SPLIT_DIRS[record.split]
        exported.add(record.split)
        stem = str(record.item_id)  # unique within a version whatever the original names were
        files.add_image(dataset.image_path_text(record), os.path.join(out, "images", split_dir), stem)
        label_file = os.path.join(out, "labels", split_dir, f"{stem}.txt")
        files.write(label_file, "".join(f"{x}\n" for x in yolo_label_lines(record)).encode())
    for split in SPLITS:
        if split in exported or split != "holdout":
            data[SPLIT_DIRS[split]] = f"images/{SPLIT_DIRS[split]}"
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


class _CocoSplitWriter:
    """One split's instances JSON, written as the records stream by: images go straight to the file,
    annotations to a spool file appended at the end (the bytes one encoding of the whole dict would give)."""

    def __init__(self, path: Path, spool: Path) -> None:
        self.fh = path.open("wb")
        self.spool = spool.open("w+b")
        self.images = self.annotations = 0

    def start(self, info: dict) -> None:
        self.fh.write(b'{"info":' + json_bytes(info) + b',"images":[')

    def add_image(self, image: dict) -> None:
        self.fh.write((b"," if self.images else b"") + json_bytes(image))
        self.images += 1

    def add_annotation(self, annotation: dict) -> None:
        self.spool.write((b"," if self.annotations else b"") + json_bytes(annotation))
        self.annotations += 1

    def finish(self, categories: list[dict]) -> None:
        self.fh.write(b'],"annotations":[')
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, self.fh)
        self.fh.write(b'],"categories":' + json_bytes(categories) + b"}")
        self.close()

    def close(self) -> None:
        self.fh.close()
        self.spool.close()


def coco_image(
    dataset: DatasetVersionDir, info: DatasetInfo, record: DatasetRecord, images_dir: str, files: ExportFiles
) -> dict:
    name = files.add_image(dataset.image_path_text(record), images_dir, str(record.item_id))
    width, height = image_size(dataset, record)
    return {
        "id": record.item_id,
        "file_name": name,
        "width": width,
        "height": height,
        "external_id": record.external_id,
        "label": label_name(info, record),
    }


def coco_annotations(record: DatasetRecord, width: int, height: int) -> Iterator[dict]:
    """Pixel xywh boxes; `id` is left to the caller (numbered within the split)."""
    for x1, y1, x2, y2, cls in (box[:5] for box in record.boxes):
        w, h = (x2 - x1) * width, (y2 - y1) * height
        yield {
            "id": 0,
            "image_id": record.item_id,
            "category_id": int(cls) + 1,
            "bbox": [x1 * width, y1 * height, w, h],
            "area": w * h,
            "iscrowd": 0,
        }


def export_coco(dataset: DatasetVersionDir, out: Path, files: ExportFiles = IN_FOLDER) -> Path:
    """`out/annotations/instances_<split>.json` + `out/images/<split>/` (holdout as `test`), pixel xywh."""
    info = dataset.info
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    header = {"description": f"{info.project} v{info.version}", "version": str(info.version)}
    categories = [
        {"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(box_class_names(info))
    ]
    with tempfile.TemporaryDirectory(dir=out) as spool, ExitStack() as stack:
        writers = {}
        for split in SPLITS:
            split_dir = SPLIT_DIRS[split]
            writer = _CocoSplitWriter(
                out / "annotations" / f"instances_{split_dir}.json", Path(spool) / f"{split_dir}.json"
            )
            stack.callback(writer.close)
            writer.start(header)
            writers[split] = writer
        for record in box_labelled_records(dataset):
            writer = writers[record.split]
            images_dir = os.path.join(out, "images", SPLIT_DIRS[record.split])
            image = coco_image(dataset, info, record, images_dir, files)
            writer.add_image(image)
            for annotation in coco_annotations(record, image["width"], image["height"]):
                writer.add_annotation({**annotation, "id": writer.annotations + 1})
        for writer in writers.values():
            writer.finish(categories)
    return out
