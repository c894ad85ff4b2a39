"""The base-model catalogue: what a job can really start from on this installation (built-in architectures,
folders in the models directory, the local Hugging Face cache, registry versions), checked at submission."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ApiError
from app.jobs.capabilities import kind_availability
from app.projects.models import Project
from app.registry.models import PRODUCTION, ModelVersion
from ml.training import bases
from ml.training.kinds import JOB_KINDS

MAX_LISTED_IN_ERROR = 12


@dataclass(frozen=True)
class BaseModelChoice:
    name: str  # what a job's base-model field takes
    source: str  # builtin | local | hub_cache | registry
    kinds: tuple[str, ...]
    pretrained: bool
    method: str  # what classifier_lora's method='auto' picks for it: lora | full
    description: str

    def as_dict(self) -> dict:
        return {**asdict(self), "kinds": list(self.kinds)}


def kinds_of(family: str) -> tuple[str, ...]:
    return tuple(kind for kind, families in bases.KIND_FAMILIES.items() if family in families)


def _choice(name: str, source: str, family: str, pretrained: bool, description: str) -> BaseModelChoice:
    return BaseModelChoice(
        name, source, kinds_of(family), pretrained, bases.default_method(pretrained), description
    )


def builtin_choices() -> list[BaseModelChoice]:
    return [_choice(b.name, "builtin", b.family, False, b.description) for b in bases.BUILTINS]


def local_choices(models_dir: Path) -> list[BaseModelChoice]:
    """Model folders and .pt checkpoints directly in the models directory (or one level down: org/name)."""
    if not models_dir.is_dir():
        return []
    candidates = []
    for path in sorted(models_dir.iterdir()):
        candidates.append(path)
        if path.is_dir() and bases.path_family(path) is None:
            candidates.extend(sorted(path.iterdir()))
    out = []
    for path in candidates:
        family = bases.path_family(path)
        if family is not None:
            pretrained = bool(bases.read_marker(path).get("pretrained", True))
            description = f"{path.relative_to(models_dir)} in the models directory"
            out.append(_choice(str(path), "local", family, pretrained, description))
    return out


def hub_cache_choices() -> list[BaseModelChoice]:
    """Models in the local Hugging Face cache (read from disk, never from the network)."""
    try:
        from huggingface_hub import constants, scan_cache_dir

        cache = scan_cache_dir(constants.HF_HUB_CACHE)  # read now: the module default is bound at import
    except Exception:  # noqa: BLE001 - no cache directory, or an unreadable one: nothing cached
        return []
    out = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            family = bases.folder_family(Path(revision.snapshot_path))
            if family is not None:
                out.append(
                    _choice(repo.repo_id, "hub_cache", family, True, "in the local Hugging Face cache")
                )
                break
    return out


def hub_cached_family(repo_id: str) -> str | None:
    """The family of a hub model whose config is in the local cache; None when it is not cached."""
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - an invalid repo id is simply not cached
        return None
    return bases.folder_family(Path(config).parent) if isinstance(config, str) else None


def registry_choices(*, db_session: Session, project: Project) -> list[BaseModelChoice]:
    """Every registry version another kind can start from: the warm start for retraining on fresh labels."""
    models = db_session.scalars(
        select(ModelVersion)
        .where(ModelVersion.project_id == project.id)
        .order_by(ModelVersion.version.desc())
    )
    out = []
    for model in models:
        kinds = warm_start_kinds(model)
        if kinds:
            description = f"{model.name} v{model.version} ({model.stage}, holdout MCC {_mcc(model)})"
            if model.kind == bases.PRETRAIN_KIND:
                description = (
                    f"self-supervised backbone {model.name} v{model.version} (pretrained on the project's "
                    f"pool; linear-probe holdout MCC {_mcc(model)}): LoRA adapts it"
                )
            reference = bases.registry_reference(model.version)
            out.append(BaseModelChoice(reference, "registry", kinds, True, "lora", description))
            if model.stage == PRODUCTION:
                description = f"the production model when the job starts (now {model.name} v{model.version})"
                production = BaseModelChoice(
                    bases.REGISTRY_PRODUCTION, "registry", kinds, True, "lora", description
                )
                out.insert(0, production)
    return out


def warm_start_kinds(model: ModelVersion) -> tuple[str, ...]:
    """The job kinds that can load this version's artifact."""
    kinds = [kind for kind, sources in bases.WARM_START_SOURCES.items() if model.kind in sources]
    return tuple(k for k in kinds if _warm_start_file(model, k) is not None)


def _mcc(model: ModelVersion) -> str:
    mcc = (model.metrics or {}).get("mcc")
    return "n/a" if mcc is None else f"{mcc:.3f}"


