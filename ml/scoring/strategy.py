"""Blend the hardness measures into one priority per item (higher = harder), with the reasons a human reads."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from ml.scoring import measures as m
from ml.scoring.boxes import box_disagreement

StrategyName = Literal["uncertainty", "disagreement", "hybrid", "random"]
STRATEGIES: tuple[str, ...] = ("uncertainty", "disagreement", "hybrid", "random")

# Each component is scaled to [0, 1], 1 = hardest, so blend weights are comparable.
COMPONENTS: tuple[str, ...] = (
    "entropy",
    "least_confidence",
    "margin",
    "threshold",
    "disagreement",
    "vote_entropy",
    "vote_ratio",
    "std",
    "boxes",
)

DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "uncertainty": {"threshold": 0.6, "entropy": 0.4},
    "disagreement": {"disagreement": 0.6, "vote_ratio": 0.2, "std": 0.1, "boxes": 0.1},
    "hybrid": {"threshold": 0.4, "entropy": 0.1, "disagreement": 0.3, "vote_ratio": 0.1, "boxes": 0.1},
    "random": {},
}

NEAR_THRESHOLD_BAND = 0.1
DISAGREEMENT_GAP = 0.3
CLOSE_MARGIN = 0.2


@dataclass
class StrategyConfig:
    """How the queue orders items; `weights` blends the components in COMPONENTS (empty = the defaults)."""

    name: StrategyName = field(
        default="hybrid", metadata={"help": "uncertainty | disagreement | hybrid | random"}
    )
    weights: dict[str, float] = field(
        default_factory=dict, metadata={"help": "component -> weight; empty uses the strategy's defaults"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the deterministic per-item random order"})

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise ValueError(f"name: must be one of {', '.join(STRATEGIES)}, got {self.name!r}")
        unknown = sorted(set(self.weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"weights: unknown components {unknown}; known: {', '.join(COMPONENTS)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights: must be non-negative")
        if self.weights and self.name != "random" and sum(self.weights.values()) <= 0:
            raise ValueError("weights: at least one weight must be positive")

    def blend_weights(self) -> dict[str, float]:
        return dict(self.weights) if self.weights else dict(DEFAULT_WEIGHTS[self.name])


@dataclass
class ItemHardness:
    priority: float
    mean_score: float
    entropy: float
    margin: float
    threshold_distance: float
    disagreement: float
    vote_ratio: float
    score_std: float
    n_models: int
    box_disagreement: float = 0.0
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HardnessArrays:
    """Every measure for a whole matrix at once; `item(i)` and `reasons_for(i)` build one row on demand."""

    priority: np.ndarray
    mean_score: np.ndarray  # binary: weighted mean P(positive); multiclass: top-class probability of the mean
    entropy: np.ndarray  # bits, of the mean prediction
    margin: np.ndarray  # top-1 − top-2 of the mean prediction (small = hard)
    threshold_distance: np.ndarray
    disagreement: np.ndarray  # mutual information H(mean) − mean H, bits
    vote_ratio: np.ndarray  # variation ratio of the hard votes
    score_std: np.ndarray
    n_models: np.ndarray
    box_disagreement: np.ndarray
    model_names: list[str]
    threshold: float
    strategy: StrategyConfig
    member_scores: np.ndarray  # (items, models): each model's score for the mean's top class (binary: P(pos))
    class_names: list[str] | None = None
    top_classes: np.ndarray | None = None  # (items, 2) indices of the mean's two best classes (multiclass)

    def __len__(self) -> int:
        return len(self.priority)

    def reasons_for(self, i: int) -> list[str]:
        return _reasons(self, i)

    def item(self, i: int) -> ItemHardness:
        return ItemHardness(
            priority=float(self.priority[i]),
            mean_score=float(self.mean_score[i]),
            entropy=float(self.entropy[i]),
            margin=float(self.margin[i]),
            threshold_distance=float(self.threshold_distance[i]),
            disagreement=float(self.disagreement[i]),
            vote_ratio=float(self.vote_ratio[i]),
            score_std=float(self.score_std[i]),
            n_models=int(self.n_models[i]),
            box_disagreement=float(self.box_disagreement[i]),
            reasons=self.reasons_for(i),
        )


def _model_weight_vector(model_names: list[str], weights: dict[str, float] | None) -> np.ndarray | None:
    if not weights:
        return None
    unknown = sorted(set(weights) - set(model_names))
    if unknown:
        raise ValueError(f"weights: unknown models {unknown}")
    return np.array([float(weights.get(name, 1.0)) for name in model_names])


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit mixer: the same key and seed always give the same pseudo-random value."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stable_random(keys: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) per integer key, a pure function of (key, seed) so a re-rank keeps the order."""
    keys = np.asarray(keys).astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(keys ^ _splitmix64(np.array([seed], dtype=np.uint64)))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def key_to_int(key: int | str) -> int:
    if isinstance(key, int | np.integer):
        return int(key) & 0xFFFFFFFFFFFFFFFF
    return int.from_bytes(hashlib.blake2b(str(key).encode(), digest_size=8).digest(), "little")


