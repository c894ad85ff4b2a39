"""Registering finished jobs as model versions, measured here on the project's holdout with ml.evaluation,
and moving them between stages (candidate, production, archived) with an audit trail."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import ApiError
from app.datasets.models import DatasetItem, DatasetVersion
from app.datasets.service import item_metadata, zip_directory
from app.ingest.models import Item
from app.jobs.models import Job
from app.jobs.service import as_utc
from app.projects.models import Project
from app.registry.models import ARCHIVED, PRODUCTION, HoldoutScore, ModelVersion, SliceRoute, StageChange
from app.webhooks import service as webhooks
from ml.evaluation import (
    binary_metrics,
    bootstrap_mcc_difference,
    bootstrap_mcc_interval,
    reliability_curve,
    slice_mcc,
)
from ml.multiclass import (
    bootstrap_multiclass_mcc_difference,
    bootstrap_multiclass_mcc_interval,
    multiclass_mcc,
    multiclass_metrics,
    per_class_metrics,
    slice_multiclass_mcc,
    top1_reliability,
)
from ml.slices import slice_label, slice_matches
from ml.training.common.artifacts import stamp_model_card

SLICE_KEYS = ("is_night", "camera_id")
N_BOOT = 1000


def finite(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (PostgreSQL JSONB rejects them), recursively."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def is_positive(label: int | None, boxes: list | None) -> int:
    """Holdout truth for P(positive): class 0 is the negative class; box-only labels count by their boxes."""
    if label is None:
        return int(bool(boxes))
    return int(label != 0)


# --- evaluation ---------------------------------------------------------------------------------------------


def holdout_truth(*, db_session: Session, dataset_version_id: int) -> dict[int, int]:
    """Holdout item -> truth: positive or not (binary, detection), the class index (multiclass)."""
    query = select(DatasetItem.item_id, DatasetItem.label, DatasetItem.boxes).where(
        DatasetItem.dataset_version_id == dataset_version_id, DatasetItem.split == "holdout"
    )
    kind = db_session.scalar(
        select(Project.kind)
        .join(DatasetVersion, DatasetVersion.project_id == Project.id)
        .where(DatasetVersion.id == dataset_version_id)
    )
    rows = db_session.execute(query)
    if kind == "multiclass":
        return {item_id: int(label) for item_id, label, _ in rows if label is not None}
    return {item_id: is_positive(label, boxes) for item_id, label, boxes in rows}


def slice_values(*, db_session: Session, item_ids: list[int], keys: list[str]) -> dict[str, dict[int, Any]]:
    out: dict[str, dict[int, Any]] = {key: {} for key in keys}
    for item in db_session.scalars(select(Item).where(Item.id.in_(item_ids))):
        for key in keys:
            value = getattr(item, key) if key in Item.__table__.columns else (item.meta or {}).get(key)
            out[key][item.id] = str(value).lower() if isinstance(value, bool) else value
    return out


def is_multiclass(scores: dict[int, Any]) -> bool:
    """Multiclass models store class probabilities per item (lists), binary ones P(positive) (floats)."""
    return any(isinstance(v, list) for v in scores.values())


def holdout_evaluation(
    scores: dict[int, Any],
    truth: dict[int, int],
    threshold: float,
    slices: dict[str, dict[int, Any]],
    classes: list[str] | None = None,
) -> dict[str, Any]:
    """Every registry metric on the items both scored and labeled: MCC first, calibration, per-slice MCC;
    for class probabilities (multiclass) at the argmax, with per-class precision, recall and F1."""
    ids = sorted(set(scores) & set(truth))
    if not ids:
        raise ValueError("holdout_scores: no scored item is in the labeled holdout")
    if is_multiclass(scores):
        return _multiclass_evaluation(scores, truth, ids, slices, classes)
    s = np.array([scores[i] for i in ids], dtype=np.float64)
    y = np.array([truth[i] for i in ids], dtype=np.int64)
    metrics: dict[str, Any] = binary_metrics(s, y, threshold)
    metrics["mcc_ci"] = bootstrap_mcc_interval(s, y, threshold, n_boot=N_BOOT)
    metrics["missing_scores"] = len(set(truth) - set(scores))
    metrics["reliability"] = reliability_curve(s, y)
    metrics["slices"] = {
        key: slice_mcc(s, y, threshold, [values.get(i) for i in ids]) for key, values in slices.items()
    }
    return finite(metrics)


def _multiclass_evaluation(
    scores: dict[int, list[float]],
    truth: dict[int, int],
    ids: list[int],
    slices: dict[str, dict[int, Any]],
    classes: list[str] | None,
) -> dict[str, Any]:
    probs = np.array([scores[i] for i in ids], dtype=np.float64)
    y = np.array([truth[i] for i in ids], dtype=np.int64)
    names = (
        list(classes)
        if classes and len(classes) == probs.shape[1]
        else [str(k) for k in range(probs.shape[1])]
    )
    predictions = probs.argmax(axis=1)
    metrics: dict[str, Any] = multiclass_metrics(probs, y, names)
    metrics["decision"] = "argmax"
    metrics["per_class"] = per_class_metrics(y, predictions, names)
    metrics["mcc_ci"] = bootstrap_multiclass_mcc_interval(predictions, y, len(names), n_boot=N_BOOT)
    metrics["missing_scores"] = len(set(truth) - set(scores))
    metrics["reliability"] = top1_reliability(probs, y)
    metrics["slices"] = {
        key: slice_multiclass_mcc(predictions, y, len(names), [values.get(i) for i in ids])
        for key, values in slices.items()
    }
    return finite(metrics)


def mcc_by_slice(scores: list[Any], labels: Any, threshold: float, values: list[Any]) -> dict[str, dict]:
    """Per-slice MCC of stored scores: at `threshold` for P(positive), at the argmax for class probabilities."""
    if scores and isinstance(scores[0], list):
        predictions = np.array(scores).argmax(axis=1)
        return slice_multiclass_mcc(predictions, labels, len(scores[0]), values)
    return slice_mcc(scores, labels, threshold, values)


def stored_scores(*, db_session: Session, model_version_id: int) -> dict[int, Any]:
    """Item -> the stored holdout score: P(positive), or the class probabilities of a multiclass model."""
    query = select(HoldoutScore.item_id, HoldoutScore.score, HoldoutScore.probs).where(
        HoldoutScore.model_version_id == model_version_id
    )
    return {item_id: score if probs is None else probs for item_id, score, probs in db_session.execute(query)}


def compare_models(
    *,
    candidate_scores: dict[int, Any],
    candidate_threshold: float,
    baseline_scores: dict[int, Any],
    baseline_threshold: float,
    truth: dict[int, int],
    n_boot: int = N_BOOT,
) -> dict[str, Any] | None:
    """Paired bootstrap of the MCC difference on the items both models scored (at each model's threshold, or
    the argmax of class probabilities); None without overlap or when one is multiclass and the other not."""
    ids = sorted(set(candidate_scores) & set(baseline_scores) & set(truth))
    if not ids or is_multiclass(candidate_scores) != is_multiclass(baseline_scores):
        return None
    labels = [truth[i] for i in ids]
    if is_multiclass(candidate_scores):
        cand_pred = np.array([candidate_scores[i] for i in ids]).argmax(axis=1)
        base_pred = np.array([baseline_scores[i] for i in ids]).argmax(axis=1)
        n_classes = len(candidate_scores[ids[0]])
        diff = bootstrap_multiclass_mcc_difference(cand_pred, base_pred, labels, n_classes, n_boot=n_boot)
        cand_mcc = multiclass_mcc(labels, cand_pred, n_classes)
        base_mcc = multiclass_mcc(labels, base_pred, n_classes)
        return finite({"n": len(ids), "mcc": cand_mcc, "production_mcc": base_mcc, **diff})
    cand = [candidate_scores[i] for i in ids]
    base = [baseline_scores[i] for i in ids]
    diff = bootstrap_mcc_difference(
        cand, base, labels, candidate_threshold, baseline_threshold, n_boot=n_boot
    )
    cand_mcc = binary_metrics(cand, labels, candidate_threshold)["mcc"]
    base_mcc = binary_metrics(base, labels, baseline_threshold)["mcc"]
    return finite({"n": len(ids), "mcc": cand_mcc, "production_mcc": base_mcc, **diff})


# --- registration -------------------------------------------------------------------------------------------


def production_model(*, db_session: Session, project: Project) -> ModelVersion | None:
    return db_session.scalar(
        select(ModelVersion).where(ModelVersion.project_id == project.id, ModelVersion.stage == PRODUCTION)
    )


def archive_artifact(artifact_dir: Path, archive: Path) -> tuple[str, int]:
    """Zips the artifact dir (atomically) and returns (sha256, bytes) of the zip."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=archive.parent, suffix=".zip")
    os.close(fd)
    zip_directory(artifact_dir, Path(tmp))
    os.replace(tmp, archive)
    digest = hashlib.sha256()
    with archive.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest(), archive.stat().st_size


