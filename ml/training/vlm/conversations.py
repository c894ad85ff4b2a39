"""The yes/no conversation a VLM is trained and scored on: question, human answer, rationale, answer parsing."""

from __future__ import annotations

import re
from collections import Counter

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, Split

YES, NO = "yes", "no"
_LEADING_ANSWER = re.compile(r"^\W*(yes|no|true|false)\b")
_ANSWER_WORDS = re.compile(r"\b(yes|no)\b")


def question_prompt(question: str) -> list[dict]:
    """The user turn: one image placeholder (filled from the `images` column by trl) and the question."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def assistant_turn(text: str) -> list[dict]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def require_yes_no_project(info: DatasetInfo) -> None:
    if info.kind not in ("binary", "detection"):
        raise ValueError(
            f"dataset.kind: a VLM yes/no job needs a binary or detection project, got {info.kind!r}"
        )


def human_is_positive(record: DatasetRecord, info: DatasetInfo) -> bool | None:
    """The consensus answer; None for an unlabeled item. Detection items without a label count their boxes."""
    if record.label is not None:
        return record.label == 1
    if info.kind == "detection":
        return bool(record.boxes)
    return None


def rationale(record: DatasetRecord, info: DatasetInfo) -> str:
    """'3 traffic cones, 1 barrier' from the human boxes; empty when there are none."""
    counts = Counter(int(box[4]) for box in record.boxes if len(box) >= 5)
    parts = []
    for index, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        name = info.box_classes[index] if 0 <= index < len(info.box_classes) else "object"
        name = name.replace("_", " ")
        if count > 1 and not name.endswith("s"):
            name += "s"
        parts.append(f"{count} {name}")
    return ", ".join(parts)


def human_answer(record: DatasetRecord, info: DatasetInfo, *, with_rationale: bool) -> str | None:
    """'yes', 'no' or 'yes — 3 traffic cones, 1 barrier'; None for an unlabeled item."""
    positive = human_is_positive(record, info)
    if positive is None:
        return None
    if not positive:
        return NO
    reason = rationale(record, info) if with_rationale else ""
    return f"{YES} — {reason}" if reason else YES


def parse_yes_no(text: str | None) -> bool | None:
    """True for a yes, False for a no, None when the text commits to neither (or to both)."""
    if not text:
        return None
    lowered = text.strip().lower()
    leading = _LEADING_ANSWER.match(lowered)
    if leading:
        return leading.group(1) in ("yes", "true")
    words = set(_ANSWER_WORDS.findall(lowered))
    if len(words) == 1:
        return words == {"yes"}
    return None


def image_path(dataset: DatasetVersionDir, record: DatasetRecord) -> str:
    return str(dataset.image_path(record).resolve())


def build_sft_examples(
    dataset: DatasetVersionDir, *, with_rationale: bool, split: Split = "train"
) -> list[dict]:
    """Prompt-completion rows for trl's SFTTrainer: image + question → the human answer."""
    info = dataset.info
    require_yes_no_project(info)
    rows = []
    for record in dataset.records(split):
        answer = human_answer(record, info, with_rationale=with_rationale)
        if answer is None:
            continue
        rows.append(
            {
                "item_id": record.item_id,
                "prompt": question_prompt(info.question),
                "completion": assistant_turn(answer),
                "images": [image_path(dataset, record)],
            }
        )
    return rows
