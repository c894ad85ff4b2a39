"""Labels-per-MCC accounting on the overview: holdout MCC of the registry's versions against the labels each
was trained on, the fitted learning curve (ml.learning_curve), and what the simulator says the ranking saved."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.dashboard.simulation import REPORT_FILE, list_runs, simulations_root
from app.datasets.models import DatasetItem, DatasetVersion
from app.projects.models import Project
from app.registry import service as registry
from app.registry.models import PRODUCTION, ModelVersion
from ml.learning_curve import MIN_POINTS, CurvePoint, LearningCurveFit, fit_learning_curve, sd_from_interval

MAX_REPORTS_SCANNED = 50  # simulator runs read per overview, newest first


@dataclass
class LabelAccounting:
    family: str | None  # the model name whose versions make the curve (one training recipe)
    points: list[CurvePoint] = field(default_factory=list)
    fit: LearningCurveFit | None = None
    saving: dict[str, Any] | None = None  # the simulator's labels_saved for this project, with its run
    min_points: int = MIN_POINTS

    @property
    def distinct_label_counts(self) -> int:
        return len({p.labels for p in self.points})


def labels_used(db_session: Session, version: DatasetVersion) -> int:
    """Labeled items the version trains on (train and val, not the holdout, not the unlabeled pool)."""
    split_classes = (version.stats or {}).get("split_classes")
    if isinstance(split_classes, dict):
        return sum(
            int(count)
            for split, classes in split_classes.items()
            if split != "holdout"
            for name, count in classes.items()
            if name != "unlabeled"
        )
    query = select(func.count()).where(
        DatasetItem.dataset_version_id == version.id,
        DatasetItem.split != "holdout",
        DatasetItem.label.is_not(None),
    )
    return int(db_session.scalar(query) or 0)


def _family(models: list[ModelVersion]) -> str | None:
    """The production model's name, else the name with the most versions: one recipe, so the curve measures
    labels and not a change of model kind."""
    production = next((m for m in models if m.stage == PRODUCTION), None)
    if production is not None:
        return production.name
    counts: dict[str, int] = defaultdict(int)
    for model in models:
        counts[model.name] += 1
    return max(counts, key=lambda name: (counts[name], name)) if counts else None


def curve_points(*, db_session: Session, project: Project) -> tuple[str | None, list[CurvePoint]]:
    """(family, points): one point per version of the family with a holdout MCC, trained on a whole-stream
    dataset version (slice specialists train on a part of it and are left out)."""
    versions = {
        v.id: v
        for v in db_session.scalars(select(DatasetVersion).where(DatasetVersion.project_id == project.id))
    }
    models = [
        m
        for m in registry.list_models(db_session=db_session, project=project)
        if m.dataset_version_id in versions
        and not (versions[m.dataset_version_id].filters or {}).get("slice")
        and isinstance((m.metrics or {}).get("mcc"), int | float)
    ]
    family = _family(models)
    points = []
    for model in sorted((m for m in models if m.name == family), key=lambda m: m.version):
        interval = registry.mcc_interval(db_session=db_session, model=model) or {}
        points.append(
            CurvePoint(
                labels=labels_used(db_session, versions[model.dataset_version_id]),
                mcc=float(model.metrics["mcc"]),
                sd=sd_from_interval(interval.get("ci_low"), interval.get("ci_high")),
                version=model.version,
            )
        )
    return family, [p for p in points if p.labels > 0]


def simulator_saving(settings: Settings, project: Project) -> dict[str, Any] | None:
    """The newest simulator report made for this project (`--project`) that says how many labels the ranking
    saved against random; unreadable reports are skipped."""
    root = simulations_root(settings)
    for run in list_runs(root)[:MAX_REPORTS_SCANNED]:
        try:
            report = json.loads((root / run / REPORT_FILE).read_text())
        except (OSError, ValueError):
            continue
        config = report.get("config") if isinstance(report, dict) else None
        saved = report.get("labels_saved") if isinstance(report, dict) else None
        if isinstance(config, dict) and config.get("project") == project.name and isinstance(saved, dict):
            return {**saved, "run": run, "dataset": config.get("dataset"), "seeds": config.get("seeds")}
    return None


def label_accounting(*, db_session: Session, project: Project, settings: Settings) -> LabelAccounting:
    family, points = curve_points(db_session=db_session, project=project)
    return LabelAccounting(
        family=family,
        points=points,
        fit=fit_learning_curve(points),
        saving=simulator_saving(settings, project),
    )


def labels_text(value: float) -> str:
    """A label count for the page: rounded up to whole labels, '∞' when no count reaches the target."""
    if value == float("inf"):
        return "∞"
    return f"{int(-(-value // 1)):,}"