def register_model_version(
    *,
    db_session: Session,
    job: Job,
    project: Project,
    artifact_dir: Path,
    threshold: float,
    holdout_scores: dict[int, float],
    training_metrics: dict[str, Any],
    files: dict[str, str],
    settings: Settings,
    method: str = "",
    holdout_probs: dict[int, list[float]] | None = None,
) -> ModelVersion:
    """A new candidate from a finished job, with holdout metrics and the comparison to production; its name
    says how it was trained (e.g. roadwork-classifier_lora-full vs -lora)."""
    existing = db_session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    if existing is not None:
        return existing
    scores: dict[int, Any] = {int(k): float(v) for k, v in holdout_scores.items()}
    if holdout_probs:  # multiclass: the class probabilities are what is measured and compared
        scores = {int(k): [float(p) for p in v] for k, v in holdout_probs.items()}
    truth = holdout_truth(db_session=db_session, dataset_version_id=job.dataset_version_id)
    keys = list(dict.fromkeys([*SLICE_KEYS, *(job.slice_keys or [])]))
    slices = slice_values(db_session=db_session, item_ids=sorted(truth), keys=keys)
    metrics = holdout_evaluation(scores, truth, threshold, slices, list(project.classes or []))
    production = production_model(db_session=db_session, project=project)
    spec = dataset_slice(db_session=db_session, dataset_version_id=job.dataset_version_id)
    if spec is not None:
        metrics["slice"] = slice_comparison(
            db_session=db_session,
            spec=spec,
            scores=scores,
            threshold=threshold,
            truth=truth,
            production=production,
        )
    if production is not None:
        metrics["vs_production"] = compare_models(
            candidate_scores=scores,
            candidate_threshold=threshold,
            baseline_scores=stored_scores(db_session=db_session, model_version_id=production.id),
            baseline_threshold=production.threshold,
            truth=truth,
        )
        metrics["vs_production_version"] = production.version
    latest = db_session.scalar(
        select(func.max(ModelVersion.version)).where(ModelVersion.project_id == project.id)
    )
    version = (latest or 0) + 1
    stamp_model_card(artifact_dir, project=project.name, version=version)  # the card inside the archive
    archive = settings.data_dir.resolve() / "models" / f"project-{project.id}" / f"job-{job.id}.zip"
    sha256, size = archive_artifact(artifact_dir, archive)
    model = ModelVersion(
        project_id=project.id,
        name="-".join(part for part in (project.name, job.kind, method) if part),
        version=version,
        kind=job.kind,
        job_id=job.id,
        dataset_version_id=job.dataset_version_id,
        threshold=float(threshold),
        metrics=metrics,
        training_metrics=finite(dict(training_metrics)),
        artifact_dir=str(artifact_dir),
        artifact_archive=str(archive),
        artifact_sha256=sha256,
        artifact_bytes=size,
        files=dict(files),
    )
    db_session.add(model)
    db_session.flush()
    rows = [
        {"model_version_id": model.id, "item_id": i, **stored_row(s)} for i, s in scores.items() if i in truth
    ]
    if rows:
        db_session.execute(insert(HoldoutScore), rows)
    return model