def _components(arrays: dict[str, np.ndarray], n_classes: int, threshold: float) -> dict[str, np.ndarray]:
    log_c = np.log2(n_classes)
    chance = 1.0 - 1.0 / n_classes
    return {
        "entropy": arrays["entropy"] / log_c,
        "least_confidence": arrays["least_confidence"] / chance,
        "margin": 1.0 - arrays["margin"],
        "threshold": 1.0 - arrays["threshold_distance"] / max(threshold, 1.0 - threshold),
        "disagreement": arrays["disagreement"] / log_c,
        "vote_entropy": arrays["vote_entropy"] / log_c,
        "vote_ratio": arrays["vote_ratio"] / chance,
        "std": arrays["score_std"] / 0.5,
        "boxes": arrays["box_disagreement"],
    }


def blend_priority(components: dict[str, np.ndarray], blend: dict[str, float]) -> np.ndarray:
    """Weighted mean of the [0, 1] components; rows with nothing to measure (NaN) count as 0."""
    total = sum(blend.values())
    n = len(next(iter(components.values())))
    priority = np.zeros(n)
    for name, w in blend.items():
        if w:
            priority += w * np.nan_to_num(np.clip(components[name], 0.0, 1.0), nan=0.0)
    return priority / total


def _member_scores(probs: np.ndarray, top: np.ndarray) -> np.ndarray:
    if probs.shape[-1] == 2:
        return probs[..., 1]
    return np.take_along_axis(probs, top[:, None, None], axis=-1)[..., 0]


