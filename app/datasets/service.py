"""Freezing, reading, materialising and exporting dataset versions; the project's fixed holdout."""

from __future__ import annotations

import math
import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.blobs import BlobStore, stored_sha
from app.core.config import Settings
from app.core.db import is_postgres
from app.core.errors import ApiError
from app.datasets.models import DatasetItem, DatasetVersion, HoldoutItem
from app.datasets.schemas import DatasetFreeze, FreezeFilters
from app.datasets.splits import choose_holdout, content_hash, val_split
from app.ingest.models import PREDICTION_ANSWER, Item, Prediction
from app.ingest.references import fetchable_now, queue_fetch, reason_summary, unstored_reasons
from app.labels.service import Consensus, consensus_for_items
from app.projects.models import Project
from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, StoredPrediction, write_dataset_dir
from ml.slices import slice_label, slice_matches

SLICE_KEYS = ("is_night", "camera_id")
FORMAT_ALIASES = {"dpo": "dpo_pairs", "hf": "jsonl"}
CHUNK = 2000


@dataclass(frozen=True)
class FrozenRow:
    item_id: int
    label: int | None
    boxes: list
    split: str


# --- reading ------------------------------------------------------------------------------------------------


def list_versions(*, db_session: Session, project: Project) -> list[DatasetVersion]:
    query = select(DatasetVersion).where(DatasetVersion.project_id == project.id)
    return list(db_session.scalars(query.order_by(DatasetVersion.version.desc())))


def get_version(*, db_session: Session, project: Project, version: int) -> DatasetVersion:
    found = db_session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.project_id == project.id, DatasetVersion.version == version
        )
    )
    if found is None:
        raise ApiError(404, "dataset_version", f"project {project.name!r} has no dataset version {version}")
    return found