def stored_row(score: Any) -> dict[str, Any]:
    """A holdout_scores row's values: P(positive), or the top-1 probability beside the class probabilities."""
    if isinstance(score, list):
        return {"score": max(score), "probs": score}
    return {"score": score, "probs": None}


# --- reading ------------------------------------------------------------------------------------------------


def list_models(*, db_session: Session, project: Project) -> list[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.project_id == project.id)
    return list(db_session.scalars(query.order_by(ModelVersion.version.desc())))


def get_model(*, db_session: Session, project: Project, version: int) -> ModelVersion:
    found = db_session.scalar(
        select(ModelVersion).where(ModelVersion.project_id == project.id, ModelVersion.version == version)
    )
    if found is None:
        raise ApiError(404, "version", f"project {project.name!r} has no model version {version}")
    return found


def artifact_url(project: Project, model: ModelVersion) -> str:
    return f"/api/v1/projects/{project.name}/models/{model.version}/artifact"


def comparison_rows(
    *,
    db_session: Session,
    project: Project,
    version: int | None = None,
    n_boot: int = N_BOOT,
    min_holdout_items: int = 0,
) -> list[dict[str, Any]]:
    """Every model of the project (or just `version`) with its holdout metrics and, for non-production models,
    a paired bootstrap against the current production model on their common holdout items."""
    models = list_models(db_session=db_session, project=project)
    datasets = dict(
        db_session.execute(
            select(DatasetVersion.id, DatasetVersion.version).where(DatasetVersion.project_id == project.id)
        ).all()
    )
    production = next((m for m in models if m.stage == PRODUCTION), None)
    production_scores = (
        stored_scores(db_session=db_session, model_version_id=production.id) if production else {}
    )
    routed = {route.model_version_id for route, _ in slice_routes(db_session=db_session, project=project)}
    rows = []
    for model in models:
        if version is not None and model.version != version:
            continue
        versus = None
        if production is not None and model.id != production.id and model.dataset_version_id is not None:
            versus = compare_models(
                candidate_scores=stored_scores(db_session=db_session, model_version_id=model.id),
                candidate_threshold=model.threshold,
                baseline_scores=production_scores,
                baseline_threshold=production.threshold,
                truth=holdout_truth(db_session=db_session, dataset_version_id=model.dataset_version_id),
                n_boot=n_boot,
            )
            if versus is not None:
                versus["production_version"] = production.version
        interval = mcc_interval(db_session=db_session, model=model)
        row = model_row(project, model, datasets.get(model.dataset_version_id), versus, interval)
        n = int((model.metrics or {}).get("n") or 0)
        row["gate"] = gate_refusals(n, min_holdout_items, versus, production.version if production else None)
        spec = dataset_slice(db_session=db_session, dataset_version_id=model.dataset_version_id)
        if spec is not None:
            findings = specialist_findings(db_session=db_session, model=model, spec=spec, n_boot=n_boot)
            row["slice"], row["slice_vs_production"] = spec, findings
            row["gate"] = slice_gate_refusals(findings, min_holdout_items)
            row["serves_slice"] = model.id in routed
        rows.append(row)
    return rows


