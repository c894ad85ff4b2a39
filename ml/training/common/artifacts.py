"""A markdown model card: what was trained, on which dataset version, and how it scored on the holdout."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ml.dataset import DatasetInfo

CARD_METRICS = ("mcc", "f1", "precision", "recall", "accuracy", "auroc", "auprc", "ece", "n", "positives")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_model_card(
    path: Path,
    *,
    title: str,
    method: str,
    base_model: str,
    dataset: DatasetInfo,
    threshold: float,
    temperature: float,
    metrics: dict[str, float],
    slices: dict[str, dict],
    settings: dict[str, Any],
) -> Path:
    lines = [
        f"# {title}",
        "",
        f"- **Method**: {method}",
        f"- **Base model**: `{base_model}`",
        f"- **Dataset**: project `{dataset.project}`, version {dataset.version}, content hash `{dataset.content_hash}`",
        f"- **Classes**: {', '.join(dataset.classes)} (positive = `{dataset.classes[1]}`)",
        f"- **Decision rule**: `softmax(logits / {temperature:.4f})[1] >= {threshold:.4f}` "
        "(temperature fitted and threshold chosen for maximal MCC on the val split)",
        "",
        "## Holdout metrics (at the threshold above)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {_fmt(metrics[name])} |" for name in CARD_METRICS if name in metrics],
        "",
        "## Other figures",
        "",
        *[f"- {name}: {_fmt(value)}" for name, value in metrics.items() if name not in CARD_METRICS],
        "",
        "## Holdout MCC by slice",
        "",
        *[
            f"- {key} = {value}: MCC {_fmt(entry['mcc'])} (n={entry['n']})"
            for key, per_value in slices.items()
            for value, entry in per_value.items()
        ],
        "",
        "## Training settings",
        "",
        *[f"- {name}: `{value}`" for name, value in settings.items()],
        "",
        "## Intended use and limits",
        "",
        f'Answers "{dataset.question}" for images like those of this project. Scores are calibrated on the val',
        "split only; re-check the threshold when the camera fleet or the season changes (drift).",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
