"""What this machine can train: which job kinds' packages are importable and whether a GPU is present. A worker
computes this at start-up and advertises it (app/jobs/capabilities.py); nothing here imports torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

# Python packages each job kind imports when it runs; a kind not listed needs torch only.
KIND_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "classifier_lora": ("torch", "torchvision", "transformers", "peft"),
    "distill": ("torch", "torchvision"),
    "yolo": ("torch", "ultralytics"),
    "vlm_sft": ("torch", "transformers", "peft", "trl"),
    "vlm_dpo": ("torch", "transformers", "peft", "trl"),
    "vlm_distill": ("torch", "transformers", "peft", "trl"),
    "pretrain": ("torch", "torchvision", "lightly"),
}
GPU_CHECK_TIMEOUT_S = 60.0


def missing_packages(kind: str) -> list[str]:
    return [
        name for name in KIND_REQUIREMENTS.get(kind, ("torch",)) if importlib.util.find_spec(name) is None
    ]


def kind_support(kinds: list[str]) -> dict[str, str | None]:
    """kind -> None when this Python can run it, else why not (the missing packages)."""
    out: dict[str, str | None] = {}
    for kind in kinds:
        missing = missing_packages(kind)
        out[kind] = f"needs {', '.join(missing)} (pip install 'hardcase[train]')" if missing else None
    return out


def gpu_present() -> bool:
    """Whether torch sees a CUDA device, asked in a child process: CUDA must not be initialised in a worker's
    parent process before its pool forks."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
            capture_output=True,
            text=True,
            timeout=GPU_CHECK_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip().endswith("True")
