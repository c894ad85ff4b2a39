"""Labels-to-target per seed, mean ± std over seeds, beside the published rows; importable without torch.

A run on disk is a `Trace`: the test error after each round of one strategy on one seed, whether it finished its
label budget, and the validation error of the same model (what a practitioner could see; the test set is only
for the report — Munjal et al. 2022, Lüth et al. 2023)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.simulate.config import GAL2017_LABELS_TO_ERROR

TARGETS = (0.10, 0.05)

# What every arm of a table shares; printed with the table on the report page and in README.
PROTOCOL_NOTES = (
    "Every arm (random included) uses the same model, training recipe, seed set, validation set and test set; "
    "only the acquisition differs.",
    "Several seeds per arm (a seed fixes the initial labels, the initialisation and the pool subsets); "
    "labels-to-target is measured per seed and shown as mean ± std with how many seeds reached it.",
    "Hyper-parameters are fixed in advance; a small labeled validation set, disjoint from the pool and the test "
    "set, is tracked but never used to choose between arms; the 10,000-image test set only reports.",
    "The random arm is always shown: a strategy's gain is read against random on the same features and recipe "
    "(Munjal et al., CVPR 2022; Lüth et al., NeurIPS 2023).",
)


@dataclass
class Trace:
    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    finished: bool = False


def labels_to_reach(trace: Trace, target: float) -> int | None:
    """First label count whose test error is at or below the target; None when it has not (yet) got there."""
    for n, err in zip(trace.labels, trace.test_error, strict=False):
        if err <= target:
            return int(n)
    return None


def _cell(traces: list[Trace], target: float, budget: int) -> dict:
    reached = [n for t in traces if (n := labels_to_reach(t, target)) is not None]
    censored = sum(1 for t in traces if labels_to_reach(t, target) is None and t.finished)
    pending = len(traces) - len(reached) - censored
    cell: dict = {"per_seed": [labels_to_reach(t, target) for t in traces], "reached": len(reached)}
    cell["seeds"], cell["censored"], cell["pending"] = len(traces), censored, pending
    if reached:
        cell["mean"], cell["std"] = float(np.mean(reached)), float(np.std(reached))
    cell["text"] = format_cell(cell, budget)
    return cell


def format_cell(cell: dict, budget: int) -> str:
    """ "143 ± 12" when every seed got there; otherwise say how many did and why not (budget or still running)."""
    if cell["reached"] == cell["seeds"]:
        return f"{cell['mean']:.0f} ± {cell['std']:.0f}"
    parts = []
    if cell["reached"]:
        parts.append(f"{cell['mean']:.0f} ± {cell['std']:.0f} ({cell['reached']}/{cell['seeds']} seeds)")
    if cell["censored"]:
        parts.append(f"> {budget} ({cell['censored']} seeds)")
    if cell["pending"]:
        parts.append(f"not yet ({cell['pending']} seeds unfinished)")
    return "; ".join(parts)


def error_at(traces: list[Trace], labels: int) -> str:
    """Mean ± std test error at a label count, over the seeds that have got there."""
    values = [t.test_error[t.labels.index(labels)] for t in traces if labels in t.labels]
    if not values:
        return "-"
    seeds = "" if len(values) == len(traces) else f" ({len(values)}/{len(traces)} seeds)"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}{seeds}"


def efficiency_rows(
    traces: list[Trace], budget: int, *, paper: bool = True, checkpoints: tuple[int, ...] = ()
) -> list[dict]:
    """One row per strategy: labels to 10% / 5% test error, test error at a few label counts, seeds done and
    labels reached so far."""
    rows = []
    for strategy in dict.fromkeys(t.strategy for t in traces):
        runs = [t for t in traces if t.strategy == strategy]
        row: dict = {"strategy": strategy}
        for target in TARGETS:
            row[f"labels to {target:.0%} error"] = _cell(runs, target, budget)["text"]
        for n in checkpoints:
            row[f"error at {n}"] = error_at(runs, n)
        row["seeds finished"] = f"{sum(t.finished for t in runs)}/{len(runs)}"
        row["labels so far"] = "/".join(str(t.labels[-1] if t.labels else 0) for t in runs)
        last = [t.test_error[-1] for t in runs if t.test_error]
        row["last test error"] = f"{np.mean(last):.3f}" if last else "-"
        if paper:
            published = GAL2017_LABELS_TO_ERROR.get(strategy)
            row["paper (10% / 5%)"] = f"{published[0]} / {published[1]}" if published else "-"
        rows.append(row)
    return rows


def efficiency_section(
    traces: list[Trace],
    *,
    title: str,
    budget: int,
    paper: bool,
    recipe: str,
    checkpoints: tuple[int, ...] = (),
) -> dict:
    return {
        "title": title,
        "recipe": recipe,
        "rows": efficiency_rows(traces, budget, paper=paper, checkpoints=checkpoints),
        "notes": list(PROTOCOL_NOTES),
        "cells": {
            t.strategy: {
                f"{x:.2f}": _cell([r for r in traces if r.strategy == t.strategy], x, budget) for x in TARGETS
            }
            for t in traces
        },
    }


def markdown_table(section: dict) -> str:
    rows = section["rows"]
    header = list(rows[0]) if rows else ["strategy"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in header) + " |" for r in rows]
    return "\n".join(lines)


def runs_by_strategy(runs: list) -> dict[str, list]:
    """The runs (anything with a `strategy`) grouped by strategy, in first-seen order."""
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(run.strategy, []).append(run)
    return grouped


def seed_band(runs: list, series: Callable[[Any], list]) -> tuple[int, dict]:
    """Mean and std over seeds of `series(run)` on the rounds every seed has done: (rounds, {labels, mean,
    std}); every learning-curve chart of /simulate is drawn from one of these."""
    length = min(len(series(run)) for run in runs)
    values = np.array([series(run)[:length] for run in runs])
    band = {
        "labels": runs[0].labels[:length],
        "mean": values.mean(axis=0).tolist(),
        "std": values.std(axis=0).tolist(),
    }
    return length, band


def curve_summary(traces: list[Trace]) -> dict[str, dict]:
    """Mean ± std test error over seeds on the rounds every seed has done (the page's learning-curve chart)."""
    summary: dict[str, dict] = {}
    for strategy, runs in runs_by_strategy([t for t in traces if t.test_error]).items():
        _, band = seed_band(runs, lambda t: t.test_error)
        seconds = float(np.mean([np.mean(t.seconds) for t in runs if t.seconds] or [0.0]))
        summary[strategy] = {**band, "seconds_per_round": seconds}
    return summary


def write_json_atomic(path: Path, document: object) -> None:
    """Write then rename, so an interrupted run never leaves half a file that a resume would trust."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1))
    os.replace(tmp, path)


def report_document(traces: list[Trace], settings: dict, section: dict) -> dict:
    """curves.json in the simulator's format (the /simulate page reads it) plus the `efficiency` table."""
    return {
        "config": settings,
        "metric": "error",
        "targets": list(TARGETS),
        "strategies": curve_summary(traces),
        "table": section["rows"],
        "efficiency": section,
        "runs": [asdict(t) for t in traces],
    }
