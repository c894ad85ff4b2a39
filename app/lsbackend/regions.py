"""Label Studio's labeling config and result regions in Hardcase's terms: choices <-> classes, rectangles in
percent <-> normalised boxes, and how a task names its Hardcase item."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from ml.exports.label_studio import BOXES_NAME, CHOICES_NAME, IMAGE_NAME, choice_result, rectangle_result

MAX_CONFIG_CHARS = 200_000
EXTERNAL_ID_KEY = "external_id"  # task data naming the Hardcase item; otherwise the image URL does


class LabelingConfigError(ValueError):
    """The labeling config is not XML, or has no <Image> to label."""


@dataclass(frozen=True)
class LabelingConfig:
    """The controls of a Label Studio labeling config that Hardcase reads and writes (names as in the XML)."""

    image_name: str = IMAGE_NAME
    image_key: str = "image"  # the task data key of `value="$image"`
    choices_name: str | None = CHOICES_NAME
    choice_values: tuple[str, ...] = ()
    boxes_name: str | None = BOXES_NAME
    box_labels: tuple[str, ...] = ()


def parse_labeling_config(xml: str | None) -> LabelingConfig:
    """The first <Image>, and the first <Choices> and <RectangleLabels> pointing at it; the names of
    Hardcase's own Label Studio export when no config is given."""
    if not xml or not xml.strip():
        return LabelingConfig()
    if len(xml) > MAX_CONFIG_CHARS:
        raise LabelingConfigError(f"the labeling config is longer than {MAX_CONFIG_CHARS} characters")
    try:
        root = ET.fromstring(xml)  # expat refuses external entities and bounds entity expansion
    except ET.ParseError as exc:
        raise LabelingConfigError(f"the labeling config is not XML: {exc}") from exc
    image = next(root.iter("Image"), None)
    if image is None or not image.get("name") or not image.get("value", "").startswith("$"):
        raise LabelingConfigError('the labeling config has no <Image name="..." value="$..."/>')
    name = image.get("name", "")
    choices = _control(root, "Choices", name)
    boxes = _control(root, "RectangleLabels", name)
    return LabelingConfig(
        image_name=name,
        image_key=image.get("value", "")[1:],
        choices_name=choices.get("name") if choices is not None else None,
        choice_values=_values(choices, "Choice"),
        boxes_name=boxes.get("name") if boxes is not None else None,
        box_labels=_values(boxes, "Label"),
    )


def _control(root: ET.Element, tag: str, image_name: str) -> ET.Element | None:
    found = [c for c in root.iter(tag) if c.get("name")]
    return next((c for c in found if c.get("toName") == image_name), found[0] if found else None)


def _values(control: ET.Element | None, tag: str) -> tuple[str, ...]:
    if control is None:
        return ()
    return tuple(v for v in (c.get("value") for c in control.iter(tag)) if v)


# --- which item a task is ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskKey:
    """What a task's data says about its Hardcase item: an explicit external id and/or its image URL."""

    external_id: str | None
    image_url: str | None

    def candidates(self) -> list[str]:
        return [v for v in (self.external_id, self.image_url) if v]


def task_key(task: Any, config: LabelingConfig) -> TaskKey:
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        return TaskKey(None, None)
    external_id = data.get(EXTERNAL_ID_KEY)
    image = data.get(config.image_key)
    return TaskKey(
        external_id if isinstance(external_id, str) and external_id else None,
        image if isinstance(image, str) and image else None,
    )


# --- names ---------------------------------------------------------------------------------------------------


def match_name(names: list[str] | tuple[str, ...], value: Any) -> int | None:
    """The index of `value` among `names`: exact, else ignoring case, spaces and underscores."""
    if not isinstance(value, str):
        return None
    if value in names:
        return list(names).index(value)
    wanted = _folded(value)
    return next((i for i, name in enumerate(names) if _folded(name) == wanted), None)


def _folded(name: str) -> str:
    return name.strip().lower().replace("_", " ").replace("-", " ")


# --- Hardcase -> Label Studio ------------------------------------------------------------------------------


def choice_region(config: LabelingConfig, class_name: str, score: float | None) -> dict | None:
    """The <Choices> region naming `class_name` (as the config spells it); None if the config lacks it."""
    if config.choices_name is None:
        return None
    index = match_name(config.choice_values, class_name) if config.choice_values else None
    if config.choice_values and index is None:
        return None
    value = config.choice_values[index] if index is not None else class_name
    region = {**choice_result(value), "from_name": config.choices_name, "to_name": config.image_name}
    if score is not None:
        region["score"] = float(score)
    return region


def box_region(
    config: LabelingConfig, box: list, class_name: str, size: tuple[int | None, int | None]
) -> dict | None:
    """A normalised `[x1, y1, x2, y2, class, score?]` box as a RectangleLabels region in percent."""
    if config.boxes_name is None:
        return None
    index = match_name(config.box_labels, class_name) if config.box_labels else None
    if config.box_labels and index is None:
        return None
    label = config.box_labels[index] if index is not None else class_name
    score = box[5] if len(box) > 5 else None
    region = rectangle_result(box, label, size, score)  # type: ignore[arg-type]
    region.update(from_name=config.boxes_name, to_name=config.image_name)
    if size[0] is None or size[1] is None:
        del region["original_width"], region["original_height"]
    return region


# --- Label Studio -> Hardcase ------------------------------------------------------------------------------


class RegionError(ValueError):
    """A region that cannot be read as a Hardcase answer (unknown choice, bad rectangle)."""


@dataclass(frozen=True)
class ReadRegions:
    """What a Label Studio result says: the chosen class names (in order) and boxes [x1, y1, x2, y2, name]."""

    choices: list[str]
    boxes: list[list[Any]]
    box_scores: list[float | None]  # each box's region score, where it carries one
    choice_score: float | None = None


def read_result(result: Any) -> ReadRegions:
    """Choices and rectangles of a Label Studio `result` list; other region types are ignored."""
    if not isinstance(result, list):
        raise RegionError("result must be a list of regions")
    read = ReadRegions([], [], [])
    for index, region in enumerate(result):
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise RegionError(f"result[{index}] is not a region with a value")
        value, score = region["value"], region.get("score")
        score = float(score) if _is_number(score) else None
        if region.get("type") == "choices":
            picked = value.get("choices")
            if not isinstance(picked, list) or not all(isinstance(c, str) for c in picked):
                raise RegionError(f"result[{index}].value.choices must be a list of strings")
            if picked and not read.choices:
                read = ReadRegions(picked, read.boxes, read.box_scores, score)
        elif region.get("type") == "rectanglelabels":
            read.boxes.append(_box_of(value, index))
            read.box_scores.append(score)
    return read


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _box_of(value: dict, index: int) -> list[Any]:
    where = f"result[{index}].value"
    numbers = [value.get(k) for k in ("x", "y", "width", "height")]
    if not all(_is_number(n) for n in numbers):
        raise RegionError(f"{where}: x, y, width and height must be numbers (percent)")
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        raise RegionError(f"{where}.rectanglelabels must name the box's label")
    x, y, width, height = (float(n) / 100.0 for n in numbers)
    x1, y1 = _unit(x), _unit(y)
    x2, y2 = _unit(x + width), _unit(y + height)
    if not (x1 < x2 and y1 < y2):
        raise RegionError(f"{where}: the rectangle has no area inside the image")
    return [x1, y1, x2, y2, labels[0]]


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)
