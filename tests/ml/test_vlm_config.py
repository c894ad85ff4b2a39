"""VLM job configs: validation, the job catalogue, and clear refusals of CUDA-only backends on a CPU machine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.training.kinds import build_config, config_fields
from ml.training.reporting import MemoryReporter
from ml.training.vlm.backends import check_backend_available, lora_target_names
from ml.training.vlm.config import VlmDpoConfig, VlmSftConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("values", "field_name"),
    [
        ({"backend": "deepspeed"}, "backend"),
        ({"quantization": "8bit"}, "quantization"),
        ({"lora_r": 0}, "lora_r"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_image_pixels": 100}, "max_image_pixels"),
        ({"lora_target_modules": []}, "lora_target_modules"),
    ],
)
def test_invalid_sft_settings_name_the_field(values, field_name):
    with pytest.raises(ValueError, match=f"^{field_name}:"):
        VlmSftConfig(**values)


@pytest.mark.parametrize(
    ("values", "field_name"),
    [
        ({"low_confidence_margin": 0.7}, "low_confidence_margin"),
        ({"beta": 0.0}, "beta"),
        ({"loss_type": "sft_plus_magic"}, "loss_type"),
        ({"init_adapter_path": "/adapters/sft", "quantization": "4bit"}, "init_adapter_path"),
    ],
)
def test_invalid_dpo_settings_name_the_field(values, field_name):
    with pytest.raises(ValueError, match=f"^{field_name}:"):
        VlmDpoConfig(**values)


def test_job_catalogue_builds_vlm_configs_and_describes_every_knob():
    config = build_config("vlm_dpo", {"vlm_model_name": "vlm", "beta": 0.2})
    assert isinstance(config, VlmDpoConfig) and config.beta == 0.2
    assert isinstance(build_config("vlm_sft", {}), VlmSftConfig)
    for kind in ("vlm_sft", "vlm_dpo"):
        assert all(f["help"] for f in config_fields(kind))


def test_vlm_configs_import_without_torch():
    code = "import sys, ml.training.vlm.config, ml.training.vlm.pairs; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("values", "what"),
    [({"quantization": "4bit"}, "quantization='4bit'"), ({"backend": "unsloth"}, "unsloth")],
)
def test_cuda_only_backends_are_refused_without_a_gpu(values, what):
    with pytest.raises(RuntimeError, match=f"{what}.*needs a CUDA GPU"):
        check_backend_available(VlmSftConfig(**values), cuda_available=False)


def test_cuda_only_backends_are_refused_when_their_package_is_missing():
    import importlib.util

    for values, package in (({"quantization": "4bit"}, "bitsandbytes"), ({"backend": "unsloth"}, "unsloth")):
        if importlib.util.find_spec(package) is None:
            with pytest.raises(RuntimeError, match=f"'{package}' package"):
                check_backend_available(VlmSftConfig(**values), cuda_available=True)
        else:
            check_backend_available(VlmSftConfig(**values), cuda_available=True)


def test_unsloth_job_on_this_cpu_machine_fails_before_loading_anything(roadwork_dataset_dir, tmp_path):
    import torch

    from ml.training.vlm.dpo import run as run_dpo
    from ml.training.vlm.sft import run as run_sft

    if torch.cuda.is_available():
        pytest.fail("this test proves the CPU refusal; it ran on a CUDA machine")
    reporter = MemoryReporter()
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        run_sft(VlmSftConfig(backend="unsloth"), roadwork_dataset_dir, reporter, tmp_path / "sft")
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        run_dpo(VlmDpoConfig(quantization="4bit"), roadwork_dataset_dir, reporter, tmp_path / "dpo")
    assert not (tmp_path / "sft").exists() and not (tmp_path / "dpo").exists()


def test_lora_targets_the_language_model_and_the_merger_only_on_request(tmp_path):
    from transformers import AutoModelForImageTextToText

    from ml.training.vlm.tiny import build_tiny_qwen2_vl

    model = AutoModelForImageTextToText.from_pretrained(build_tiny_qwen2_vl(tmp_path / "tiny"))
    language_only = lora_target_names(model, VlmSftConfig())
    assert len(language_only) == 2 * 7  # two decoder layers × seven projections
    assert not any("visual" in name for name in language_only)
    with_merger = lora_target_names(model, VlmSftConfig(train_vision_merger=True))
    assert sorted(set(with_merger) - set(language_only)) == [
        "model.visual.merger.mlp.0",
        "model.visual.merger.mlp.2",
    ]
    with pytest.raises(ValueError, match="^lora_target_modules:"):
        lora_target_names(model, VlmSftConfig(lora_target_modules=["c_attn"]))


def test_gpu_bench_refuses_to_run_without_cuda():
    out = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--steps", "2"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert out.returncode == 2
    assert "no CUDA device" in out.stderr


def test_gpu_bench_variants_are_valid_job_configs_for_every_kind():
    from bench.gpu import ALL_KINDS, StepClock, variants
    from ml.training.kinds import build_config

    planned = variants(list(ALL_KINDS), 5, {"classifier": "/models/vit", "vlm": "/models/qwen"})
    assert {v.kind for v in planned} == set(ALL_KINDS)
    assert {v.name for v in planned if v.kind == "vlm_sft"} == {
        "peft-lora",
        "peft-qlora",
        "unsloth-lora",
        "unsloth-qlora",
    }
    for variant in planned:
        build_config(variant.kind, variant.values)

    clock = StepClock()
    for step, at in ((1, 0.0), (2, 5.0), (3, 5.5), (4, 6.0), (5, 6.5)):
        clock.times.append((step, at))
    assert clock.steps_per_second() == 2.0  # the slow first step is not steady state