def version_items(
    *,
    db_session: Session,
    version: DatasetVersion,
    split: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[tuple[DatasetItem, Item]]:
    query = (
        select(DatasetItem, Item)
        .join(Item, Item.id == DatasetItem.item_id)
        .where(DatasetItem.dataset_version_id == version.id)
        .order_by(DatasetItem.item_id)
        .offset(offset)
        .limit(limit)
    )
    if split is not None:
        query = query.where(DatasetItem.split == split)
    return [(row, item) for row, item in db_session.execute(query)]


def split_labels(*, db_session: Session, version: DatasetVersion, split: str) -> dict[int, int | None]:
    query = select(DatasetItem.item_id, DatasetItem.label).where(
        DatasetItem.dataset_version_id == version.id, DatasetItem.split == split
    )
    return {item_id: label for item_id, label in db_session.execute(query)}


def consensus_labels(*, db_session: Session, project: Project) -> dict[int, Consensus]:
    """The decided consensus (review, else majority) of every labeled item: what a freeze snapshots."""
    everything = consensus_for_items(db_session=db_session, project=project)
    return {item_id: c for item_id, c in everything.items() if c.decided}


# --- holdout ------------------------------------------------------------------------------------------------


def holdout_item_ids(*, db_session: Session, project: Project) -> set[int]:
    return set(db_session.scalars(select(HoldoutItem.item_id).where(HoldoutItem.project_id == project.id)))


def _add_holdout(db_session: Session, project: Project, item_ids: list[int], user_id: int | None) -> None:
    if item_ids:
        rows = [{"project_id": project.id, "item_id": i, "added_by": user_id} for i in item_ids]
        db_session.execute(insert(HoldoutItem), rows)


def grow_holdout(*, db_session: Session, project: Project, fraction: float, user_id: int | None) -> list[int]:
    """Adds a stratified `fraction` of the labeled items that no dataset version has used yet.

    Only never-frozen items qualify: an item a past version trained on would flatter every model after it.
    """
    labels = {
        item_id: lab.label
        for item_id, lab in consensus_labels(db_session=db_session, project=project).items()
    }
    used = set(
        db_session.scalars(
            select(DatasetItem.item_id)
            .join(DatasetVersion, DatasetVersion.id == DatasetItem.dataset_version_id)
            .where(DatasetVersion.project_id == project.id)
        )
    )
    eligible = _image_items(db_session, project, set(labels) - used)
    fresh = {item_id: labels[item_id] for item_id in eligible}
    chosen = choose_holdout(project.id, fresh, fraction)
    _add_holdout(db_session, project, chosen, user_id)
    db_session.flush()
    return chosen


def holdout_summary(*, db_session: Session, project: Project) -> dict[str, int]:
    labels = consensus_labels(db_session=db_session, project=project)
    counts: Counter[str] = Counter()
    for item_id in holdout_item_ids(db_session=db_session, project=project):
        lab = labels.get(item_id)
        counts[class_name(project, lab.label) if lab else "unlabeled"] += 1
    return dict(sorted(counts.items()))


# --- freezing -----------------------------------------------------------------------------------------------


def _filtered_items(db_session: Session, project: Project, filters: FreezeFilters) -> dict[int, Item]:
    query = select(Item).where(Item.project_id == project.id)
    if filters.captured_from is not None:
        query = query.where(Item.captured_at >= filters.captured_from)
    if filters.captured_to is not None:
        query = query.where(Item.captured_at < filters.captured_to)
    if filters.camera_ids:
        query = query.where(Item.camera_id.in_(filters.camera_ids))
    return {item.id: item for item in db_session.scalars(query)}


def _image_items(db_session: Session, project: Project, item_ids: set[int]) -> list[int]:
    """Those of `item_ids` whose image is in the blob store (uploaded, or fetched from its reference)."""
    query = select(Item.id, Item.image_uri, Item.sha256).where(Item.project_id == project.id)
    return sorted(i for i, uri, sha in db_session.execute(query) if i in item_ids and stored_sha(uri, sha))


def class_name(project: Project, label: int | None, boxes: list | None = None) -> str:
    if label is None:
        return "boxes_only" if boxes or boxes is None else "unlabeled"
    return project.classes[label] if 0 <= label < len(project.classes) else str(label)


def _slice_value(item: Item, key: str) -> str:
    value = getattr(item, key) if hasattr(Item, key) else (item.meta or {}).get(key)
    return "unknown" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def dataset_stats(project: Project, rows: list[FrozenRow], items: dict[int, Item], excluded: dict) -> dict:
    """Counts per class, per split, per split and class, per slice value and class; exclusions."""
    classes: Counter[str] = Counter()
    splits: Counter[str] = Counter()
    split_classes: dict[str, Counter[str]] = defaultdict(Counter)
    slices: dict[str, dict[str, Counter[str]]] = {key: defaultdict(Counter) for key in SLICE_KEYS}
    for row in rows:
        name = class_name(project, row.label, row.boxes)
        classes[name] += 1
        splits[row.split] += 1
        split_classes[row.split][name] += 1
        for key in SLICE_KEYS:
            slices[key][_slice_value(items[row.item_id], key)][name] += 1
    return {
        "items": len(rows),
        "boxes": sum(len(row.boxes) for row in rows),
        "classes": dict(sorted(classes.items())),
        "splits": dict(sorted(splits.items())),
        "split_classes": {s: dict(sorted(c.items())) for s, c in sorted(split_classes.items())},
        "slices": {
            k: {v: dict(sorted(c.items())) for v, c in sorted(vals.items())} for k, vals in slices.items()
        },
        "excluded": excluded,
    }


def _stored(item: Item) -> bool:
    return stored_sha(item.image_uri, item.sha256) is not None


def _frozen_rows(
    db_session: Session,
    project: Project,
    freeze: DatasetFreeze,
    user_id: int | None,
    settings: Settings | None,
) -> tuple[list[FrozenRow], dict[int, Item], dict]:
    everything = consensus_labels(db_session=db_session, project=project)
    labels = everything
    if freeze.label_sources:
        labels = {i: lab for i, lab in everything.items() if lab.source in freeze.label_sources}
    holdout = holdout_item_ids(db_session=db_session, project=project)
    items = _filtered_items(db_session, project, freeze)
    candidates = {i: items[i] for i in labels if i in items and i not in holdout}
    url_only = sorted(i for i, item in candidates.items() if not _stored(item))
    unstored = {i: candidates.pop(i) for i in url_only}
    if not holdout:
        chosen = choose_holdout(project.id, {i: labels[i].label for i in candidates}, freeze.holdout_fraction)
        _add_holdout(db_session, project, chosen, user_id)
        holdout = set(chosen)
        for item_id in chosen:
            del candidates[item_id]
    if freeze.slice is not None:  # after the holdout is fixed: a specialist's first freeze keeps it whole
        spec = freeze.slice.canonical()
        candidates = {i: it for i, it in candidates.items() if slice_matches(spec, item_metadata(it))}
    holdout_items = {item.id: item for item in _items_by_id(db_session, project, holdout)}
    # the holdout ignores the filters (label sources included): every version is scored on the same items
    holdout_url_only = [i for i, item in holdout_items.items() if not _stored(item)]
    unstored |= {i: holdout_items[i] for i in holdout_url_only}
    holdout_rows = [
        FrozenRow(i, everything[i].label, list(everything[i].boxes), "holdout")
        for i, item in holdout_items.items()
        if i in everything and _stored(item)
    ]
    splits = val_split(project.id, {i: labels[i].label for i in candidates}, freeze.val_fraction)
    rows = [FrozenRow(i, labels[i].label, list(labels[i].boxes), splits[i]) for i in candidates]
    if freeze.include_unlabeled:
        pool = _unlabeled_pool(db_session, project, freeze, set(everything) | holdout)
        rows += [FrozenRow(i, None, [], "train") for i in pool]
        candidates.update(pool)
    reasons = unstored_reasons(unstored.values(), settings)
    excluded = {
        "url_only": len(url_only),
        "holdout_url_only": len(holdout_url_only),
        "holdout_unlabeled": len(holdout) - len(holdout_rows) - len(holdout_url_only),
        "url_reasons": reason_summary(reasons, unstored),
    }
    if settings is not None:  # fetched (or retried: settings may have changed) for the next freeze
        fetchable = sorted(i for i, item in unstored.items() if fetchable_now(item, settings))
        queue_fetch(
            db_session=db_session,
            settings=settings,
            project_id=project.id,
            item_ids=fetchable,
            after_commit=False,  # the items exist already, and a refused freeze (422) commits nothing
        )
    return sorted(rows + holdout_rows, key=lambda r: r.item_id), {**candidates, **holdout_items}, excluded


def _unlabeled_pool(
    db_session: Session, project: Project, freeze: DatasetFreeze, labeled: set[int]
) -> dict[int, Item]:
    """Items without a decided label (never the holdout) that match the filters and have a stored image."""
    items = _filtered_items(db_session, project, freeze)
    spec = freeze.slice.canonical() if freeze.slice is not None else None
    return {
        i: item
        for i, item in items.items()
        if i not in labeled and _stored(item) and (spec is None or slice_matches(spec, item_metadata(item)))
    }


def _items_by_id(db_session: Session, project: Project, item_ids: Iterable[int]) -> list[Item]:
    ids = sorted(item_ids)
    out: list[Item] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        out.extend(db_session.scalars(select(Item).where(Item.project_id == project.id, Item.id.in_(chunk))))
    return out


TYPICAL_MCC = 0.6  # the holdout-size advice assumes a model about this good
TARGET_HALF_WIDTH = 0.1  # ... and asks for its MCC to be known to ±0.1 (95%)


def mcc_half_width(n: int, mcc: float = TYPICAL_MCC) -> float:
    """95% half-width of an MCC measured on n items (the bootstrap CI's width, by the correlation SE (1−r²)/√n)."""
    return 1.96 * (1 - mcc**2) / max(n, 1) ** 0.5


def holdout_items_needed(half_width: float = TARGET_HALF_WIDTH, mcc: float = TYPICAL_MCC) -> int:
    return math.ceil((1.96 * (1 - mcc**2) / half_width) ** 2)


def _why(excluded: dict) -> str:
    return "; ".join(f"{r['items']}: {r['reason']}" for r in excluded.get("url_reasons", []))


def freeze_warnings(rows: list[FrozenRow], excluded: dict[str, int]) -> list[dict]:
    """What the person freezing should know: items left out (and why), a holdout too small to separate models."""
    warnings = []
    url_only = excluded.get("url_only", 0) + excluded.get("holdout_url_only", 0)
    if url_only:
        why = _why(excluded)
        warnings.append(
            {
                "code": "url_only",
                "items": url_only,
                "reasons": excluded.get("url_reasons", []),
                "message": f"{url_only} labeled items were left out: their image is only a reference that is not "
                f"in the blob store ({why}). Allowlisted s3://, gs:// and http(s):// references are fetched by "
                "a worker; or send the image bytes (base64 or multipart)",
            }
        )
    n = sum(1 for row in rows if row.split == "holdout")
    needed = holdout_items_needed()
    if n < needed:
        warnings.append(
            {
                "code": "small_holdout",
                "items": n,
                "needed": needed,
                "message": f"the holdout has {n} labeled items: a model's MCC (near {TYPICAL_MCC}) is known only to "
                f"about ±{mcc_half_width(n):.2f} (95%), so models closer than that cannot be told apart; about "
                f"{needed} items would narrow it to ±{TARGET_HALF_WIDTH:.2f} (grow the holdout)",
            }
        )
    return warnings


def slice_stats(spec: dict, rows: list[FrozenRow], items: dict[int, Item]) -> dict:
    """Items of the slice per split: train/val hold only slice items, the holdout counts those in the slice."""
    counts: Counter[str] = Counter()
    for row in rows:
        if row.split != "holdout" or slice_matches(spec, item_metadata(items[row.item_id])):
            counts[row.split] += 1
    return {
        "spec": spec,
        "label": slice_label(spec),
        **{s: counts.get(s, 0) for s in ("train", "val", "holdout")},
    }


def slice_warnings(stats: dict) -> list[dict]:
    n = stats["holdout"]
    if n >= holdout_items_needed():
        return []
    return [
        {
            "code": "small_slice_holdout",
            "items": n,
            "message": f"only {n} labeled holdout items are in the slice {stats['label']}: a specialist's MCC there is "
            f"known only to about ±{mcc_half_width(n):.2f} (95%); slice promotion needs it better than production "
            "with confidence, which so few items rarely show",
        }
    ]


def freeze_dataset_version(
    *,
    db_session: Session,
    project: Project,
    freeze: DatasetFreeze,
    user_id: int | None,
    settings: Settings | None = None,
) -> DatasetVersion:
    """Snapshots the consensus labels into a new immutable version (the first freeze also fixes the holdout).

    Items whose referenced image is not stored yet are left out with their reason; with `settings`, those a
    worker may still fetch are queued for it.
    """
    rows, items, excluded = _frozen_rows(db_session, project, freeze, user_id, settings)
    if not any(row.split == "train" for row in rows):
        field = "slice" if freeze.slice is not None else "filters"
        waiting = excluded.get("url_only", 0)
        more = f" ({waiting} labeled items have only a referenced image: {_why(excluded)})" if waiting else ""
        raise ApiError(422, field, f"no consensus-labeled items with stored images match these filters{more}")
    filters = freeze.model_dump(mode="json", exclude={"val_fraction", "holdout_fraction", "slice"})
    filters["slice"] = freeze.slice.canonical() if freeze.slice is not None else None
    stats = {**dataset_stats(project, rows, items, excluded), "warnings": freeze_warnings(rows, excluded)}
    if freeze.slice is not None:
        stats["slice"] = slice_stats(filters["slice"], rows, items)
        stats["warnings"] += slice_warnings(stats["slice"])
    latest = db_session.scalar(
        select(func.max(DatasetVersion.version)).where(DatasetVersion.project_id == project.id)
    )
    version = DatasetVersion(
        project_id=project.id,
        version=(latest or 0) + 1,
        content_hash=content_hash((r.item_id, r.label, r.boxes, r.split) for r in rows),
        filters=filters,
        stats=stats,
        val_fraction=freeze.val_fraction,
        item_count=len(rows),
        created_by=user_id,
    )
    db_session.add(version)
    try:
        db_session.flush()
    except IntegrityError as exc:
        db_session.rollback()
        raise ApiError(
            409, "version", "another dataset version was frozen at the same moment; retry"
        ) from exc
    payload = [
        {
            "dataset_version_id": version.id,
            "item_id": r.item_id,
            "label": r.label,
            "boxes": r.boxes,
            "split": r.split,
        }
        for r in rows
    ]
    for start in range(0, len(payload), CHUNK):
        db_session.execute(insert(DatasetItem), payload[start : start + CHUNK])
    db_session.flush()
    return version


# --- on disk ------------------------------------------------------------------------------------------------


_PREDICTION_FIELDS = (Prediction.item_id, *PREDICTION_ANSWER)
_ITEM_FIELDS = (  # in this order: dataset_records unpacks the rows, metadata_of takes the middle eight
    Item.id,
    Item.external_id,
    Item.image_uri,
    Item.sha256,
    Item.meta,
    Item.camera_id,
    Item.is_night,
    Item.captured_at,
    Item.lat,
    Item.lon,
    Item.width,
    Item.height,
    DatasetItem.label,
    DatasetItem.boxes,
    DatasetItem.split,
)


def _stored_predictions(
    db_session: Session, version: DatasetVersion
) -> Iterator[tuple[int, StoredPrediction]]:
    """(item id, prediction) of the version's items by item id, streamed from a server-side cursor."""
    query = (
        select(*_PREDICTION_FIELDS)
        .join(DatasetItem, DatasetItem.item_id == Prediction.item_id)
        .where(DatasetItem.dataset_version_id == version.id)
        .order_by(Prediction.item_id, Prediction.model, Prediction.id)
        .execution_options(yield_per=CHUNK)
    )
    for item_id, model, model_version, score, probs, label, boxes in _streamed(db_session, query):
        prediction = StoredPrediction(
            model=model,
            model_version=model_version or "",
            score=score,
            probs=probs,
            label=label,
            boxes=list(boxes or []),
        )
        yield item_id, prediction


def _version_rows(db_session: Session, version: DatasetVersion) -> Iterator:
    query = (
        select(*_ITEM_FIELDS)
        .join(Item, Item.id == DatasetItem.item_id)
        .where(DatasetItem.dataset_version_id == version.id)
        .order_by(DatasetItem.item_id)
        .execution_options(yield_per=CHUNK)
    )
    return _streamed(db_session, query)


def _streamed(db_session: Session, query) -> Iterator:
    """Plain rows, through Core: the ORM's per-row loading of column entities cost a sixth of an export's time
    and builds nothing these rows need. On PostgreSQL each query streams on a connection of its own: the
    server sends rows while Python works on the ones before (a server-side cursor waited for each chunk)."""
    if not is_postgres(db_session):
        return iter(db_session.connection().execute(query))
    return _pg_stream(db_session.get_bind(), query)


def _pg_stream(engine, query) -> Iterator:
    compiled = query.compile(dialect=engine.dialect)
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        yield from cursor.stream(str(compiled), compiled.params, size=CHUNK)


def item_metadata(item: Item) -> dict:
    return metadata_of(
        item.meta,
        item.camera_id,
        item.is_night,
        item.captured_at,
        item.lat,
        item.lon,
        item.width,
        item.height,
    )


def metadata_of(
    meta: dict | None,
    camera_id: str | None,
    is_night: bool | None,
    captured_at: datetime | None,
    lat: float | None,
    lon: float | None,
    width: int | None,
    height: int | None,
) -> dict:
    """An item's metadata as exports and slices see it, from its columns (exports pass a row's values: reading
    them by attribute cost more than the dict itself)."""
    return {
        **(meta or {}),
        "camera_id": camera_id,
        "is_night": is_night,
        "captured_at": captured_at.isoformat() if captured_at else None,
        "lat": lat,
        "lon": lon,
        "width": width,
        "height": height,
    }


def dataset_records(
    *, db_session: Session, version: DatasetVersion, blobs: BlobStore
) -> Iterator[DatasetRecord]:
    """The version's records by item id, streamed: items and predictions come from two cursors merged on the
    item id, so memory stays flat whatever the version's size. It reads what is committed: on PostgreSQL both
    stream on connections of their own (`_streamed`)."""
    predictions = _stored_predictions(db_session, version)
    pending = next(predictions, None)
    path_of, exists = blobs.path_text, os.path.exists
    for row in _version_rows(db_session, version):
        item_id, external_id, image_uri, sha256, *columns, label, boxes, split = row
        sha = stored_sha(image_uri, sha256)
        path = path_of(sha) if sha else None
        if path is None or not exists(path):
            raise ApiError(409, "image", f"item {external_id!r}: image blob {sha} is missing from the store")
        own: list[StoredPrediction] = []
        while pending is not None and pending[0] <= item_id:
            if pending[0] == item_id:
                own.append(pending[1])
            pending = next(predictions, None)
        yield DatasetRecord(
            item_id=item_id,
            external_id=external_id,
            image=path,
            label=label,
            split=split,
            boxes=list(boxes or []),
            predictions=own,
            metadata=metadata_of(*columns),
        )


def dataset_info(project: Project, version: DatasetVersion) -> DatasetInfo:
    return DatasetInfo(
        project=project.name,
        version=version.version,
        kind=project.kind,
        classes=list(project.classes),
        question=project.question,
        content_hash=version.content_hash,
        box_classes=list(project.box_classes or []),
    )


def materialise_dataset(
    *, db_session: Session, project: Project, version: DatasetVersion, root: Path, blobs: BlobStore
) -> DatasetVersionDir:
    """Writes the version under `root` for workers and exports; reuses a complete copy (versions never change)."""
    existing = DatasetVersionDir(root)
    if (root / "manifest.jsonl").exists() and existing.info.content_hash == version.content_hash:
        return existing
    records = dataset_records(db_session=db_session, version=version, blobs=blobs)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write_dataset_dir(staging, dataset_info(project, version), records)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    os.replace(staging, root)
    return DatasetVersionDir(root)


def dataset_dir(settings: Settings, project: Project, version: DatasetVersion) -> Path:
    return settings.data_dir.resolve() / "datasets" / f"project-{project.id}" / f"v{version.version}"


def export_archive(
    *,
    db_session: Session,
    project: Project,
    version: DatasetVersion,
    fmt: str,
    settings: Settings,
    blobs: BlobStore,
) -> Path:
    """A zip of the version in `fmt` (cached: a version's export never changes)."""
    from ml.exports import EXPORT_FORMATS, export_dataset

    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in EXPORT_FORMATS:
        raise ApiError(422, "format", f"unknown export format {fmt!r}; known: {', '.join(EXPORT_FORMATS)}")
    archive = (
        settings.data_dir.resolve() / "exports" / f"project-{project.id}" / f"v{version.version}-{fmt}.zip"
    )
    if archive.exists():
        return archive
    dataset = materialise_dataset(
        db_session=db_session,
        project=project,
        version=version,
        root=dataset_dir(settings, project, version),
        blobs=blobs,
    )
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        out = Path(tmp) / f"{project.name}-v{version.version}-{fmt}"
        staged = Path(tmp) / "export.zip"
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            export_dataset(dataset, fmt, out, files=ZipFiles(zf, base=out.parent))
            zip_folder(zf, out)
        os.replace(staged, archive)
    return archive


class ZipFiles:
    """An export's images and small per-image files put straight into the archive, as they come (a 50k YOLO
    export made and removed 41,670 label files and as many image links: most of its time, in the kernel).
    Names are relative to `base`, as `zip_folder` names the files the exporter writes to its folder."""

    def __init__(self, zf: zipfile.ZipFile, base: Path) -> None:
        self.zf, self.base = zf, os.fspath(base)

    def add_image(self, source: str, folder: str, stem: str) -> str:
        """Named from the bytes it is zipped from: one open of the image, where naming it first read its
        first bytes separately (a fifth of a COCO export, in syscalls)."""
        from ml.exports._files import image_suffix

        with open(source, "rb", buffering=0) as fh:
            status = os.fstat(fh.fileno())
            data = fh.read(12 if status.st_size > STORE_IN_ONE_READ_MAX else status.st_size)
            name = stem + image_suffix(source, head=data[:12])
            entry = _file_entry(_archive_name(os.path.join(folder, name), self.base), status, deflate=False)
            _write_entry(self.zf, entry, data, fh)
        return name

    def write(self, target: str, data: bytes) -> None:
        name = _archive_name(target, self.base)
        self.zf.writestr(_zip_entry(name, len(data), time.time(), stat.S_IFREG | 0o644, deflate=True), data)


def zip_directory(folder: Path, archive: Path) -> None:
    """Zips `folder` (or one file) into a new `archive`; see `zip_folder`."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zip_folder(zf, folder)


def zip_folder(zf: zipfile.ZipFile, folder: Path) -> None:
    """Adds every file below `folder` (or `folder` itself, a file) with paths relative to its parent, in a
    stable order (on strings: pathlib objects per file were a sixth of a COCO export's zipping)."""
    from ml.exports._files import IMAGE_SUFFIXES

    base = os.fspath(folder.parent)
    paths = [os.fspath(folder)] if folder.is_file() else _files_below(folder)
    for path in sorted(paths, key=lambda path: path.split(os.sep)):  # as pathlib orders paths
        _add(
            zf,
            path,
            _archive_name(path, base),
            deflate=os.path.splitext(path)[1].lower() not in IMAGE_SUFFIXES,
        )


def _archive_name(path: str, base: str) -> str:
    prefix = os.path.join(base, "")
    relative = path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, base)
    return relative.replace(os.sep, "/")


def _files_below(folder: Path) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(folder):
        found.extend(os.path.join(root, name) for name in files)
    return found


# Files up to this size are zipped from one read; larger ones stream, so memory stays bounded.
STORE_IN_ONE_READ_MAX = 8 * 2**20
# Deflating a file this small (a YOLO label file: a line per box) saves a few bytes and took 3x as long as
# storing it (a compressor is set up per entry): 41,670 of them in a 50k YOLO export.
DEFLATE_MIN_BYTES = 512


def _add(zf: zipfile.ZipFile, path: str, name: str, *, deflate: bool) -> None:
    """One entry, written from one read (`ZipFile.write` copies a small file in several steps). Images are
    stored: compressed already, deflating them again costs time and saves nothing."""
    with open(path, "rb", buffering=0) as fh:
        status = os.fstat(fh.fileno())
        data = fh.read(0 if status.st_size > STORE_IN_ONE_READ_MAX else status.st_size)
        _write_entry(zf, _file_entry(name, status, deflate=deflate), data, fh)


def _file_entry(name: str, status: os.stat_result, *, deflate: bool) -> zipfile.ZipInfo:
    """What `ZipInfo.from_file` makes of a regular file, from a stat already taken (the open file's: one path
    lookup less)."""
    return _zip_entry(name, status.st_size, status.st_mtime, status.st_mode, deflate=deflate)


def _zip_entry(name: str, size: int, mtime: float, mode: int, *, deflate: bool) -> zipfile.ZipInfo:
    """A zip entry for a file of `size` bytes; files under `DEFLATE_MIN_BYTES` are stored, not deflated."""
    entry = zipfile.ZipInfo(name, time.localtime(mtime)[:6])
    entry.external_attr = (mode & 0xFFFF) << 16
    entry.file_size = size
    small = size < DEFLATE_MIN_BYTES
    entry.compress_type = zipfile.ZIP_DEFLATED if deflate and not small else zipfile.ZIP_STORED
    return entry


def _write_entry(zf: zipfile.ZipFile, entry: zipfile.ZipInfo, head: bytes, rest: BinaryIO) -> None:
    """`head` (the whole file, when it was read in one go) and then whatever is left in `rest`, streamed."""
    if len(head) == entry.file_size:
        zf.writestr(entry, head)
        return
    with zf.open(entry, "w") as dest:
        dest.write(head)
        shutil.copyfileobj(rest, dest, 2**20)
