"""Preference pairs for DPO: the human answer is chosen, the VLM's own wrong or unsure answer rejected."""

from __future__ import annotations

import json
from pathlib import Path

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, Split, StoredPrediction
from ml.training.vlm.conversations import (
    NO,
    YES,
    assistant_turn,
    human_answer,
    human_is_positive,
    image_path,
    parse_yes_no,
    question_prompt,
    require_yes_no_project,
)


def find_prediction(record: DatasetRecord, model: str | None) -> StoredPrediction | None:
    if model is None:
        return None
    return next((p for p in record.predictions if p.model == model), None)


def model_says_yes(prediction: StoredPrediction, classes: list[str]) -> bool | None:
    """The VLM's answer: its text when it says yes/no or names a class, else its score against 0.5."""
    parsed = parse_yes_no(prediction.label)
    if parsed is not None:
        return parsed
    if prediction.label in classes[:2]:
        return prediction.label == classes[1]
    if prediction.score is not None:
        return prediction.score >= 0.5
    return None


def rejected_answer(
    positive: bool, prediction: StoredPrediction | None, low_confidence_margin: float, classes: list[str]
) -> tuple[str, str] | None:
    """(rejected text, reason) for one labeled item, or None when the VLM was right and sure."""
    opposite = NO if positive else YES
    if prediction is None:
        return opposite, "not_asked"
    says_yes = model_says_yes(prediction, classes)
    if says_yes is None:
        return opposite, "no_answer"
    if says_yes != positive:
        # The VLM's own words when it answered in words; a class name or a bare score becomes "yes"/"no".
        own_text = (prediction.label or "").strip()
        return (own_text if parse_yes_no(own_text) is not None else opposite), "disagreement"
    if prediction.score is not None and abs(prediction.score - 0.5) < low_confidence_margin:
        return opposite, "low_confidence"
    return None


def _pair(
    dataset: DatasetVersionDir, record: DatasetRecord, info: DatasetInfo, *, vlm_model, margin, rationale
):
    positive = human_is_positive(record, info)
    if positive is None:
        return None
    verdict = rejected_answer(positive, find_prediction(record, vlm_model), margin, info.classes)
    if verdict is None:
        return None
    rejected, reason = verdict
    return {
        "item_id": record.item_id,
        "prompt": question_prompt(info.question),
        "chosen": assistant_turn(human_answer(record, info, with_rationale=rationale)),
        "rejected": assistant_turn(rejected),
        "images": [image_path(dataset, record)],
        "reason": reason,
    }


def build_preference_pairs(
    dataset: DatasetVersionDir,
    *,
    vlm_model: str | None,
    low_confidence_margin: float,
    split: Split = "train",
    with_rationale: bool = False,
) -> list[dict]:
    """One pair per labeled item the VLM got wrong, answered unsurely, or was not asked (`vlm_model` None
    means no model was asked: every labeled item pairs its answer with the opposite one)."""
    if not 0.0 <= low_confidence_margin <= 0.5:
        raise ValueError("low_confidence_margin: must be in [0, 0.5]")
    info = dataset.info
    require_yes_no_project(info)
    pairs = []
    for record in dataset.records(split):
        pair = _pair(
            dataset, record, info, vlm_model=vlm_model, margin=low_confidence_margin, rationale=with_rationale
        )
        if pair is not None:
            pairs.append(pair)
    return pairs


def write_pairs_jsonl(pairs: list[dict], path: Path) -> Path:
    """One pair per line; loads with `datasets.load_dataset("json", data_files=...)` and feeds trl's DPOTrainer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    return path
