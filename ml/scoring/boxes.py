"""Box-level disagreement between detectors: maximum IoU matching of boxes per model pair; unmatched boxes
count against agreement."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass(frozen=True)
class BoxDisagreement:
    score: float  # unmatched / total boxes, averaged over model pairs; 0 = every box found by every model
    unmatched: int
    total: int


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) xyxy boxes -> (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _parse(boxes: list, min_score: float) -> tuple[np.ndarray, list]:
    """[x1, y1, x2, y2, class?, score?] rows -> (coords, classes), dropping boxes under `min_score`."""
    kept = [b for b in boxes if len(b) < 6 or b[5] is None or float(b[5]) >= min_score]
    coords = np.array([[float(v) for v in b[:4]] for b in kept]).reshape(-1, 4)
    return coords, [b[4] if len(b) > 4 else None for b in kept]


def _matched_pairs(a: tuple[np.ndarray, list], b: tuple[np.ndarray, list], iou_threshold: float) -> int:
    """Maximum one-to-one matching of same-class boxes with IoU >= threshold (greedy by IoU undercounts in
    crowded scenes: two adjacent cones can leave boxes unmatched that a maximum matching pairs up)."""
    iou = box_iou(a[0], b[0])
    same_class = np.array([[ca == cb for cb in b[1]] for ca in a[1]], dtype=bool).reshape(iou.shape)
    allowed = same_class & (iou >= iou_threshold)
    if not allowed.any():
        return 0
    from scipy.optimize import linear_sum_assignment

    # the most pairs first (each allowed pair is worth far more than any IoU), then the best IoU among them
    weight = np.where(allowed, 1.0 + iou / (1.0 + min(iou.shape)), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    return int(allowed[rows, cols].sum())


def box_disagreement(
    boxes_by_model: dict[str, list], *, iou_threshold: float = 0.5, min_score: float = 0.0
) -> BoxDisagreement:
    """Share of boxes that another model did not also find (same class, IoU ≥ threshold), over model pairs.

    A model listed with an empty box list said "nothing here", which disagrees with every box of the others;
    a single model cannot disagree with itself (score 0).
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold: must be in (0, 1], got {iou_threshold}")
    parsed = {name: _parse(boxes or [], min_score) for name, boxes in boxes_by_model.items()}
    scores, unmatched_total, boxes_total = [], 0, 0
    for a, b in combinations(parsed.values(), 2):
        total = len(a[1]) + len(b[1])
        if total == 0:
            scores.append(0.0)
            continue
        unmatched = total - 2 * _matched_pairs(a, b, iou_threshold)
        scores.append(unmatched / total)
        unmatched_total += unmatched
        boxes_total += total
    return BoxDisagreement(float(np.mean(scores)) if scores else 0.0, unmatched_total, boxes_total)
