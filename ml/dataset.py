"""A frozen dataset version as it lies on disk: the contract between the server (writer) and ml/ (reader).

Layout of a version directory:
    dataset.json     {"project", "version", "kind", "classes", "question", "content_hash", "positive_class"}
    manifest.jsonl   one `DatasetRecord` per line (UTF-8 JSON)
Image paths in the manifest are absolute or relative to the version directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

Split = Literal["train", "val", "holdout"]
SPLITS: tuple[Split, ...] = ("train", "val", "holdout")


@dataclass
class StoredPrediction:
    """One cascade model's output for an item, as ingested."""

    model: str
    model_version: str = ""
    score: float | None = None  # P(positive) for binary projects
    probs: list[float] | None = None  # class probabilities for multiclass projects
    label: str | None = None
    boxes: list[list] = field(default_factory=list)  # [x1, y1, x2, y2, class, score], normalised


@dataclass
class DatasetRecord:
    item_id: int
    external_id: str
    image: str
    label: int | None  # class index (binary: 1 = positive); None = unlabeled (soft targets only)
    split: Split
    boxes: list[list] = field(default_factory=list)  # human boxes [x1, y1, x2, y2, class_index], normalised
    predictions: list[StoredPrediction] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> DatasetRecord:
        preds = [StoredPrediction(**p) for p in raw.get("predictions", [])]
        return cls(**{**raw, "predictions": preds})


@dataclass
class DatasetInfo:
    project: str
    version: int
    kind: Literal["binary", "multiclass", "detection"] = "binary"
    classes: list[str] = field(default_factory=lambda: ["negative", "positive"])
    question: str = "Is there roadwork in this image? Answer yes or no."
    content_hash: str = ""
    box_classes: list[str] = field(default_factory=list)


@dataclass
class DatasetVersionDir:
    """Reads a version directory; `records(split)` streams the manifest."""

    root: Path

    @property
    def info(self) -> DatasetInfo:
        return DatasetInfo(**json.loads((self.root / "dataset.json").read_text()))

    def records(self, split: Split | None = None) -> list[DatasetRecord]:
        return list(self.iter_records(split))

    def iter_records(self, split: Split | None = None) -> Iterator[DatasetRecord]:
        """The records one at a time, in manifest order: memory stays flat whatever the version's size."""
        return (r for r in self._iter_records() if split is None or r.split == split)

    def image_path(self, record: DatasetRecord) -> Path:
        return Path(self.image_path_text(record))

    def image_path_text(self, record: DatasetRecord) -> str:
        """`image_path` as a string: exports ask for every image of a version, and pathlib costs more."""
        return record.image if os.path.isabs(record.image) else os.path.join(self.root, record.image)

    def _iter_records(self) -> Iterator[DatasetRecord]:
        decode = msgspec.json.Decoder(
            dict
        ).decode  # json.loads' values, twice as fast (exports read every line)
        with (self.root / "manifest.jsonl").open("rb") as fh:
            for line in fh:
                if line.strip():
                    yield DatasetRecord.from_dict(decode(line))


def write_dataset_dir(root: Path, info: DatasetInfo, records: Iterable[DatasetRecord]) -> DatasetVersionDir:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(asdict(info), indent=2))
    # msgspec encodes the dataclasses themselves (fields in order): 4x faster than a dict built per record.
    encoder = msgspec.json.Encoder()
    with (root / "manifest.jsonl").open("wb") as fh:
        for record in records:
            fh.write(encoder.encode(record) + b"\n")
    return DatasetVersionDir(root)
