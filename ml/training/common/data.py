"""Images of a dataset version as torch tensors, with a replayable batch order (needed for exact resume)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from ml.dataset import DatasetRecord, DatasetVersionDir, Split
from ml.illumination import normalise_illumination

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_LABEL = -1
CACHE_LIMIT_BYTES = 512 * 1024 * 1024  # keep decoded images in memory only for small datasets


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def load_image(path: Path, size: int, illumination: str = "none") -> Image.Image:
    """RGB image resized to size×size, then its illumination normalised (ml.illumination; 'none' = as is);
    JPEG draft mode decodes at reduced scale, much faster on big photos."""
    with Image.open(path) as image:
        image.draft("RGB", (size, size))
        resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return normalise_illumination(resized, illumination)


def image_transform(size: int, normalisation: Normalisation, augment: bool) -> Callable:
    steps: list = []
    if augment:
        steps += [transforms.RandomHorizontalFlip(), transforms.ColorJitter(0.2, 0.2, 0.2, 0.02)]
    steps += [transforms.ToTensor(), transforms.Normalize(normalisation.mean, normalisation.std)]
    return transforms.Compose(steps)


class RecordImages(Dataset):
    """One sample per record: pixel_values, label (NO_LABEL when unlabeled) and its position in `records`."""

    def __init__(
        self,
        dataset: DatasetVersionDir,
        records: Sequence[DatasetRecord],
        size: int,
        transform: Callable,
        extras: Callable[[DatasetRecord], dict[str, torch.Tensor]] | None = None,
        illumination: str = "none",
    ) -> None:
        self.dataset, self.records, self.size, self.transform, self.extras = (
            dataset,
            list(records),
            size,
            transform,
            extras,
        )
        self.illumination = illumination
        self._cache: dict[int, Image.Image] | None = (
            {} if len(self.records) * size * size * 3 < CACHE_LIMIT_BYTES else None
        )

    def __len__(self) -> int:
        return len(self.records)

    def _image(self, index: int) -> Image.Image:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image = load_image(self.dataset.image_path(self.records[index]), self.size, self.illumination)
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        sample = {
            "pixel_values": self.transform(self._image(index)),
            "labels": torch.tensor(NO_LABEL if record.label is None else int(record.label)),
            "index": torch.tensor(index),
        }
        if self.extras is not None:
            sample.update(self.extras(record))
        return sample


def split_records(
    dataset: DatasetVersionDir, split: Split, *, labeled_only: bool = True
) -> list[DatasetRecord]:
    return [r for r in dataset.records(split) if r.label is not None or not labeled_only]


def require_classes(dataset: DatasetVersionDir) -> int:
    """The number of classes K an image classifier trains on: a binary dataset (K = 2, both classes labeled
    in train and val) or a multiclass one (K >= 2 classes, at least two of them labeled in train and val)."""
    info = dataset.info
    if info.kind not in ("binary", "multiclass") or len(info.classes) < 2:
        raise ValueError(
            f"dataset: image classifier jobs need a binary or multiclass dataset, got kind={info.kind!r}"
        )
    if info.kind == "binary" and len(info.classes) != 2:
        raise ValueError(f"dataset: a binary dataset has 2 classes, this one {len(info.classes)}")
    n_classes = len(info.classes)
    for split in ("train", "val"):
        labels = {r.label for r in split_records(dataset, split)}
        if not labels <= set(range(n_classes)):
            raise ValueError(f"dataset: the {split} split has labels outside 0..{n_classes - 1}")
        if n_classes == 2 and labels != {0, 1}:
            raise ValueError(f"dataset: the {split} split needs both classes labeled, has {sorted(labels)}")
        if len(labels) < 2:
            raise ValueError(
                f"dataset: the {split} split needs at least two classes labeled, has {sorted(labels)}"
            )
    return n_classes


def require_binary(dataset: DatasetVersionDir) -> None:
    """The pretrain job's linear probe is scored by the registry as a binary model."""
    if dataset.info.kind != "binary":
        raise ValueError(f"dataset: this job needs a binary dataset, got kind={dataset.info.kind!r}")
    require_classes(dataset)


def class_weights(labels: Sequence[int], mode: str, n_classes: int = 2) -> torch.Tensor:
    """Inverse-frequency weights (mean 1 over items) so a rare class is not drowned out; a class with no train
    item gets weight 1 (it never appears in the loss's targets anyway)."""
    counts = np.bincount(
        np.asarray([x for x in labels if x != NO_LABEL], dtype=np.int64), minlength=n_classes
    ).astype(np.float64)
    present = counts > 0
    if mode == "none" or present.sum() < 2:
        return torch.ones(n_classes)
    weights = np.ones(n_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(weights, dtype=torch.float32)


def epoch_batches(n_items: int, batch_size: int, epoch: int, seed: int) -> list[list[int]]:
    """Shuffled index batches of one epoch, a pure function of (epoch, seed): a resumed job replays them."""
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    return [order[i : i + batch_size].tolist() for i in range(0, n_items, batch_size)]


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int) -> DataLoader:
    # an explicit generator keeps the DataLoader from drawing on the global RNG, which a resume restores
    generator = torch.Generator().manual_seed(0)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, generator=generator
    )


@dataclass
class SplitData:
    train: RecordImages
    val: DataLoader
    holdout: DataLoader
    holdout_records: list[DatasetRecord]


def split_data(
    dataset: DatasetVersionDir,
    train_records: Sequence[DatasetRecord],
    size: int,
    normalisation: Normalisation,
    *,
    augment: bool,
    batch_size: int,
    num_workers: int,
    extras: Callable[[DatasetRecord], dict[str, torch.Tensor]] | None = None,
    illumination: str = "none",
) -> SplitData:
    """Train images (augmented) and val/holdout loaders (plain), every one prepared with the same illumination
    step; every holdout item is scored, labeled or not."""
    plain = image_transform(size, normalisation, augment=False)
    holdout_records = split_records(dataset, "holdout", labeled_only=False)
    val = RecordImages(dataset, split_records(dataset, "val"), size, plain, illumination=illumination)
    holdout = RecordImages(dataset, holdout_records, size, plain, illumination=illumination)
    train_transform = image_transform(size, normalisation, augment)
    return SplitData(
        train=RecordImages(dataset, train_records, size, train_transform, extras, illumination),
        val=eval_loader(val, batch_size, num_workers),
        holdout=eval_loader(holdout, batch_size, num_workers),
        holdout_records=holdout_records,
    )
