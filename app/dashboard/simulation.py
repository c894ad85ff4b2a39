"""Reads the active-learning simulator's output (curves.json from ml.simulate) from under the data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.errors import ApiError

REPORT_FILE = "curves.json"


def simulations_root(settings: Settings) -> Path:
    """Simulator runs live in HARDCASE_SIMULATE_DIR, default data_dir/simulate (one folder per run, or the
    report right there)."""
    return (settings.simulate_dir or settings.data_dir / "simulate").resolve()


def list_runs(root: Path) -> list[str]:
    """Run folders (relative to root, "." for root itself) that hold a report, newest first."""
    if not root.is_dir():
        return []
    reports = sorted(root.rglob(REPORT_FILE), key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p.parent.relative_to(root)) for p in reports]


def run_dir(root: Path, run: str) -> Path:
    """The run folder, refusing anything outside root (a query parameter must not read arbitrary files)."""
    folder = (root / run).resolve()
    if not folder.is_relative_to(root):
        raise ApiError(422, "run", "the run must be a folder under the simulations directory")
    if not (folder / REPORT_FILE).is_file():
        raise ApiError(404, "run", f"no simulator report in {run!r}")
    return folder


def load_report(root: Path, run: str) -> dict[str, Any]:
    path = run_dir(root, run) / REPORT_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ApiError(422, "run", f"unreadable simulator report: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("strategies"), dict):
        raise ApiError(422, "run", "the report has no 'strategies' section")
    return document


def table_columns(rows: list[dict]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def efficiency_tables(root: Path, runs: list[str]) -> list[dict[str, Any]]:
    """The label-efficiency tables (labels to 10% / 5% error per seed, mean ± std) of every run that wrote one
    (ml.simulate.protocol and ml.simulate.features_al), in title order; unreadable reports are skipped."""
    tables = []
    for run in runs:
        try:
            section = json.loads((root / run / REPORT_FILE).read_text()).get("efficiency")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(section, dict) and isinstance(section.get("rows"), list) and section["rows"]:
            rows = [r for r in section["rows"] if isinstance(r, dict)]
            tables.append({**section, "run": run, "rows": rows, "columns": table_columns(rows)})
    return sorted(tables, key=lambda t: str(t.get("title", "")))
