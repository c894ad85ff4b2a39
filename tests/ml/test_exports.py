"""Every export format of a frozen dataset version, each loaded back with the tool that consumes it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image as PILImage

from ml.dataset import DatasetRecord, DatasetVersionDir, write_dataset_dir
from ml.exports import EXPORT_FORMATS, export_dataset

CLASSES = ["negative", "positive"]


@pytest.fixture
def roadwork(roadwork_dataset_dir) -> DatasetVersionDir:
    return roadwork_dataset_dir


def _first_boxed(dataset: DatasetVersionDir, split: str | None = None) -> DatasetRecord:
    return next(r for r in dataset.records(split) if r.boxes)


def _size(dataset: DatasetVersionDir, record: DatasetRecord) -> tuple[int, int]:
    with PILImage.open(dataset.image_path(record)) as image:
        return image.size


def test_jsonl_export_loads_with_hf_datasets_with_every_split_and_column(roadwork, tmp_path):
    from datasets import Image, load_dataset

    out = export_dataset(roadwork, "jsonl", tmp_path / "jsonl")
    files = {s: str(out / f"{s}.jsonl") for s in ("train", "val", "holdout")}
    loaded = load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf_cache"))

    assert {s: loaded[s].num_rows for s in loaded} == {s: len(roadwork.records(s)) for s in loaded}
    assert set(loaded["train"].column_names) == {
        "item_id",
        "external_id",
        "image",
        "label",
        "label_name",
        "split",
        "boxes",
        "metadata",
    }
    first = roadwork.records("train")[0]
    row = loaded["train"][0]
    assert (row["item_id"], row["label_name"], row["split"]) == (first.item_id, CLASSES[first.label], "train")
    assert [v for box in row["boxes"] for v in box] == pytest.approx([v for box in first.boxes for v in box])
    assert json.loads(row["metadata"]) == first.metadata
    image = loaded["train"].cast_column("image", Image())[0]["image"]
    assert image.size == _size(roadwork, first)


def test_parquet_export_loads_with_hf_datasets_with_the_same_rows_as_the_manifest(roadwork, tmp_path):
    from datasets import load_dataset

    out = export_dataset(roadwork, "parquet", tmp_path / "parquet")
    files = {s: str(out / f"{s}.parquet") for s in ("train", "val", "holdout")}
    loaded = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf_cache"))

    for split in ("train", "val", "holdout"):
        records = roadwork.records(split)
        assert loaded[split]["item_id"] == [r.item_id for r in records]
        assert loaded[split]["label"] == [r.label for r in records]
        assert [len(b) for b in loaded[split]["boxes"]] == [len(r.boxes) for r in records]


def test_imagefolder_export_loads_with_hf_imagefolder_with_class_labels_from_folders(roadwork, tmp_path):
    from datasets import load_dataset

    out = export_dataset(roadwork, "imagefolder", tmp_path / "folder")
    loaded = load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "hf_cache"))

    assert sorted(loaded) == ["test", "train", "validation"]
    assert loaded["train"].features["label"].names == CLASSES
    assert sorted(loaded["train"]["label"]) == sorted(r.label for r in roadwork.records("train"))
    assert loaded["test"].num_rows == len(roadwork.records("holdout"))


def test_yolo_export_writes_normalised_centre_boxes_for_every_human_box(roadwork, tmp_path):
    import yaml

    data_yaml = export_dataset(roadwork, "yolo", tmp_path / "yolo")
    data = yaml.safe_load(data_yaml.read_text())

    assert "path" not in data and str(tmp_path) not in data_yaml.read_text()  # portable once downloaded
    assert data["names"] == dict(enumerate(roadwork.info.box_classes))
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    record = _first_boxed(roadwork, "train")
    lines = (data_yaml.parent / "labels" / "train" / f"{record.item_id}.txt").read_text().splitlines()
    assert len(lines) == len(record.boxes)
    cls, cx, cy, w, h = lines[0].split()
    x1, y1, x2, y2, box_cls = record.boxes[0]
    assert int(cls) == box_cls
    expected = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    assert (float(cx), float(cy), float(w), float(h)) == pytest.approx(expected, abs=1e-6)


def test_yolo_export_keeps_negatives_as_empty_labels_and_drops_positives_without_boxes(roadwork, tmp_path):
    records = roadwork.records()
    label_only = next(r for r in records if r.boxes)
    label_only.boxes = []  # a positive labelled at image level only
    dataset = write_dataset_dir(tmp_path / "version", roadwork.info, records)
    data_yaml = export_dataset(dataset, "yolo", tmp_path / "yolo")
    labels = {p.stem: p for p in (data_yaml.parent / "labels").rglob("*.txt")}

    negative = next(r for r in records if r.label == 0)
    assert labels[str(negative.item_id)].read_text() == ""
    assert str(label_only.item_id) not in labels


def test_yolo_export_links_images_instead_of_copying_them(roadwork, tmp_path):
    data_yaml = export_dataset(roadwork, "yolo", tmp_path / "yolo")
    record = roadwork.records("train")[0]
    source = roadwork.image_path(record)
    exported = data_yaml.parent / "images" / "train" / f"{record.item_id}{source.suffix.lower()}"

    assert exported.is_symlink() or os.stat(exported).st_ino == os.stat(source).st_ino


def test_coco_export_loads_with_pycocotools_with_pixel_boxes(roadwork, tmp_path):
    from pycocotools.coco import COCO

    out = export_dataset(roadwork, "coco", tmp_path / "coco")
    coco = COCO(str(out / "annotations" / "instances_train.json"))

    record = _first_boxed(roadwork, "train")
    width, height = _size(roadwork, record)
    assert (coco.imgs[record.item_id]["width"], coco.imgs[record.item_id]["height"]) == (width, height)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[record.item_id]))
    assert len(anns) == len(record.boxes)
    x1, y1, x2, y2, cls = record.boxes[0]
    assert anns[0]["bbox"] == pytest.approx([x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height])
    assert anns[0]["area"] == pytest.approx((x2 - x1) * width * (y2 - y1) * height)
    assert coco.loadCats(anns[0]["category_id"])[0]["name"] == roadwork.info.box_classes[cls]
    assert (out / "images" / "train" / coco.imgs[record.item_id]["file_name"]).exists()


def test_label_studio_export_follows_the_task_format_with_annotations_and_predictions(roadwork, tmp_path):
    out = export_dataset(roadwork, "label_studio", tmp_path / "ls")
    tasks = json.loads((out / "tasks.json").read_text())
    config = (out / "label_config.xml").read_text()

    assert len(tasks) == len(roadwork.records())
    record = _first_boxed(roadwork)
    task = next(t for t in tasks if t["data"]["item_id"] == record.item_id)
    assert task["data"]["image"].startswith("/data/local-files/?d=")
    choice, rect = task["annotations"][0]["result"][:2]
    assert choice == {
        "from_name": "label",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["positive"]},
    }
    x1, y1, x2, y2, cls = record.boxes[0]
    assert rect["type"] == "rectanglelabels" and rect["original_width"] == _size(roadwork, record)[0]
    assert (rect["value"]["x"], rect["value"]["width"]) == pytest.approx((100 * x1, 100 * (x2 - x1)))
    assert rect["value"]["rectanglelabels"] == [roadwork.info.box_classes[cls]]
    assert [p["model_version"] for p in task["predictions"]] == [f"{p.model}@1" for p in record.predictions]
    first, said = record.predictions[0], task["predictions"][0]
    positive = said["result"][0]["value"]["choices"] == ["positive"]
    # Label Studio's score is the confidence of what the result says: P(positive) only when it says positive
    assert said["score"] == pytest.approx(first.score if positive else 1 - first.score)
    results = [r for p in task["predictions"] for r in p["result"]]
    assert results and all(f'name="{r["from_name"]}" toName="{r["to_name"]}"' in config for r in results)


def test_export_dataset_rejects_an_unknown_format(roadwork, tmp_path):
    with pytest.raises(ValueError, match="fmt: unknown export format"):
        export_dataset(roadwork, "pascal_voc", tmp_path)
    assert "yolo" in EXPORT_FORMATS and "dpo_pairs" in EXPORT_FORMATS


def test_dpo_pairs_export_prefers_the_human_answer_over_the_vlms_wrong_one(roadwork, tmp_path):
    from datasets import load_dataset

    out = export_dataset(roadwork, "dpo_pairs", tmp_path / "dpo")
    pairs = load_dataset("json", data_files=str(out / "train.jsonl"), cache_dir=str(tmp_path / "hf"))["train"]

    records = {r.item_id: r for r in roadwork.records("train")}
    wrong = [
        r.item_id
        for r in records.values()
        if (next(p for p in r.predictions if p.model == "vlm").score >= 0.5) != (r.label == 1)
    ]
    assert wrong and set(wrong) <= set(pairs["item_id"])
    pair = pairs[pairs["item_id"].index(wrong[0])]
    assert pair["reason"] == "disagreement" and pair["chosen"] != pair["rejected"]
    assert [Path(p).resolve() for p in pair["images"]] == [roadwork.image_path(records[wrong[0]]).resolve()]
    assert set(pair) >= {"prompt", "chosen", "rejected", "images"}
