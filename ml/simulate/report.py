"""Learning curves → JSON, a PNG with mean ± std bands, and the "labels needed to reach X" table."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ml.simulate.config import GAL2017_LABELS_TO_ERROR, SimulationConfig
from ml.simulate.efficiency import runs_by_strategy, seed_band
from ml.simulate.loop import Curve


def summarise(curves: list[Curve]) -> dict[str, dict]:
    """Per strategy: label counts, mean and std of the metric over seeds, mean seconds per round."""
    summary: dict[str, dict] = {}
    for strategy, runs in runs_by_strategy(curves).items():
        length, band = seed_band(runs, lambda c: c.metric)
        summary[strategy] = {
            **band,
            "seconds_per_round": float(np.mean([np.mean(c.round_seconds) for c in runs])),
            "positives_labeled": np.mean([c.positives[:length] for c in runs], axis=0).tolist(),
        }
    return summary


def labels_to_reach(
    labels: list[int], values: list[float], target: float, *, lower_is_better: bool
) -> int | None:
    """First label count whose mean metric reaches the target; None when the curve never gets there."""
    for n, v in zip(labels, values, strict=True):
        if (v <= target) if lower_is_better else (v >= target):
            return int(n)
    return None


def labels_table(summary: dict[str, dict], config: SimulationConfig) -> list[dict]:
    lower = config.metric == "error"
    rows = []
    for strategy, s in summary.items():
        row: dict = {"strategy": strategy, "seconds_per_round": round(s["seconds_per_round"], 2)}
        for target in config.targets:
            row[f"{config.metric}<={target}" if lower else f"{config.metric}>={target}"] = labels_to_reach(
                s["labels"], s["mean"], target, lower_is_better=lower
            )
        rows.append(row)
    random_row = next((r for r in rows if r["strategy"] == "random"), None)
    for row in rows:
        for key in [k for k in row if k.startswith(config.metric)]:
            base = random_row[key] if random_row else None
            row[f"{key} vs random"] = round(row[key] / base, 2) if row[key] and base else None
        if config.dataset == "mnist" and row["strategy"] in GAL2017_LABELS_TO_ERROR:
            row["paper (10% / 5%)"] = GAL2017_LABELS_TO_ERROR[row["strategy"]]
    return rows


def format_table(rows: list[dict], config: SimulationConfig) -> str:
    keys = [k for k in rows[0] if k != "strategy"]
    for row in rows[1:]:
        keys += [k for k in row if k not in keys and k != "strategy"]
    header = ["strategy", *keys]

    def cell(key: str, v: object) -> str:
        if v is None:
            return "n/a" if key.endswith("vs random") else f"> {config.max_labels}"
        return "/".join(map(str, v)) if isinstance(v, tuple) else str(v)

    lines = [" | ".join(header)] + [" | ".join(cell(k, r.get(k)) for k in header) for r in rows]
    return "\n".join(lines)


def plot_curves(summary: dict[str, dict], config: SimulationConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, s in summary.items():
        labels, mean, std = np.array(s["labels"]), np.array(s["mean"]), np.array(s["std"])
        ax.plot(labels, mean, label=strategy)
        ax.fill_between(labels, mean - std, mean + std, alpha=0.2)
    for target in config.targets:
        ax.axhline(target, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("labels")
    ax.set_ylabel("test error" if config.metric == "error" else "test MCC")
    ax.set_title(f"{config.dataset}, {config.protocol}, {config.seeds} seed(s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(curves: list[Curve], config: SimulationConfig) -> dict:
    """Writes curves.json, curves.png and table.txt under config.out; returns the JSON document."""
    config.out.mkdir(parents=True, exist_ok=True)
    summary = summarise(curves)
    rows = labels_table(summary, config)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    document = {
        "config": settings,
        "metric": config.metric,
        "targets": list(config.targets),
        "strategies": summary,
        "table": rows,
        "runs": [asdict(c) for c in curves],
    }
    (config.out / "curves.json").write_text(json.dumps(document, indent=1))
    (config.out / "table.txt").write_text(format_table(rows, config) + "\n")
    plot_curves(summary, config, config.out / "curves.png")
    return document
