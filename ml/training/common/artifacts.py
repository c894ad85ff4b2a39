"""The one writer of what every job kind leaves beside its model: threshold.json, metrics.json and a model card."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ml.dataset import DatasetInfo

THRESHOLD_FILE = "threshold.json"
METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "README.md"
CARD_METRICS = ("mcc", "f1", "precision", "recall", "accuracy", "auroc", "auprc", "ece", "n", "positives")


def write_decision_files(
    artifact_dir: Path, threshold: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, str]:
    """threshold.json (the decision rule a scorer applies) and metrics.json (what the registry shows)."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    (artifact_dir / THRESHOLD_FILE).write_text(json.dumps(threshold, indent=2, default=float))
    (artifact_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=float))
    return {"threshold": THRESHOLD_FILE, "metrics": METRICS_FILE}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _classes_line(dataset: DatasetInfo) -> str:
    classes = ", ".join(dataset.classes)
    if len(dataset.classes) == 2:
        return f"- **Classes**: {classes} (positive = `{dataset.classes[1]}`)"
    return f"- **Classes**: {classes}"


def write_model_card(
    artifact_dir: Path,
    *,
    title: str,
    method: str,
    base_model: str,
    dataset: DatasetInfo,
    decision_rule: str,
    metrics: dict[str, float],
    settings: dict[str, Any],
    slices: dict[str, dict] | None = None,
    usage: str = "",
    per_class: dict[str, dict] | None = None,
) -> dict[str, str]:
    """README.md: what was trained, on which dataset version, its decision rule and holdout figures."""
    lines = [
        f"# {title}",
        "",
        f"- **Method**: {method}",
        f"- **Base model**: `{base_model}`",
        f"- **Dataset**: project `{dataset.project}`, dataset version {dataset.version}, "
        f"content hash `{dataset.content_hash}`",
        _classes_line(dataset),
        f"- **Decision rule**: {decision_rule}",
        "",
        "## Holdout metrics (at the decision rule above)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {_fmt(metrics[name])} |" for name in CARD_METRICS if name in metrics],
        "",
        "## Other figures",
        "",
        *[f"- {name}: {_fmt(value)}" for name, value in metrics.items() if name not in CARD_METRICS],
        "",
    ]
    if per_class:
        lines += [
            "## Holdout metrics per class (argmax decision)",
            "",
            "| class | precision | recall | f1 | n |",
            "|---|---|---|---|---|",
            *[
                f"| {name} | {_fmt(v['precision'])} | {_fmt(v['recall'])} | {_fmt(v['f1'])} | {int(v['n'])} |"
                for name, v in per_class.items()
            ],
            "",
        ]
    if slices:
        lines += [
            "## Holdout MCC by slice",
            "",
            *[
                f"- {key} = {value}: MCC {_fmt(entry['mcc'])} (n={entry['n']})"
                for key, per_value in slices.items()
                for value, entry in per_value.items()
            ],
            "",
        ]
    if usage:
        lines += ["## Use", "", usage.strip(), ""]
    lines += [
        "## Training settings",
        "",
        *[f"- {name}: `{value}`" for name, value in settings.items()],
        "",
        "## Intended use and limits",
        "",
        f'Answers "{dataset.question}" for images like those of this project. The threshold is chosen on the val',
        "split only; re-check it when the camera fleet or the season changes (drift).",
        "",
    ]
    artifact_dir.mkdir(parents=True, exist_ok=True)
    (artifact_dir / MODEL_CARD_FILE).write_text("\n".join(lines))
    return {"model_card": MODEL_CARD_FILE}


REGISTRY_LINE = "- **Registry**:"


def stamp_model_card(artifact_dir: Path, *, project: str, version: int) -> None:
    """Names the registry version in the card; only the registry knows it, when it registers the model (before
    it zips what the cascade downloads). Idempotent: a re-registration replaces the line."""
    card = artifact_dir / MODEL_CARD_FILE
    if not card.exists():
        return
    lines = [line for line in card.read_text().splitlines() if not line.startswith(REGISTRY_LINE)]
    stamp = f"{REGISTRY_LINE} project `{project}`, model version v{version}"
    lines.insert(min(2, len(lines)), stamp)  # the first bullet, under the title
    card.write_text("\n".join(lines) + "\n")
