"""Every export format of a frozen dataset version, each loaded back with the tool that consumes it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction, write_dataset_dir
from ml.exports import EXPORT_FORMATS, export_dataset

SAMPLE_DATA = Path(
    os.environ.get("HARDCASE_SAMPLE_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)
ROADWORK = SAMPLE_DATA / "roadwork"
BOX_CLASSES = [
    "cone",
    "drum",
    "barricade",
    "board",
    "trailer",
    "other",
    "unknown",
    "machine",
    "sign",
    "barrier",
    "person",
]
CLASSES = ["no_roadwork", "roadwork"]


def _manifest_rows(source: str) -> list[dict]:
    with (ROADWORK / source / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def _normalised_boxes(row: dict) -> list[list]:
    width, height = float(row["width"]), float(row["height"])
    boxes = []
    for name, x1, y1, x2, y2 in json.loads(row["boxes_xyxy_json"]):
        cls = BOX_CLASSES.index("cone" if name == "traffic_cone" else name)
        boxes.append([x1 / width, y1 / height, x2 / width, y2 / height, cls])
    return boxes


def _roadwork_rows(n_tracon_positive: int, n_tracon_negative: int, n_vtti: int) -> list[tuple[str, dict]]:
    tracon = _manifest_rows("tracon")
    positives = [r for r in tracon if r["has_cone"] == "1"][:n_tracon_positive]
    negatives = [r for r in tracon if r["has_cone"] == "0"][:n_tracon_negative]
    vtti = [r for r in _manifest_rows("vtti") if r["has_box_annotations"] == "yes"][:n_vtti]
    vtti_label_only = [r for r in _manifest_rows("vtti") if r["has_box_annotations"] == "no"][:1]
    return (
        [("tracon", r) for r in positives + negatives]
        + [("vtti", r) for r in vtti]
        + [("vtti_label_only", r) for r in vtti_label_only]
    )


def _simulated_predictions(index: int, positive: bool, boxes: list[list]) -> list[StoredPrediction]:
    """Deterministic cascade outputs: a detector that mostly agrees, a VLM wrong on every 4th image."""
    detector_score = (0.8 if positive else 0.2) + 0.01 * (index % 7)
    vlm_wrong = index % 4 == 0
    vlm_score = 0.9 if positive != vlm_wrong else 0.1
    return [
        StoredPrediction(
            model="yolo-cascade",
            model_version="3",
            score=detector_score,
            boxes=[[*box[:5], 0.7] for box in boxes[:3]],
        ),
        StoredPrediction(
            model="vlm-qwen", model_version="1", score=vlm_score, label=CLASSES[int(vlm_score >= 0.5)]
        ),
    ]


def build_roadwork_dataset(
    root: Path, n_tracon_positive: int = 8, n_tracon_negative: int = 8, n_vtti: int = 8
) -> DatasetVersionDir:
    """A binary roadwork dataset version from the real sample images, human boxes and cascade predictions.

    Splits cycle train, train, val, holdout so every split holds positives and negatives.
    """
    records = []
    for index, (source, row) in enumerate(_roadwork_rows(n_tracon_positive, n_tracon_negative, n_vtti)):
        folder = "vtti" if source.startswith("vtti") else "tracon"
        positive = source.startswith("vtti") or row["has_cone"] == "1"
        boxes = [] if source == "vtti_label_only" else _normalised_boxes(row)
        records.append(
            DatasetRecord(
                item_id=1000 + index,
                external_id=f"{folder}/{row['file']}",
                image=str(ROADWORK / folder / row["file"]),
                label=int(positive),
                split=("train", "train", "val", "holdout")[index % 4],
                boxes=boxes,
                predictions=_simulated_predictions(index, positive, boxes),
                metadata={
                    "width": int(row["width"]),
                    "height": int(row["height"]),
                    "source": folder,
                    **({"is_night": row["day"] == "0"} if folder == "vtti" else {}),
                },
            )
        )
    info = DatasetInfo(project="roadwork", version=1, classes=CLASSES, box_classes=BOX_CLASSES)
    return write_dataset_dir(root, info, records)


@pytest.fixture(scope="module")
def roadwork(tmp_path_factory) -> DatasetVersionDir:
    return build_roadwork_dataset(tmp_path_factory.mktemp("dataset"))


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
    assert (row["item_id"], row["label_name"], row["split"]) == (first.item_id, "roadwork", "train")
    assert [v for box in row["boxes"] for v in box] == pytest.approx([v for box in first.boxes for v in box])
    assert json.loads(row["metadata"]) == first.metadata
    image = loaded["train"].cast_column("image", Image())[0]["image"]
    assert image.size == (first.metadata["width"], first.metadata["height"])


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
    expected = sorted(r.label for r in roadwork.records("train"))
    assert sorted(loaded["train"]["label"]) == expected
    assert loaded["test"].num_rows == len(roadwork.records("holdout"))


def test_yolo_export_writes_normalised_centre_boxes_for_every_human_box(roadwork, tmp_path):
    import yaml

    data_yaml = export_dataset(roadwork, "yolo", tmp_path / "yolo")
    data = yaml.safe_load(data_yaml.read_text())

    assert data["names"] == dict(enumerate(BOX_CLASSES))
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    record = next(r for r in roadwork.records("train") if r.boxes)
    lines = (data_yaml.parent / "labels" / "train" / f"{record.item_id}.txt").read_text().splitlines()
    cls, cx, cy, w, h = lines[0].split()
    x1, y1, x2, y2, box_cls = record.boxes[0]
    assert int(cls) == box_cls
    assert (float(cx), float(cy), float(w), float(h)) == pytest.approx(
        ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), abs=1e-6
    )
    assert len(lines) == len(record.boxes)


def test_yolo_export_keeps_negatives_as_empty_labels_and_drops_positives_without_boxes(roadwork, tmp_path):
    data_yaml = export_dataset(roadwork, "yolo", tmp_path / "yolo")
    labels = {p.stem: p for p in (data_yaml.parent / "labels").rglob("*.txt")}

    negative = next(r for r in roadwork.records() if r.label == 0)
    label_only = next(r for r in roadwork.records() if r.label == 1 and not r.boxes)
    assert labels[str(negative.item_id)].read_text() == ""
    assert str(label_only.item_id) not in labels


def test_yolo_export_links_images_instead_of_copying_them(roadwork, tmp_path):
    data_yaml = export_dataset(roadwork, "yolo", tmp_path / "yolo")
    record = roadwork.records("train")[0]
    exported = data_yaml.parent / "images" / "train" / f"{record.item_id}.jpg"

    assert exported.is_symlink() or os.stat(exported).st_ino == os.stat(roadwork.image_path(record)).st_ino


def test_coco_export_loads_with_pycocotools_with_pixel_boxes(roadwork, tmp_path):
    from pycocotools.coco import COCO

    out = export_dataset(roadwork, "coco", tmp_path / "coco")
    coco = COCO(str(out / "annotations" / "instances_train.json"))

    record = next(r for r in roadwork.records("train") if r.boxes)
    width, height = record.metadata["width"], record.metadata["height"]
    assert coco.imgs[record.item_id]["width"] == width
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[record.item_id]))
    assert len(anns) == len(record.boxes)
    x1, y1, x2, y2, cls = record.boxes[0]
    assert anns[0]["bbox"] == pytest.approx([x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height])
    assert anns[0]["area"] == pytest.approx((x2 - x1) * width * (y2 - y1) * height)
    assert coco.loadCats(anns[0]["category_id"])[0]["name"] == BOX_CLASSES[cls]
    assert (out / "images" / "train" / coco.imgs[record.item_id]["file_name"]).exists()


def test_label_studio_export_follows_the_task_format_with_annotations_and_predictions(roadwork, tmp_path):
    out = export_dataset(roadwork, "label_studio", tmp_path / "ls")
    tasks = json.loads((out / "tasks.json").read_text())
    config = (out / "label_config.xml").read_text()

    assert len(tasks) == len(roadwork.records())
    record = next(r for r in roadwork.records() if r.boxes)
    task = next(t for t in tasks if t["data"]["item_id"] == record.item_id)
    assert task["data"]["image"].startswith("/data/local-files/?d=")
    result = task["annotations"][0]["result"]
    assert result[0] == {
        "from_name": "label",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["roadwork"]},
    }
    rect = result[1]
    x1, y1, x2, y2, cls = record.boxes[0]
    assert rect["type"] == "rectanglelabels" and rect["original_width"] == record.metadata["width"]
    assert (rect["value"]["x"], rect["value"]["width"]) == pytest.approx((100 * x1, 100 * (x2 - x1)))
    assert rect["value"]["rectanglelabels"] == [BOX_CLASSES[cls]]
    assert [p["model_version"] for p in task["predictions"]] == ["yolo-cascade@3", "vlm-qwen@1"]
    assert task["predictions"][0]["score"] == pytest.approx(record.predictions[0].score)
    assert all(
        r["from_name"] in config and r["to_name"] in config for p in task["predictions"] for r in p["result"]
    )


def test_export_dataset_rejects_an_unknown_format(roadwork, tmp_path):
    with pytest.raises(ValueError, match="fmt: unknown export format"):
        export_dataset(roadwork, "pascal_voc", tmp_path)
    assert "yolo" in EXPORT_FORMATS and "dpo_pairs" in EXPORT_FORMATS
