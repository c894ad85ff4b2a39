"""VLM → VLM distillation: the loss on the answer distribution, and a tiny Qwen3-VL teacher distilled into a
tiny Qwen2-VL student through trl on real roadwork photos, unlabeled pool items included."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ml.training.reporting import MemoryReporter
from ml.training.vlm.config import VlmDistillConfig
from ml.training.vlm.distill import NO_HUMAN, agreement, distillation_loss, run
from tests.ml.conftest import TINY_VLM_TRAINING


def test_the_kl_term_vanishes_when_the_student_answers_like_the_teacher_and_grows_with_the_gap():
    teacher = torch.tensor([0.9, 0.2])
    none = torch.tensor([NO_HUMAN, NO_HUMAN])
    matching = torch.logit(teacher)
    assert distillation_loss(matching, teacher, none, temperature=2.0, alpha=0.5).item() == pytest.approx(
        0, abs=1e-6
    )
    near = distillation_loss(matching + 0.5, teacher, none, temperature=2.0, alpha=0.5).item()
    far = distillation_loss(matching + 3.0, teacher, none, temperature=2.0, alpha=0.5).item()
    assert 0 < near < far


def test_a_human_answer_pulls_the_student_with_weight_one_minus_alpha():
    teacher, student = torch.tensor([0.5]), torch.tensor([0.0])  # both unsure
    human_yes = torch.tensor([1.0])
    assert distillation_loss(student, teacher, human_yes, temperature=1.0, alpha=1.0).item() == pytest.approx(
        0
    )
    mixed = distillation_loss(student, teacher, human_yes, temperature=1.0, alpha=0.5).item()
    assert mixed == pytest.approx(0.5 * math.log(2), rel=1e-5)  # half of CE(0.5 vs yes)


def test_agreement_counts_matching_answers_on_common_items():
    found = agreement({1: 0.9, 2: 0.4, 3: 0.6}, {1: 0.7, 2: 0.6, 4: 0.1})
    assert found["teacher_agreement"] == 0.5 and found["teacher_mean_abs_gap"] == pytest.approx(0.2)


def test_distillation_settings_are_validated_with_the_field_named():
    for field, value in [("temperature", 0), ("alpha", 1.5), ("teacher", ""), ("teacher_batch_size", 0)]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            VlmDistillConfig(**{field: value})


@pytest.mark.slow
def test_a_tiny_teacher_is_distilled_into_a_tiny_student_on_labeled_and_unlabeled_items(
    tiny_vlm, roadwork_dataset_factory, tmp_path
):
    from ml.training.vlm.tiny import build_tiny_qwen3_vl

    teacher = build_tiny_qwen3_vl(tmp_path / "teacher", seed=7)
    dataset = roadwork_dataset_factory(n_items=24, n_unlabeled=6)
    config = VlmDistillConfig(
        **{**TINY_VLM_TRAINING, "max_steps": 2, "save_steps": 10},
        model_name_or_path=str(tiny_vlm),
        teacher=str(teacher),
    )
    reporter = MemoryReporter()
    result = run(config, dataset, reporter, tmp_path / "job")

    holdout = {r.item_id for r in dataset.records("holdout")}
    assert set(result.holdout_scores) == holdout and 0 <= result.threshold <= 1
    assert -1 <= result.metrics["mcc"] <= 1 and 0 <= result.metrics["teacher_agreement"] <= 1
    answered = json.loads((tmp_path / "job" / "teacher_answers.json").read_text())
    unlabeled = {r.item_id for r in dataset.records("train") if r.label is None}
    assert len(unlabeled) == 6 and unlabeled <= {int(k) for k in answered}
    assert (result.artifact_dir / "adapter" / "adapter_config.json").exists()
    assert any("6 without a human answer" in line for line in reporter.lines)
    assert [step for step, values in reporter.history if "loss" in values] == [1, 2]
