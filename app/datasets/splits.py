"""Deterministic, stratified splits by item-id hash: the same item lands in the same split in every version."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence

HASH_SCALE = float(2**64)


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from the sha256 of the parts; stable across processes and versions."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SCALE


def val_split(project_id: int, labels: dict[int, Hashable], val_fraction: float) -> dict[int, str]:
    """train/val per item: val when the item's hash is below `val_fraction` within its class stratum.

    Thresholding (not ranking) keeps an item's split fixed as the project grows, so nothing moves from val
    into train between versions; a stratum with two or more items always gets at least one val item.
    """
    out: dict[int, str] = {}
    for members in _strata(labels).values():
        ranked = sorted(members, key=lambda item_id: unit_hash(project_id, item_id))
        for item_id in ranked:
            out[item_id] = "val" if unit_hash(project_id, item_id) < val_fraction else "train"
        if len(ranked) >= 2 and val_fraction > 0 and out[ranked[0]] == "train":
            out[ranked[0]] = "val"
    return out


def choose_holdout(project_id: int, labels: dict[int, Hashable], fraction: float) -> list[int]:
    """A stratified `fraction` of the items (at least one per class with three or more), lowest hash first."""
    chosen: list[int] = []
    for members in _strata(labels).values():
        ranked = sorted(members, key=lambda item_id: unit_hash(project_id, "holdout", item_id))
        quota = round(fraction * len(ranked))
        if quota == 0 and len(ranked) >= 3 and fraction > 0:
            quota = 1
        chosen.extend(ranked[:quota])
    return sorted(chosen)


def _strata(labels: dict[int, Hashable]) -> dict[Hashable, list[int]]:
    strata: dict[Hashable, list[int]] = defaultdict(list)
    for item_id, label in labels.items():
        strata[label].append(item_id)
    return strata


def content_hash(rows: Iterable[tuple[int, int | None, Sequence, str]]) -> str:
    """sha256 over the sorted (item_id, label, boxes, split) rows: equal hashes mean equal datasets."""
    canonical = json.dumps(sorted(([i, lab, list(b), s] for i, lab, b, s in rows), key=lambda r: r[0]))
    return hashlib.sha256(canonical.encode()).hexdigest()