def _warm_start_file(model: ModelVersion, kind: str) -> str | None:
    """The artifact entry `kind` loads: an HF folder for classifiers, the CNN student for distill, YOLO weights."""
    files = model.files or {}
    if kind == "yolo":
        return files.get("weights")
    if files.get("model") == "merged" or (kind == "distill" and files.get("model") == "student"):
        return files["model"]
    return None


def base_model_choices(
    *, db_session: Session | None, settings: Settings, project: Project | None = None, kind: str | None = None
) -> list[BaseModelChoice]:
    choices = [*builtin_choices(), *local_choices(settings.resolved_models_dir), *hub_cache_choices()]
    if project is not None and db_session is not None:
        choices += registry_choices(db_session=db_session, project=project)
    return [c for c in choices if kind is None or kind in c.kinds]


def list_base_models(
    *, db_session: Session, settings: Settings, project: Project | None, kind: str | None
) -> list[dict]:
    """The choices as the API lists them: kinds no live worker can run moved to `unavailable_kinds` with why."""
    if kind is not None and kind not in JOB_KINDS:
        raise ApiError(422, "kind", f"unknown job kind {kind!r}; known: {', '.join(sorted(JOB_KINDS))}")
    choices = base_model_choices(db_session=db_session, settings=settings, project=project, kind=kind)
    availability = kind_availability(db_session=db_session, settings=settings)
    out = []
    for choice in choices:
        row = choice.as_dict()
        row["kinds"] = [k for k in choice.kinds if availability[k].available]
        row["unavailable_kinds"] = {
            k: availability[k].reason or "" for k in choice.kinds if not availability[k].available
        }
        out.append(row)
    return out


# --- checking a job's base at submission -----------------------------------------------------------------


def _available(reference: str, kind: str, choices: list[BaseModelChoice]) -> bool:
    if any(c.name == reference for c in choices):
        return True
    families = bases.KIND_FAMILIES.get(kind, ())
    if bases.is_registry_reference(reference):
        return False  # only this project's listed versions
    path = Path(reference)
    if path.is_absolute() and path.exists():
        return bases.path_family(path) in families or (kind == "yolo" and path.suffix in (".yaml", ".yml"))
    return hub_cached_family(reference) in families


def check_base_model(
    *,
    db_session: Session,
    settings: Settings,
    project: Project,
    kind: str,
    field: str,
    reference: str,
) -> None:
    """422 naming `field` and the available choices when `reference` cannot be trained from here."""
    choices = base_model_choices(db_session=db_session, settings=settings, project=project, kind=kind)
    if _available(reference, kind, choices):
        return
    names = [c.name for c in choices]
    listed = ", ".join(names[:MAX_LISTED_IN_ERROR]) + (" …" if len(names) > MAX_LISTED_IN_ERROR else "")
    raise ApiError(
        422,
        field,
        f"{reference!r} is not available to {kind} jobs here (not built in, not in the models directory "
        f"{settings.resolved_models_dir}, not in the local Hugging Face cache, not a registry version of a "
        f"compatible kind); available: {listed} (GET /api/v1/projects/{project.name}/base-models)",
    )


# --- unpacking a warm start on the worker ----------------------------------------------------------------


def unpack_warm_start(
    *, db_session: Session, project_id: int, reference: str, kind: str, workdir: Path
) -> None:
    """Extracts registry version N's artifact into workdir/warm_start/vN with the marker `resolve_base` reads."""
    if not bases.is_registry_reference(reference):
        return
    folder = workdir / bases.WARM_START_DIR / bases.warm_start_folder(reference)
    if (folder / bases.MARKER_FILE).is_file():
        return  # a resumed attempt keeps the version it started from
    query = select(ModelVersion).where(ModelVersion.project_id == project_id)
    if reference == bases.REGISTRY_PRODUCTION:
        model = db_session.scalar(query.where(ModelVersion.stage == PRODUCTION))
    else:
        model = db_session.scalar(query.where(ModelVersion.version == bases.registry_version(reference)))
    entry = _warm_start_file(model, kind) if model is not None else None
    if entry is None:
        raise ValueError(f"base_model: {reference} has no model a {kind} job can load")
    with zipfile.ZipFile(model.artifact_archive) as archive:
        archive.extractall(folder)
        top = archive.namelist()[0].split("/")[0]  # the archive holds the artifact folder itself
    marker = {
        "pretrained": True,
        "model": f"{top}/{entry}",
        "label": f"{model.name} v{model.version}",
        "kind": model.kind,
    }
    (folder / bases.MARKER_FILE).write_text(json.dumps(marker))