def mcc_interval(*, db_session: Session, model: ModelVersion) -> dict | None:
    """The model's holdout MCC with its bootstrap 95% CI (stored at registration; computed for older versions)."""
    stored = (model.metrics or {}).get("mcc_ci")
    if stored is not None or model.dataset_version_id is None:
        return stored
    truth = holdout_truth(db_session=db_session, dataset_version_id=model.dataset_version_id)
    scores = stored_scores(db_session=db_session, model_version_id=model.id)
    ids = sorted(set(scores) & set(truth))
    if not ids:
        return None
    if is_multiclass(scores):
        predictions = np.array([scores[i] for i in ids]).argmax(axis=1)
        n_classes = len(scores[ids[0]])
        labels = [truth[i] for i in ids]
        return finite(bootstrap_multiclass_mcc_interval(predictions, labels, n_classes, n_boot=N_BOOT))
    return finite(
        bootstrap_mcc_interval(
            [scores[i] for i in ids], [truth[i] for i in ids], model.threshold, n_boot=N_BOOT
        )
    )


def model_row(
    project: Project,
    model: ModelVersion,
    dataset_version: int | None,
    versus: dict | None,
    mcc_ci: dict | None = None,
) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "kind": model.kind,
        "stage": model.stage,
        "job_id": model.job_id,
        "dataset_version": dataset_version,
        "threshold": model.threshold,
        "metrics": model.metrics,
        "mcc_ci": mcc_ci,
        "training_metrics": model.training_metrics,
        "vs_production": versus,
        "artifact_url": artifact_url(project, model),
        "artifact_sha256": model.artifact_sha256,
        "artifact_bytes": model.artifact_bytes,
        "files": model.files,
        "created_at": as_utc(model.created_at),
        "promoted_at": as_utc(model.promoted_at),
    }


