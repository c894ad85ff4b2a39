"""Batch diversity for the queue: perceptual hashes, near-duplicate windows, k-center greedy, positive quota."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image


def perceptual_hash(image: Image.Image, *, hash_size: int = 8) -> int:
    """64-bit difference hash (dHash): sign of horizontal gradients of a 9×8 grey thumbnail."""
    grey = image.convert("L").resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming_distance(a: int, b: int) -> int:
    return (int(a) ^ int(b)).bit_count()


@dataclass(frozen=True)
class ItemSignature:
    phash: int | None = None
    camera_id: str | None = None
    captured_at: datetime | None = None


def is_near_duplicate(
    a: ItemSignature, b: ItemSignature, *, max_hamming: int = 6, window_seconds: float = 60
) -> bool:
    """Same picture (perceptual hashes within `max_hamming` bits) or same camera within the time window."""
    if a.phash is not None and b.phash is not None and hamming_distance(a.phash, b.phash) <= max_hamming:
        return True
    if a.camera_id is None or a.camera_id != b.camera_id or a.captured_at is None or b.captured_at is None:
        return False
    return abs((a.captured_at - b.captured_at).total_seconds()) <= window_seconds


def _min_sq_distances(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    sq_norms = np.einsum("nd,nd->n", features, features)
    dist = np.full(len(features), np.inf)
    for start in range(0, len(centers), 256):
        c = centers[start : start + 256]
        d = sq_norms[:, None] - 2.0 * features @ c.T + np.einsum("kd,kd->k", c, c)[None, :]
        dist = np.minimum(dist, d.min(axis=1))
    return np.clip(dist, 0.0, None)


def k_center_greedy(features: np.ndarray, k: int, selected: np.ndarray | None = None) -> np.ndarray:
    """Indices of `k` new points, each the farthest from everything chosen so far (Sener & Savarese's core-set).

    `selected` are indices already labeled/served; they act as centers but are never returned.
    With nothing selected the first pick is the point farthest from the mean (deterministic).
    """
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if k < 0:
        raise ValueError("k: must be non-negative")
    chosen_before = np.zeros(n, dtype=bool)
    if selected is not None and len(selected):
        chosen_before[np.asarray(selected, dtype=np.int64)] = True
    k = min(k, n - int(chosen_before.sum()))
    if chosen_before.any():
        dist = _min_sq_distances(features, features[chosen_before])
    else:
        dist = _min_sq_distances(features, features.mean(axis=0, keepdims=True))
    dist[chosen_before] = -1.0
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        idx = int(np.argmax(dist))
        picks[i] = idx
        diff = features - features[idx]
        dist = np.minimum(dist, np.einsum("nd,nd->n", diff, diff))
        dist[idx] = -1.0
        dist[chosen_before] = -1.0
    return picks


def kmeans_pp_seeding(features: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """k-means++ seeding (D² sampling): diverse points that favour large embeddings — BADGE's selection step."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    k = min(k, n)
    rng = np.random.default_rng(seed)
    norms = np.einsum("nd,nd->n", features, features)
    picks = [int(np.argmax(norms))]
    dist = _min_sq_distances(features, features[picks])
    for _ in range(1, k):
        total = dist.sum()
        if total <= 0:
            remaining = np.setdiff1d(np.arange(n), picks)
            picks.extend(rng.choice(remaining, size=k - len(picks), replace=False).tolist())
            break
        idx = int(rng.choice(n, p=dist / total))
        picks.append(idx)
        diff = features - features[idx]
        dist = np.minimum(dist, np.einsum("nd,nd->n", diff, diff))
        dist[idx] = 0.0
    return np.array(picks, dtype=np.int64)


def positive_quota_due(
    served_total: int, served_positive: int, *, min_positive_share: float, positives_available: bool
) -> bool:
    """True when the next served item should be a likely positive to keep rare positives visible."""
    if not 0.0 <= min_positive_share <= 1.0:
        raise ValueError("min_positive_share: must be in [0, 1]")
    if not positives_available or min_positive_share == 0.0:
        return False
    return served_positive < min_positive_share * (served_total + 1)


def select_with_positive_quota(
    priority: np.ndarray, mean_score: np.ndarray, k: int, *, threshold: float, min_positive_share: float
) -> np.ndarray:
    """Top-`k` indices by priority, swapping in the hardest likely positives (mean ≥ t) until their share is
    at least `min_positive_share` — or until no likely positive is left."""
    priority = np.asarray(priority, dtype=np.float64)
    order = np.argsort(-priority, kind="stable")
    k = min(k, len(order))
    chosen = list(order[:k])
    likely_pos = np.nan_to_num(np.asarray(mean_score, dtype=np.float64), nan=-1.0) >= threshold
    needed = int(np.ceil(min_positive_share * k)) - int(likely_pos[chosen].sum())
    if needed <= 0:
        return np.array(chosen, dtype=np.int64)
    extra = [i for i in order[k:] if likely_pos[i]][:needed]
    drop = [i for i in reversed(chosen) if not likely_pos[i]][: len(extra)]
    dropped = set(drop)
    kept = [i for i in chosen if i not in dropped]
    return np.array(kept + extra, dtype=np.int64)
