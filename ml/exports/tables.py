"""Row-per-image exports: JSONL and Parquet (Hugging Face `datasets`), and an image-folder tree.

Each streams the manifest once and writes as it goes: memory stays flat whatever the version's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

from ml.dataset import SPLITS, DatasetInfo, DatasetRecord, DatasetVersionDir
from ml.exports._files import (
    IN_FOLDER,
    SPLIT_DIRS,
    ExportFiles,
    json_bytes,
    label_name,
    resolved,
)

PARQUET_ROWS_PER_GROUP = 10_000

ROW_COLUMNS = ("item_id", "external_id", "image", "label", "label_name", "split", "boxes", "metadata")


def dataset_row(dataset: DatasetVersionDir, info: DatasetInfo, record: DatasetRecord) -> dict:
    """One row per image. `metadata` is a JSON string: metadata keys differ between items and a
    columnar schema (Arrow/Parquet) cannot hold a different struct per row."""
    return {
        "item_id": record.item_id,
        "external_id": record.external_id,
        "image": resolved(dataset.image_path_text(record)),
        "label": record.label,
        "label_name": label_name(info, record),
        "split": record.split,
        "boxes": [[float(v) for v in box] for box in record.boxes],
        "metadata": json_bytes(record.metadata, sorted_keys=True).decode(),
    }


def dataset_rows(dataset: DatasetVersionDir, records: Iterable[DatasetRecord]) -> Iterator[dict]:
    info = dataset.info
    return (dataset_row(dataset, info, record) for record in records)


def export_jsonl(dataset: DatasetVersionDir, out: Path) -> Path:
    """`out/{train,val,holdout}.jsonl`; load with `load_dataset("json", data_files={...})`."""
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as files:
        handles = {split: files.enter_context((out / f"{split}.jsonl").open("wb")) for split in SPLITS}
        for row in dataset_rows(dataset, dataset.iter_records()):
            handles[row["split"]].write(json_bytes(row) + b"\n")
    return out


def export_parquet(dataset: DatasetVersionDir, out: Path) -> Path:
    """`out/{train,val,holdout}.parquet` with a fixed schema (so empty splits still load)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("item_id", pa.int64()),
            ("external_id", pa.string()),
            ("image", pa.string()),
            ("label", pa.int64()),
            ("label_name", pa.string()),
            ("split", pa.string()),
            ("boxes", pa.list_(pa.list_(pa.float64()))),
            ("metadata", pa.string()),
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    pending: dict[str, list[dict]] = {split: [] for split in SPLITS}
    with ExitStack() as files:
        writers = {
            split: files.enter_context(pq.ParquetWriter(out / f"{split}.parquet", schema)) for split in SPLITS
        }
        for row in dataset_rows(dataset, dataset.iter_records()):
            rows = pending[row["split"]]
            rows.append(row)
            if len(rows) == PARQUET_ROWS_PER_GROUP:
                writers[row["split"]].write_table(pa.Table.from_pylist(rows, schema=schema))
                rows.clear()
        for split, rows in pending.items():
            if rows:
                writers[split].write_table(pa.Table.from_pylist(rows, schema=schema))
    return out


def export_imagefolder(dataset: DatasetVersionDir, out: Path, files: ExportFiles = IN_FOLDER) -> Path:
    """`out/<split>/<class name>/<item_id>.<ext>` (holdout as `test`); unlabelled items are left out."""
    info = dataset.info
    for record in dataset.iter_records():
        if record.label is None:
            continue
        folder = os.path.join(out, SPLIT_DIRS[record.split], info.classes[record.label])
        files.add_image(dataset.image_path_text(record), folder, str(record.item_id))
    out.mkdir(parents=True, exist_ok=True)
    return out