def stage_history(*, db_session: Session, project: Project) -> list[dict[str, Any]]:
    versions = dict(
        db_session.execute(
            select(ModelVersion.id, ModelVersion.version).where(ModelVersion.project_id == project.id)
        ).all()
    )
    changes = db_session.scalars(
        select(StageChange).where(StageChange.project_id == project.id).order_by(StageChange.id.desc())
    )
    return [
        {
            "version": versions.get(c.model_version_id),
            "action": c.action,
            "from_stage": c.from_stage,
            "to_stage": c.to_stage,
            "replaced_version": versions.get(c.replaced_version_id),
            "user_id": c.user_id,
            "note": c.note,
            "forced": c.forced,
            "force_reason": c.force_reason,
            "gate": c.gate,
            "created_at": as_utc(c.created_at),
        }
        for c in changes
    ]


# --- stages -------------------------------------------------------------------------------------------------


def _lock_project(db_session: Session, project: Project) -> None:
    """Serialises stage changes of one project (SQLite serialises every writer anyway)."""
    db_session.execute(select(Project.id).where(Project.id == project.id).with_for_update())


def _set_stage(
    db_session: Session,
    model: ModelVersion,
    stage: str,
    action: str,
    user_id: int | None,
    note: str = "",
    replaced: ModelVersion | None = None,
    override: GateOverride | None = None,
) -> None:
    db_session.add(
        StageChange(
            project_id=model.project_id,
            model_version_id=model.id,
            from_stage=model.stage,
            to_stage=stage,
            action=action,
            replaced_version_id=replaced.id if replaced else None,
            user_id=user_id,
            note=note,
            forced=override is not None,
            force_reason=override.reason if override else "",
            gate=override.gate if override else None,
        )
    )
    model.stage = stage
    if stage == PRODUCTION:
        model.promoted_at, model.promoted_by = utcnow(), user_id
    db_session.flush()


def _make_production(
    db_session: Session,
    project: Project,
    model: ModelVersion,
    action: str,
    user_id: int | None,
    note: str,
    override: GateOverride | None = None,
) -> ModelVersion:
    current = production_model(db_session=db_session, project=project)
    if current is not None:
        _set_stage(db_session, current, ARCHIVED, "archive", user_id, f"replaced by v{model.version}")
    _set_stage(db_session, model, PRODUCTION, action, user_id, note, replaced=current, override=override)
    webhooks.emit_model_stage(db_session=db_session, model=model, action=action, replaced=current)
    return model


@dataclass(frozen=True)
class GateOverride:
    reason: str
    gate: dict[str, Any]


