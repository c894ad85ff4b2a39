"""The shared training pieces: class weights, replayable batches, EMA, checkpoints, LoRA targets, devices."""

import pytest
import torch
from torch import nn

from ml.tiny import build_tiny_vit_classifier
from ml.training.common.checkpoint import checkpoint_steps, load_latest_checkpoint, save_checkpoint
from ml.training.common.data import NO_LABEL, class_weights, epoch_batches
from ml.training.common.ema import WeightEMA
from ml.training.common.models import auto_head_modules, auto_target_modules, load_image_classifier
from ml.training.common.runtime import describe_device, resolve_device


def test_class_weights_favour_the_rare_positive():
    weights = class_weights([0, 0, 0, 1, NO_LABEL], "balanced")
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 4 / 2]))
    torch.testing.assert_close(class_weights([0, 0, 1], "none"), torch.ones(2))


def test_epoch_batches_are_a_pure_function_of_epoch_and_seed():
    first = epoch_batches(10, 4, epoch=1, seed=3)
    assert first == epoch_batches(10, 4, epoch=1, seed=3)
    assert first != epoch_batches(10, 4, epoch=2, seed=3)
    assert sorted(i for batch in first for i in batch) == list(range(10))
    assert [len(b) for b in first] == [4, 4, 2]


def test_ema_moves_toward_the_weights_and_swaps_back_after_use():
    model = nn.Linear(2, 1)
    ema = WeightEMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # warm-up decay min(0.5, 2/11)
    expected = start + (1 - 2 / 11) * 1.0
    torch.testing.assert_close(ema.shadow["weight"], expected)
    with ema.applied(model):
        torch.testing.assert_close(model.weight.detach(), expected)
    torch.testing.assert_close(model.weight.detach(), start + 1.0)


def test_ema_averages_batchnorm_running_statistics_with_the_weights():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = WeightEMA(model, decay=0.5)
    assert "1.running_mean" in ema.shadow and "1.num_batches_tracked" not in ema.shadow
    model.train()
    model(torch.full((8, 2), 5.0) + torch.randn(8, 2))  # moves the running mean away from 0
    moved = model[1].running_mean.clone()
    ema.update(model)
    expected = (1 - 2 / 11) * moved  # from zeros, warm-up decay 2/11
    torch.testing.assert_close(ema.shadow["1.running_mean"], expected)
    with ema.applied(model):
        torch.testing.assert_close(model[1].running_mean, expected)
    torch.testing.assert_close(model[1].running_mean, moved)


def test_checkpoints_keep_the_latest_two_and_load_the_newest(tmp_path):
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, {"model": {"w": torch.tensor([float(step)])}})
    (tmp_path / "step-8").mkdir()  # a crash before state.pt was written: not a checkpoint
    assert checkpoint_steps(tmp_path) == [4, 6]
    state = load_latest_checkpoint(tmp_path)
    assert state["step"] == 6 and float(state["model"]["w"]) == 6.0
    assert load_latest_checkpoint(tmp_path / "none") is None


def test_lora_targets_and_head_are_detected_on_a_vit(tmp_path):
    model = load_image_classifier(str(build_tiny_vit_classifier(tmp_path / "vit")), ["negative", "positive"])
    # transformers 4.x names the ViT projections query/value (5.x: q_proj/v_proj; both are listed in one place)
    assert auto_target_modules(model) == ["query", "value"]
    assert auto_head_modules(model) == ["classifier"]


def test_lora_target_detection_fails_clearly_without_attention():
    with pytest.raises(ValueError, match="^target_modules:"):
        auto_target_modules(nn.Sequential(nn.Linear(2, 2)))


def test_requesting_cuda_without_a_gpu_is_a_config_error():
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="^device:"):
            resolve_device("cuda:0")
    assert resolve_device("cpu").type == "cpu"


def test_the_device_a_job_reports_is_the_one_it_resolves_to():
    assert describe_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert describe_device("auto") == f"cuda:0 ({torch.cuda.get_device_name(0)})"
    else:
        assert describe_device("auto") == "cpu"
