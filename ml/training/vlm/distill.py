"""`vlm_distill`: a teacher VLM's yes/no answer distributions distilled into a smaller student VLM (LoRA, trl
SFTTrainer with the loss replaced by the answer-position distillation loss)."""

from __future__ import annotations

import dataclasses
import gc
import json
import math
from pathlib import Path
from typing import Any

from ml.dataset import DatasetRecord, DatasetVersionDir
from ml.training.bases import resolve_base
from ml.training.common.runtime import hub_offline
from ml.training.reporting import Reporter, TrainingResult, check_cancelled
from ml.training.vlm.backends import check_backend_available, load_processor, load_vlm
from ml.training.vlm.config import VlmDistillConfig
from ml.training.vlm.conversations import (
    NO,
    YES,
    assistant_turn,
    human_is_positive,
    image_path,
    question_prompt,
    require_yes_no_project,
)
from ml.training.vlm.evaluate import answer_token_ids, score_p_yes
from ml.training.vlm.jobs import (
    evaluate_and_save,
    load_training_rows,
    reporter_callback,
    train,
    trainer_arguments,
)

NO_HUMAN = -1.0
P_CLIP = 1e-6  # keeps the teacher's log-odds finite when it is certain
TEACHER_FILE = "teacher_answers.json"


def answer_log_odds(logits: Any, yes_ids: list[int], no_ids: list[int]) -> Any:
    """log P(yes tokens) − log P(no tokens) at one position: the two-way answer distribution's logit."""
    return logits[..., yes_ids].logsumexp(dim=-1) - logits[..., no_ids].logsumexp(dim=-1)


def distillation_loss(
    student_log_odds: Any, teacher_p_yes: Any, human: Any, *, temperature: float, alpha: float
):
    """Per batch: T²·KL(teacher_T ‖ student_T) on the yes/no distribution, mixed with the cross-entropy to the
    human answer (weight 1 − alpha) where one exists (human ≥ 0); items without one learn from the teacher only."""
    import torch
    import torch.nn.functional as F

    p = teacher_p_yes.clamp(P_CLIP, 1 - P_CLIP)
    teacher_t = torch.sigmoid(torch.logit(p) / temperature)
    log_s_yes = F.logsigmoid(student_log_odds / temperature)
    log_s_no = F.logsigmoid(-student_log_odds / temperature)
    kl = teacher_t * (teacher_t.log() - log_s_yes) + (1 - teacher_t) * ((1 - teacher_t).log() - log_s_no)
    kl = kl * temperature**2
    labeled = human >= 0
    ce = F.binary_cross_entropy_with_logits(student_log_odds, human.clamp(min=0), reduction="none")
    per_item = torch.where(labeled, alpha * kl + (1 - alpha) * ce, kl)
    return per_item.mean()


def pool_records(dataset: DatasetVersionDir) -> list[DatasetRecord]:
    """Every train item, labeled or not: the pool the teacher answers."""
    return list(dataset.records("train"))


def teacher_answers(
    config: VlmDistillConfig,
    dataset: DatasetVersionDir,
    records: list[DatasetRecord],
    workdir: Path,
    reporter: Reporter,
) -> dict[int, float]:
    """item_id → the teacher's P(yes) (its answer-token probabilities), cached in the workdir for a resumed job."""
    cache = workdir / TEACHER_FILE
    if cache.is_file():
        return {int(k): float(v) for k, v in json.loads(cache.read_text()).items()}
    import torch
    from transformers import AutoModelForImageTextToText

    base = resolve_base(config.teacher, workdir / "teacher")
    reporter.log(f"teacher {base.label} answers {len(records)} pool items")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(base.path, dtype=dtype)
    if config.teacher_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config.teacher_adapter).merge_and_unload()
    processor = load_processor(base.path, config.max_image_pixels)
    scores = score_p_yes(
        model.to(device),
        processor,
        dataset,
        records,
        question=dataset.info.question,
        batch_size=config.teacher_batch_size,
    )
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    workdir.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({str(k): v for k, v in scores.items()}))
    return scores


