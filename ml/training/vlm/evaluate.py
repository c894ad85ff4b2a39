"""Scoring a VLM as a classifier: P(yes) from the answer tokens' probabilities, threshold on val, metrics on holdout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ml.dataset import DatasetRecord, DatasetVersionDir
from ml.evaluation import mcc_optimal_threshold
from ml.training.common.holdout import holdout_report
from ml.training.vlm.conversations import human_is_positive, parse_yes_no, question_prompt

__all__ = ["VlmEvaluation", "answer_token_ids", "evaluate_vlm", "parse_yes_no", "score_p_yes"]

_YES_SPELLINGS = ("yes", "Yes", "YES")
_NO_SPELLINGS = ("no", "No", "NO")


@dataclass
class VlmEvaluation:
    threshold: float
    metrics: dict[str, float]
    holdout_scores: dict[int, float]
    val_scores: dict[int, float] = field(default_factory=dict)
    slices: dict[str, dict] = field(default_factory=dict)
    reliability: list[dict] = field(default_factory=list)


def _single_token_ids(tokenizer: Any, spellings: tuple[str, ...]) -> list[int]:
    ids = []
    for word in spellings:
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Token ids that start a yes and a no answer (every one-token spelling: 'yes', 'Yes', …)."""
    yes_ids, no_ids = (
        _single_token_ids(tokenizer, _YES_SPELLINGS),
        _single_token_ids(tokenizer, _NO_SPELLINGS),
    )
    if not yes_ids or not no_ids:
        raise ValueError("model_name_or_path: the tokenizer has no single token for 'yes' or for 'no'")
    return yes_ids, no_ids


def _load_rgb(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def score_p_yes(
    model: Any,
    processor: Any,
    dataset: DatasetVersionDir,
    records: list[DatasetRecord],
    *,
    question: str,
    batch_size: int = 8,
) -> dict[int, float]:
    """item_id → P(yes | image, question), normalised over the yes and no answer tokens."""
    import torch

    yes_ids, no_ids = answer_token_ids(processor.tokenizer)
    prompt = processor.apply_chat_template(
        question_prompt(question), add_generation_prompt=True, tokenize=False
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: dict[int, float] = {}
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            images = [[_load_rgb(str(dataset.image_path(r)))] for r in batch]
            inputs = processor(
                text=[prompt] * len(batch),
                images=images,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            ).to(device)
            probs = model(**inputs).logits[:, -1, :].float().softmax(dim=-1)
            p_yes, p_no = probs[:, yes_ids].sum(dim=-1), probs[:, no_ids].sum(dim=-1)
            ratio = (p_yes / (p_yes + p_no).clamp_min(1e-12)).tolist()
            scores.update({r.item_id: float(s) for r, s in zip(batch, ratio, strict=True)})
    model.train(was_training)
    return scores


def _labeled(dataset: DatasetVersionDir, split: str) -> tuple[list[DatasetRecord], list[int]]:
    info = dataset.info
    records, labels = [], []
    for record in dataset.records(split):
        positive = human_is_positive(record, info)
        if positive is not None:
            records.append(record)
            labels.append(int(positive))
    return records, labels


def evaluate_vlm(
    model: Any, processor: Any, dataset: DatasetVersionDir, *, batch_size: int = 8
) -> VlmEvaluation:
    """MCC-optimal threshold on val (0.5 when val is empty), every binary metric on holdout."""
    question = dataset.info.question
    val_records, val_labels = _labeled(dataset, "val")
    val_scores = score_p_yes(model, processor, dataset, val_records, question=question, batch_size=batch_size)
    metrics: dict[str, float] = {}
    threshold = 0.5
    if val_records:
        threshold, metrics["val_mcc"] = mcc_optimal_threshold(
            [val_scores[r.item_id] for r in val_records], val_labels
        )
    holdout_records = [r for r in dataset.records("holdout")]
    holdout_scores = score_p_yes(
        model, processor, dataset, holdout_records, question=question, batch_size=batch_size
    )
    labeled, labels = _labeled(dataset, "holdout")
    evaluation = VlmEvaluation(threshold, metrics, holdout_scores, val_scores)
    if labeled:
        report = holdout_report([holdout_scores[r.item_id] for r in labeled], labels, threshold, labeled)
        metrics.update(report.metrics)
        evaluation.slices, evaluation.reliability = report.slices, report.reliability
    return evaluation
