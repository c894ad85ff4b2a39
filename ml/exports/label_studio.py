"""Label Studio tasks JSON: human labels as annotations, every cascade model's output as a prediction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import quoteattr

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction
from ml.exports._files import box_class_names, image_size, json_bytes, resolved

CHOICES_NAME, BOXES_NAME, IMAGE_NAME = "label", "box", "image"


def local_files_url(path: Path | str) -> str:
    """Label Studio's local-storage URL, valid with LOCAL_FILES_DOCUMENT_ROOT=/ and local files serving on."""
    return "/data/local-files/?d=" + resolved(path).lstrip("/")


def labeling_config(info: DatasetInfo) -> str:
    """The project's labeling config; its control names match `from_name`/`to_name` in the tasks."""
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in info.classes)
    boxes = "".join(f"<Label value={quoteattr(c)}/>" for c in box_class_names(info))
    return (
        f"<View>\n  <Header value={quoteattr(info.question)}/>\n"
        f'  <Image name="{IMAGE_NAME}" value="$image"/>\n'
        f'  <Choices name="{CHOICES_NAME}" toName="{IMAGE_NAME}" choice="single">{choices}</Choices>\n'
        f'  <RectangleLabels name="{BOXES_NAME}" toName="{IMAGE_NAME}">{boxes}</RectangleLabels>\n</View>\n'
    )


def choice_result(choice: str) -> dict:
    return {
        "from_name": CHOICES_NAME,
        "to_name": IMAGE_NAME,
        "type": "choices",
        "value": {"choices": [choice]},
    }


def rectangle_result(box: list, class_name: str, size: tuple[int, int], score: float | None = None) -> dict:
    """A normalised `[x1, y1, x2, y2, ...]` box in Label Studio's percent coordinates."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    result = {
        "from_name": BOXES_NAME,
        "to_name": IMAGE_NAME,
        "type": "rectanglelabels",
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {
            "x": 100 * x1,
            "y": 100 * y1,
            "width": 100 * (x2 - x1),
            "height": 100 * (y2 - y1),
            "rotation": 0,
            "rectanglelabels": [class_name],
        },
    }
    if score is not None:
        result["score"] = float(score)
    return result


def box_class_name(classes: list[str], cls: int | float | str) -> str:
    return cls if isinstance(cls, str) else classes[int(cls)]


def predicted_choice(info: DatasetInfo, prediction: StoredPrediction) -> str | None:
    if prediction.label in info.classes:
        return prediction.label
    if prediction.probs:
        return info.classes[max(range(len(prediction.probs)), key=prediction.probs.__getitem__)]
    if prediction.score is not None and len(info.classes) == 2:
        return info.classes[int(prediction.score >= 0.5)]
    return None


def prediction_entry(info: DatasetInfo, prediction: StoredPrediction, size: tuple[int, int]) -> dict:
    classes = box_class_names(info)
    result = []
    choice = predicted_choice(info, prediction)
    if choice is not None and info.kind != "detection":
        result.append(choice_result(choice))
    for box in prediction.boxes:
        score = box[5] if len(box) > 5 else None
        result.append(rectangle_result(box, box_class_name(classes, box[4]), size, score))
    version = (
        f"{prediction.model}@{prediction.model_version}" if prediction.model_version else prediction.model
    )
    entry = {"model_version": version, "result": result}
    confidence = result_confidence(info, prediction, choice)
    if confidence is not None:
        entry["score"] = confidence
    return entry


def result_confidence(info: DatasetInfo, prediction: StoredPrediction, choice: str | None) -> float | None:
    """Label Studio's prediction score: how sure the model is of what its result says (what uncertainty
    sampling sorts on), not P(positive). For two classes it is P(positive) when the result says positive (the
    positive choice; for a detector, boxes drawn) and 1 - P(positive) otherwise, so P(positive) is recoverable."""
    if prediction.probs and choice in info.classes and len(prediction.probs) == len(info.classes):
        return float(prediction.probs[info.classes.index(choice)])
    if prediction.score is None or len(info.classes) != 2:
        return None
    says_positive = bool(prediction.boxes) if info.kind == "detection" else choice == info.classes[1]
    return float(prediction.score if says_positive else 1.0 - prediction.score)


def human_annotation(info: DatasetInfo, record: DatasetRecord, size: tuple[int, int]) -> dict | None:
    result = []
    if record.label is not None and info.kind != "detection":
        result.append(choice_result(info.classes[record.label]))
    classes = box_class_names(info)
    result.extend(rectangle_result(box, box_class_name(classes, box[4]), size) for box in record.boxes)
    return {"result": result} if result else None


def label_studio_task(
    dataset: DatasetVersionDir,
    record: DatasetRecord,
    image_url: Callable[[str], str],
    info: DatasetInfo | None = None,
) -> dict:
    info = info or dataset.info
    size = image_size(dataset, record)
    annotation = human_annotation(info, record, size)
    return {
        "data": {
            "image": image_url(dataset.image_path_text(record)),
            "item_id": record.item_id,
            "external_id": record.external_id,
            "split": record.split,
        },
        "annotations": [annotation] if annotation else [],
        "predictions": [prediction_entry(info, p, size) for p in record.predictions],
    }


def write_json_array(items: Iterable[dict], fh: BinaryIO) -> None:
    """A JSON array written one item at a time, one item per line: a file that diff and grep read line by
    line, and memory that stays flat whatever the version's size."""
    first = True
    for item in items:
        fh.write((b"[\n" if first else b",\n") + json_bytes(item))
        first = False
    fh.write(b"[]\n" if first else b"\n]\n")


def export_label_studio(
    dataset: DatasetVersionDir, out: Path, image_url: Callable[[str], str] = local_files_url
) -> Path:
    """`out/tasks.json` (to import into Label Studio) and `out/label_config.xml` (the matching config)."""
    out.mkdir(parents=True, exist_ok=True)
    info = dataset.info
    with (out / "tasks.json").open("wb") as fh:
        write_json_array(
            (label_studio_task(dataset, record, image_url, info) for record in dataset.iter_records()), fh
        )
    (out / "label_config.xml").write_text(labeling_config(info))
    return out