def gate_refusals(
    n: int, min_holdout_items: int, versus: dict[str, Any] | None, production_version: int | None
) -> list[str]:
    """Why promotion is refused: a holdout too small to decide anything, or a candidate worse than production
    with confidence (the 95% CI of the paired bootstrap MCC difference lies below 0)."""
    refusals = []
    if n < min_holdout_items:
        refusals.append(
            f"the labeled holdout has {n} items, fewer than the {min_holdout_items} required "
            "(HARDCASE_MIN_HOLDOUT_ITEMS): too few to tell models apart; grow the holdout"
        )
    if versus is not None and versus.get("ci_high") is not None and versus["ci_high"] < 0:
        refusals.append(
            f"worse than production v{production_version} with confidence: MCC {versus['mcc']:.3f} vs "
            f"{versus['production_mcc']:.3f}, difference {versus['mean']:+.3f} "
            f"(95% CI {versus['ci_low']:+.3f} to {versus['ci_high']:+.3f})"
        )
    return refusals


def promotion_gate(
    *, db_session: Session, project: Project, model: ModelVersion, min_holdout_items: int
) -> dict[str, Any]:
    """The gate's findings for promoting `model` now: holdout size and the comparison with production."""
    n = int((model.metrics or {}).get("n") or 0)
    production = production_model(db_session=db_session, project=project)
    versus = None
    if production is not None and production.id != model.id and model.dataset_version_id is not None:
        versus = compare_models(
            candidate_scores=stored_scores(db_session=db_session, model_version_id=model.id),
            candidate_threshold=model.threshold,
            baseline_scores=stored_scores(db_session=db_session, model_version_id=production.id),
            baseline_threshold=production.threshold,
            truth=holdout_truth(db_session=db_session, dataset_version_id=model.dataset_version_id),
        )
    production_version = production.version if production else None
    refusals = gate_refusals(n, min_holdout_items, versus, production_version)
    return {
        "passed": not refusals,
        "refusals": refusals,
        "holdout_n": n,
        "min_holdout_items": min_holdout_items,
        "production_version": production_version,
        "vs_production": versus,
    }


def promote(
    *,
    db_session: Session,
    project: Project,
    version: int,
    user_id: int | None,
    min_holdout_items: int = 0,
    note: str = "",
    force: bool = False,
    reason: str = "",
) -> ModelVersion:
    """Makes `version` the production model (the previous one is archived) if the gate passes; an admin may
    force a refused promotion with a reason, kept with the gate's findings in the stage history."""
    _lock_project(db_session, project)
    model = get_model(db_session=db_session, project=project, version=version)
    spec = dataset_slice(db_session=db_session, dataset_version_id=model.dataset_version_id)
    if spec is not None:
        return promote_for_slice(
            db_session=db_session,
            project=project,
            model=model,
            spec=spec,
            user_id=user_id,
            min_holdout_items=min_holdout_items,
            note=note,
            force=force,
            reason=reason,
        )
    if model.stage == PRODUCTION:
        raise ApiError(409, "version", f"model version {version} is already in production")
    gate = promotion_gate(
        db_session=db_session, project=project, model=model, min_holdout_items=min_holdout_items
    )
    override = None
    if not gate["passed"]:
        if not force:
            raise ApiError(
                409,
                "gate",
                "; ".join(gate["refusals"]) + ". An admin may force it with a reason (force, reason).",
            )
        override = _override(gate, reason)
    return _make_production(db_session, project, model, "promote", user_id, note, override)


def _override(gate: dict[str, Any], reason: str) -> GateOverride:
    if not reason.strip():
        raise ApiError(422, "reason", "forcing a promotion the gate refused needs a reason")
    return GateOverride(reason.strip(), finite(gate))


def rollback(
    *,
    db_session: Session,
    project: Project,
    user_id: int | None,
    to_version: int | None = None,
    note: str = "",
) -> ModelVersion:
    """Restores the model that production replaced last (or `to_version`, which must have served before)."""
    _lock_project(db_session, project)
    current = production_model(db_session=db_session, project=project)
    if to_version is None:
        if current is None:
            raise ApiError(409, "version", "there is no production model to roll back")
        last = db_session.scalar(
            select(StageChange)
            .where(StageChange.model_version_id == current.id, StageChange.to_stage == PRODUCTION)
            .order_by(StageChange.id.desc())
        )
        if last is None or last.replaced_version_id is None:
            raise ApiError(409, "version", f"v{current.version} replaced no earlier production model")
        target = db_session.get(ModelVersion, last.replaced_version_id)
    else:
        target = get_model(db_session=db_session, project=project, version=to_version)
        served = db_session.scalar(
            select(StageChange.id).where(
                StageChange.model_version_id == target.id, StageChange.to_stage == PRODUCTION
            )
        )
        if served is None:
            raise ApiError(409, "version", f"v{to_version} was never in production; promote it instead")
        if target.stage == PRODUCTION:
            raise ApiError(409, "version", f"v{to_version} is already in production")
    return _make_production(db_session, project, target, "rollback", user_id, note)