def distill_rows(
    dataset: DatasetVersionDir, records: list[DatasetRecord], teacher: dict[int, float]
) -> list[dict]:
    """Prompt-completion rows; the completion (the human answer, else the teacher's) only marks the answer
    position, the targets are the teacher's P(yes) and the human answer (−1 for none)."""
    info = dataset.info
    rows = []
    for record in records:
        positive = human_is_positive(record, info)
        p_yes = teacher[record.item_id]
        answer = positive if positive is not None else p_yes >= 0.5
        rows.append(
            {
                "prompt": question_prompt(info.question),
                "completion": assistant_turn(YES if answer else NO),
                "images": [image_path(dataset, record)],
                "teacher_p_yes": float(p_yes),
                "human": NO_HUMAN if positive is None else float(positive),
            }
        )
    return rows


class TargetsCollator:
    """trl's vision collator, plus the per-example distillation targets as one (n, 2) tensor."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        targets = [[e.pop("teacher_p_yes"), e.pop("human")] for e in examples]
        batch = self.collator(examples)
        batch["distill_targets"] = torch.tensor(targets, dtype=torch.float32)
        return batch


def distillation_trainer_class(temperature: float, alpha: float, yes_ids: list[int], no_ids: list[int]):
    """trl's SFTTrainer whose loss is the answer-position distillation loss instead of next-token CE."""
    import torch
    from trl import SFTTrainer

    class AnswerDistillationTrainer(SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.data_collator = TargetsCollator(self.data_collator)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            targets = inputs.pop("distill_targets")
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            # the first completion token is the answer; the logits one position earlier predict it
            answer_at = (labels != -100).int().argmax(dim=1) - 1
            rows = torch.arange(labels.shape[0], device=labels.device)
            logits = outputs.logits[rows, answer_at].float()
            log_odds = answer_log_odds(logits, yes_ids, no_ids)
            targets = targets.to(log_odds.device)
            loss = distillation_loss(
                log_odds, targets[:, 0], targets[:, 1], temperature=temperature, alpha=alpha
            )
            return (loss, outputs) if return_outputs else loss

    return AnswerDistillationTrainer


def agreement(student: dict[int, float], teacher: dict[int, float]) -> dict[str, float]:
    """How often the student's answer (P(yes) >= 0.5) is the teacher's, and the mean |ΔP(yes)|, on common items."""
    common = sorted(set(student) & set(teacher))
    if not common:
        return {}
    same = sum((student[i] >= 0.5) == (teacher[i] >= 0.5) for i in common)
    gap = sum(abs(student[i] - teacher[i]) for i in common) / len(common)
    return {"teacher_agreement": same / len(common), "teacher_mean_abs_gap": gap}


def run(
    config: VlmDistillConfig, dataset: DatasetVersionDir, reporter: Reporter, workdir: Path
) -> TrainingResult:
    hub_offline()
    check_backend_available(config)
    require_yes_no_project(dataset.info)
    check_cancelled(reporter)
    records = pool_records(dataset)
    if not records:
        raise ValueError("dataset: the train split is empty")
    holdout = list(dataset.records("holdout"))
    teacher = teacher_answers(config, dataset, records + holdout, workdir, reporter)
    rows = distill_rows(dataset, records, teacher)
    unlabeled = sum(row["human"] == NO_HUMAN for row in rows)
    reporter.log(f"vlm_distill: {len(rows)} pool items ({unlabeled} without a human answer) into the student")
    from trl import SFTConfig

    student = resolve_base(config.model_name_or_path, workdir)
    loaded, device = load_vlm(dataclasses.replace(config, model_name_or_path=student.path))
    yes_ids, no_ids = answer_token_ids(loaded.processor.tokenizer)
    train_dataset = load_training_rows(rows, workdir / "data" / "distill_train.jsonl", workdir)
    args = SFTConfig(
        **trainer_arguments(config, device, workdir), completion_only_loss=True, remove_unused_columns=False
    )
    callback = reporter_callback(reporter)
    trainer = distillation_trainer_class(config.temperature, config.alpha, yes_ids, no_ids)(
        model=loaded.model,
        args=args,
        train_dataset=train_dataset,
        processing_class=loaded.processor,
        peft_config=loaded.peft_config,
        callbacks=[callback],
    )
    train_metrics = train(trainer, reporter, callback, workdir)
    result = evaluate_and_save(
        "vlm_distill", config, dataset, loaded, trainer, train_metrics, reporter, workdir
    )
    teacher_holdout = {r.item_id: teacher[r.item_id] for r in holdout}
    result.metrics.update(agreement(result.holdout_scores, teacher_holdout))
    (result.artifact_dir / "teacher_holdout_scores.json").write_text(
        json.dumps({str(k): v for k, v in teacher_holdout.items() if math.isfinite(v)})
    )
    return result
