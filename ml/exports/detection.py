"""Box exports: YOLO (ultralytics data.yaml + label .txt files) and COCO instances JSON."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ml.dataset import SPLITS, DatasetRecord, DatasetVersionDir
from ml.exports._files import (
    SPLIT_DIRS,
    box_class_names,
    export_file_name,
    has_box_annotation,
    image_size,
    label_name,
    link_image,
)


def box_labelled_records(dataset: DatasetVersionDir, split: str) -> list[DatasetRecord]:
    info = dataset.info
    return [r for r in dataset.records(split) if has_box_annotation(info, r)]  # type: ignore[arg-type]


def yolo_label_lines(record: DatasetRecord) -> list[str]:
    """`class cx cy w h`, normalised, from the human boxes `[x1, y1, x2, y2, class]` (already normalised)."""
    lines = []
    for x1, y1, x2, y2, cls in (box[:5] for box in record.boxes):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def export_yolo(dataset: DatasetVersionDir, out: Path) -> Path:
    """`out/data.yaml`, `out/images/<split>/`, `out/labels/<split>/` (holdout as `test`); returns data.yaml.

    Only images whose boxes are complete are exported (see `has_box_annotation`); images are linked.
    """
    out = out.resolve()
    # No `path`: ultralytics then resolves the splits against data.yaml's own folder, which holds both on the
    # worker and for whoever downloads the export (a server path, or `.` read against the cwd, would not).
    data = {"names": dict(enumerate(box_class_names(dataset.info)))}
    for split in SPLITS:
        split_dir = SPLIT_DIRS[split]
        (out / "images" / split_dir).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split_dir).mkdir(parents=True, exist_ok=True)
        records = box_labelled_records(dataset, split)
        for record in records:
            name = export_file_name(dataset, record)
            link_image(dataset.image_path(record), out / "images" / split_dir / name)
            lines = yolo_label_lines(record)
            (out / "labels" / split_dir / f"{Path(name).stem}.txt").write_text(
                "".join(f"{x}\n" for x in lines)
            )
        if records or split != "holdout":
            data[split_dir] = f"images/{split_dir}"
    data_yaml = out / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def coco_split(dataset: DatasetVersionDir, split: str, images_dir: Path) -> dict:
    info = dataset.info
    classes = box_class_names(info)
    images, annotations = [], []
    for record in box_labelled_records(dataset, split):
        name = export_file_name(dataset, record)
        link_image(dataset.image_path(record), images_dir / name)
        width, height = image_size(dataset, record)
        images.append(
            {
                "id": record.item_id,
                "file_name": name,
                "width": width,
                "height": height,
                "external_id": record.external_id,
                "label": label_name(info, record),
            }
        )
        for x1, y1, x2, y2, cls in (box[:5] for box in record.boxes):
            w, h = (x2 - x1) * width, (y2 - y1) * height
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record.item_id,
                    "category_id": int(cls) + 1,
                    "bbox": [x1 * width, y1 * height, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)]
    return {
        "info": {"description": f"{info.project} v{info.version}", "version": str(info.version)},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def export_coco(dataset: DatasetVersionDir, out: Path) -> Path:
    """`out/annotations/instances_<split>.json` + `out/images/<split>/` (holdout as `test`), pixel xywh."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        split_dir = SPLIT_DIRS[split]
        coco = coco_split(dataset, split, out / "images" / split_dir)
        (out / "annotations" / f"instances_{split_dir}.json").write_text(json.dumps(coco))
    return out