# --- slice specialists --------------------------------------------------------------------------------------


def dataset_slice(*, db_session: Session, dataset_version_id: int | None) -> dict[str, Any] | None:
    """The slice a dataset version was frozen for (its models are that slice's specialists), else None."""
    if dataset_version_id is None:
        return None
    filters = db_session.scalar(select(DatasetVersion.filters).where(DatasetVersion.id == dataset_version_id))
    return (filters or {}).get("slice")


def slice_truth(*, db_session: Session, truth: dict[int, int], spec: dict[str, Any]) -> dict[int, int]:
    """The labeled holdout items whose metadata falls in the slice."""
    items = db_session.scalars(select(Item).where(Item.id.in_(sorted(truth))))
    return {item.id: truth[item.id] for item in items if slice_matches(spec, item_metadata(item))}


def slice_comparison(
    *,
    db_session: Session,
    spec: dict[str, Any],
    scores: dict[int, float],
    threshold: float,
    truth: dict[int, int],
    production: ModelVersion | None,
    n_boot: int = N_BOOT,
) -> dict[str, Any]:
    """The specialist against the production generalist on the slice's holdout items (the gate's paired
    bootstrap, restricted to the slice)."""
    in_slice = slice_truth(db_session=db_session, truth=truth, spec=spec)
    versus = None
    if production is not None:
        versus = compare_models(
            candidate_scores=scores,
            candidate_threshold=threshold,
            baseline_scores=stored_scores(db_session=db_session, model_version_id=production.id),
            baseline_threshold=production.threshold,
            truth=in_slice,
            n_boot=n_boot,
        )
    return finite(
        {
            "slice": spec,
            "label": slice_label(spec),
            "n": len(in_slice),
            "positives": sum(in_slice.values()),
            "production_version": production.version if production is not None else None,
            "vs_production": versus,
        }
    )


def specialist_findings(
    *, db_session: Session, model: ModelVersion, spec: dict[str, Any], n_boot: int = N_BOOT
) -> dict[str, Any]:
    production = production_model(db_session=db_session, project=db_session.get(Project, model.project_id))
    return slice_comparison(
        db_session=db_session,
        spec=spec,
        scores=stored_scores(db_session=db_session, model_version_id=model.id),
        threshold=model.threshold,
        truth=holdout_truth(db_session=db_session, dataset_version_id=model.dataset_version_id),
        production=production if production is not None and production.id != model.id else None,
        n_boot=n_boot,
    )


def slice_gate_refusals(findings: dict[str, Any], min_holdout_items: int) -> list[str]:
    """Why a specialist may not serve its slice: too few slice items in the holdout, or not better than the
    production generalist there with confidence (the 95% CI of the paired MCC difference must lie above 0)."""
    label, n = findings["label"], findings["n"]
    refusals = []
    if n < min_holdout_items:
        refusals.append(
            f"the labeled holdout has {n} items in the slice {label}, fewer than the {min_holdout_items} required "
            "(HARDCASE_MIN_HOLDOUT_ITEMS): too few to tell models apart there; grow the holdout"
        )
    versus = findings["vs_production"]
    if versus is None or versus.get("ci_low") is None:
        refusals.append(f"no scores of the production generalist on the slice {label} to compare with")
    elif versus["ci_low"] <= 0:
        refusals.append(
            f"not better than production v{findings['production_version']} on the slice {label} with "
            f"confidence: MCC {_shown(versus['mcc'])} vs {_shown(versus['production_mcc'])}, difference "
            f"{versus['mean']:+.3f} "
            f"(95% CI {versus['ci_low']:+.3f} to {versus['ci_high']:+.3f})"
        )
    return refusals