def rank_matrix(
    P: np.ndarray,
    model_names: list[str],
    *,
    threshold: float,
    strategy: StrategyConfig,
    weights: dict[str, float] | None = None,
    box_disagreement: np.ndarray | None = None,
    item_keys: np.ndarray | None = None,
    class_names: list[str] | None = None,
) -> HardnessArrays:
    """Hardness of every item of a score matrix: P is (items, models) of P(positive) or (items, models, classes).

    NaN marks a model that did not score the item. `weights` are per-model ensemble weights;
    `item_keys` (integers) make the `random` strategy's order a function of the item rather than its row.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be in (0, 1), got {threshold}")
    probs = m.as_probs(P)
    n_items, n_models, n_classes = probs.shape
    if len(model_names) != n_models:
        raise ValueError(f"model_names: {len(model_names)} names for {n_models} model columns")
    w = _model_weight_vector(model_names, weights)
    present = m.present_mask(probs)
    mean = m.mean_probs(probs, w)
    binary = n_classes == 2
    top = np.argmax(np.nan_to_num(mean, nan=-1.0), axis=1)
    mean_score = mean[:, 1] if binary else np.take_along_axis(mean, top[:, None], axis=1)[:, 0]
    member_scores = _member_scores(probs, top)
    votes = m.vote_distribution(probs, w, threshold if binary else None)
    boxes = np.zeros(n_items) if box_disagreement is None else np.asarray(box_disagreement, dtype=np.float64)
    arrays = {
        "entropy": m.entropy(mean),
        "least_confidence": m.least_confidence(mean),
        "margin": m.margin(mean),
        "threshold_distance": m.threshold_distance(mean_score, threshold),
        "disagreement": m.mutual_information(probs, w),
        "vote_entropy": m.entropy(votes),
        "vote_ratio": m.variation_ratio_of(votes),
        "score_std": m.score_std(member_scores, w),
        "box_disagreement": boxes,
    }
    if strategy.name == "random":
        keys = np.arange(n_items) if item_keys is None else np.asarray(item_keys)
        priority = stable_random(keys, strategy.seed)
    else:
        priority = blend_priority(_components(arrays, n_classes, threshold), strategy.blend_weights())
    top2 = None if binary else np.argsort(-np.nan_to_num(mean, nan=-1.0), axis=1)[:, :2]
    return HardnessArrays(
        priority=priority,
        mean_score=mean_score,
        entropy=arrays["entropy"],
        margin=arrays["margin"],
        threshold_distance=arrays["threshold_distance"],
        disagreement=arrays["disagreement"],
        vote_ratio=arrays["vote_ratio"],
        score_std=arrays["score_std"],
        n_models=present.sum(axis=1),
        box_disagreement=boxes,
        model_names=list(model_names),
        threshold=threshold,
        strategy=strategy,
        member_scores=member_scores,
        class_names=class_names,
        top_classes=top2,
    )


# What `reasons_from_measures` reads of a stored ranking (besides each model's score).
REASON_MEASURES = ("mean_score", "margin", "threshold_distance", "vote_ratio", "box_disagreement")


def reasons_from_measures(
    measures: dict[str, float],
    member_scores: dict[str, float | None],
    *,
    threshold: float,
    strategy: StrategyConfig,
) -> list[str]:
    """A binary item's reasons from the measures its ranking stored (`REASON_MEASURES`) and each model's
    P(positive): what `rank_matrix` says of it, without ranking the one item again (half a millisecond of numpy
    on every lease)."""
    scores = np.array([[np.nan if v is None else float(v) for v in member_scores.values()]])
    one = {key: np.array([float(value)]) for key, value in measures.items()}
    nothing = np.zeros(1)
    arrays = HardnessArrays(
        priority=nothing,
        mean_score=one["mean_score"],
        entropy=nothing,
        margin=one["margin"],
        threshold_distance=one["threshold_distance"],
        disagreement=nothing,
        vote_ratio=one["vote_ratio"],
        score_std=nothing,
        n_models=(~np.isnan(scores)).sum(axis=1),
        box_disagreement=one["box_disagreement"],
        model_names=list(member_scores),
        threshold=threshold,
        strategy=strategy,
        member_scores=scores,
    )
    return _reasons(arrays, 0)


def _disagreement_reason(h: HardnessArrays, i: int) -> str | None:
    scores = h.member_scores[i]
    present = ~np.isnan(scores)
    if present.sum() < 2:
        return None
    hi = int(np.nanargmax(scores))
    lo = int(np.nanargmin(scores))
    split_votes = h.vote_ratio[i] > 0
    if scores[hi] - scores[lo] < DISAGREEMENT_GAP and not split_votes:
        return None
    names = h.model_names
    return f"models disagree: {names[hi]} {scores[hi]:.2f} vs {names[lo]} {scores[lo]:.2f}"


def _class_name(h: HardnessArrays, index: int) -> str:
    return h.class_names[index] if h.class_names else f"class {index}"


def _reasons(h: HardnessArrays, i: int) -> list[str]:
    n = int(h.n_models[i])
    if n == 0:
        return ["no model scored it"]
    reasons: list[str] = []
    if h.strategy.name == "random":
        reasons.append(f"random pick (seed {h.strategy.seed})")
    if n == 1:
        name = h.model_names[int(np.flatnonzero(~np.isnan(h.member_scores[i]))[0])]
        reasons.append(f"only one model scored it ({name} {h.mean_score[i]:.2f})")
    disagree = _disagreement_reason(h, i)
    if disagree:
        reasons.append(disagree)
    if h.threshold_distance[i] <= NEAR_THRESHOLD_BAND:
        reasons.append(f"near threshold {h.mean_score[i]:.2f} (t={h.threshold:.2f})")
    if h.top_classes is not None and h.margin[i] <= CLOSE_MARGIN:
        a, b = (int(c) for c in h.top_classes[i])
        pa = h.mean_score[i]
        reasons.append(
            f"top classes close: {_class_name(h, a)} {pa:.2f} vs {_class_name(h, b)} {pa - h.margin[i]:.2f}"
        )
    if h.box_disagreement[i] > 0:
        reasons.append(f"boxes disagree ({h.box_disagreement[i]:.0%} unmatched)")
    if not reasons or reasons == [f"random pick (seed {h.strategy.seed})"]:
        reasons.append(f"models agree: mean {h.mean_score[i]:.2f}")
    return reasons


def hardness_for_item(
    scores: dict[str, float | list[float] | None],
    *,
    threshold: float,
    strategy: StrategyConfig,
    weights: dict[str, float] | None = None,
    boxes: dict[str, list] | None = None,
    item_key: int | str | None = None,
    class_names: list[str] | None = None,
) -> ItemHardness:
    """One item: `scores` maps model -> P(positive), a class-probability list, or None (did not score it).

    `boxes` maps model -> [[x1, y1, x2, y2, class, score], ...] for detection projects.
    """
    names = list(scores)
    if not names:
        raise ValueError("scores: need at least one model")
    row = _item_row(scores)
    box_score = np.zeros(1)
    if boxes:
        box_score[0] = box_disagreement(boxes, min_score=0.0).score
    key = key_to_int(item_key if item_key is not None else repr(sorted(scores.items(), key=str)))
    arrays = rank_matrix(
        row,
        names,
        threshold=threshold,
        strategy=strategy,
        weights=weights,
        box_disagreement=box_score,
        item_keys=np.array([key], dtype=np.uint64),
        class_names=class_names,
    )
    return arrays.item(0)


def _item_row(scores: dict[str, float | list[float] | None]) -> np.ndarray:
    values = list(scores.values())
    vectors = [v for v in values if v is not None and not np.isscalar(v)]
    if not vectors:
        return np.array([[np.nan if v is None else float(v) for v in values]])
    n_classes = len(vectors[0])
    if any(len(v) != n_classes for v in vectors) or len(vectors) != sum(v is not None for v in values):
        raise ValueError("scores: give every model a probability list of the same length (or None)")
    rows = [np.full(n_classes, np.nan) if v is None else np.asarray(v, dtype=np.float64) for v in values]
    return np.stack(rows)[None, :, :]