def _shown(mcc: float | None) -> str:
    return "undefined" if mcc is None else f"{mcc:.3f}"


def slice_key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def slice_routes(*, db_session: Session, project: Project) -> list[tuple[SliceRoute, ModelVersion]]:
    """The routing table in the order the cascade applies it (first match wins)."""
    query = (
        select(SliceRoute, ModelVersion)
        .join(ModelVersion, ModelVersion.id == SliceRoute.model_version_id)
        .where(SliceRoute.project_id == project.id)
        .order_by(SliceRoute.id)
    )
    return [(route, model) for route, model in db_session.execute(query)]


def promote_for_slice(
    *,
    db_session: Session,
    project: Project,
    model: ModelVersion,
    spec: dict[str, Any],
    user_id: int | None,
    min_holdout_items: int,
    note: str = "",
    force: bool = False,
    reason: str = "",
) -> ModelVersion:
    """Routes the slice to this specialist if it beats the production generalist there with confidence (an
    admin may force it with a reason); the generalist keeps serving everything else."""
    if production_model(db_session=db_session, project=project) is None:
        raise ApiError(
            409,
            "gate",
            "a specialist serves its slice beside a production generalist: promote a generalist first",
        )
    key = slice_key(spec)
    route = db_session.scalar(
        select(SliceRoute).where(SliceRoute.project_id == project.id, SliceRoute.slice_key == key)
    )
    if route is not None and route.model_version_id == model.id:
        raise ApiError(409, "version", f"model version {model.version} already serves {slice_label(spec)}")
    findings = specialist_findings(db_session=db_session, model=model, spec=spec)
    refusals = slice_gate_refusals(findings, min_holdout_items)
    override = None
    if refusals:
        if not force:
            raise ApiError(
                409, "gate", "; ".join(refusals) + ". An admin may force it with a reason (force, reason)."
            )
        override = _override({"passed": False, "refusals": refusals, **findings}, reason)
    replaced = route.model_version_id if route is not None else None
    if route is None:
        db_session.add(SliceRoute(project_id=project.id, slice_key=key, spec=spec, model_version_id=model.id))
    else:
        route.model_version_id, route.promoted_at = model.id, utcnow()
    db_session.flush()
    route = db_session.scalar(
        select(SliceRoute).where(SliceRoute.project_id == project.id, SliceRoute.slice_key == key)
    )
    route.promoted_by = user_id
    _slice_change(
        db_session, model, "promote_slice", user_id, note or f"serves {slice_label(spec)}", replaced, override
    )
    return model


def withdraw_slice(
    *, db_session: Session, project: Project, version: int, user_id: int | None, note: str = ""
) -> ModelVersion:
    """Stops routing a slice to this specialist: the generalist serves it again."""
    _lock_project(db_session, project)
    model = get_model(db_session=db_session, project=project, version=version)
    route = db_session.scalar(
        select(SliceRoute).where(SliceRoute.project_id == project.id, SliceRoute.model_version_id == model.id)
    )
    if route is None:
        raise ApiError(409, "version", f"model version {version} serves no slice")
    label = slice_label(route.spec)
    db_session.delete(route)
    _slice_change(
        db_session, model, "withdraw_slice", user_id, note or f"no longer serves {label}", None, None
    )
    return model


def _slice_change(
    db_session: Session,
    model: ModelVersion,
    action: str,
    user_id: int | None,
    note: str,
    replaced_id: int | None,
    override: GateOverride | None,
) -> None:
    db_session.add(
        StageChange(
            project_id=model.project_id,
            model_version_id=model.id,
            from_stage=model.stage,
            to_stage=model.stage,  # a specialist keeps its stage: the routing table says what it serves
            action=action,
            replaced_version_id=replaced_id,
            user_id=user_id,
            note=note,
            forced=override is not None,
            force_reason=override.reason if override else "",
            gate=override.gate if override else None,
        )
    )
    db_session.flush()
