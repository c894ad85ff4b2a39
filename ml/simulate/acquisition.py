"""Acquisition functions of the replay; every score comes from `ml.scoring`, the code the labeling queue runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ml import scoring


@dataclass
class PoolView:
    """What the current model(s) say about the candidates; a strategy reads only the parts it needs."""

    candidates: np.ndarray  # dataset indices of the scored unlabeled candidates
    seed: int
    threshold: float = 0.5
    min_positive_share: float = 0.0
    mc_probs: np.ndarray | None = None  # (n, T, classes)
    member_probs: np.ndarray | None = None  # (n, K, classes), independently trained members
    product_members: str = "mc"  # which of the two the product strategies score
    embeddings: np.ndarray | None = None  # (n, D)
    labeled_embeddings: np.ndarray | None = None  # (m, D)
    gradient_embeddings: np.ndarray | None = None  # (n, classes·D)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores; ties go to the earlier candidate so runs are reproducible."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


def _mc_mean(view: PoolView) -> np.ndarray:
    return scoring.mean_probs(view.mc_probs)


def acquire_random(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.stable_random(view.candidates, view.seed), k)


def acquire_least_confidence(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.least_confidence(_mc_mean(view)), k)


def acquire_margin(view: PoolView, k: int) -> np.ndarray:
    return _top(-scoring.margin(_mc_mean(view)), k)


def acquire_entropy(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.entropy(_mc_mean(view)), k)


def acquire_var_ratios(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.variation_ratio(view.mc_probs), k)


def acquire_bald(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.mutual_information(view.mc_probs), k)


def acquire_ens_vote_entropy(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.vote_entropy(view.member_probs), k)


def acquire_ens_mi(view: PoolView, k: int) -> np.ndarray:
    return _top(scoring.mutual_information(view.member_probs), k)


def acquire_kcenter(view: PoolView, k: int) -> np.ndarray:
    """Core-set: candidates and labeled points share one feature space; labeled ones are the fixed centers."""
    features = np.concatenate([view.labeled_embeddings, view.embeddings])
    labeled = np.arange(len(view.labeled_embeddings))
    return scoring.k_center_greedy(features, k, selected=labeled) - len(labeled)


def acquire_badge(view: PoolView, k: int) -> np.ndarray:
    return scoring.kmeans_pp_seeding(view.gradient_embeddings, k, seed=view.seed)


def _product(name: str) -> Callable[[PoolView, int], np.ndarray]:
    def acquire(view: PoolView, k: int) -> np.ndarray:
        probs = view.member_probs if view.product_members == "ensemble" else view.mc_probs
        matrix = probs[..., 1] if probs.shape[-1] == 2 else probs
        names = [f"m{i}" for i in range(probs.shape[1])]
        config = scoring.StrategyConfig(name=name, seed=view.seed)
        hardness = scoring.rank_matrix(
            matrix, names, threshold=view.threshold, strategy=config, item_keys=view.candidates
        )
        if view.min_positive_share > 0 and probs.shape[-1] == 2:
            return scoring.select_with_positive_quota(
                hardness.priority,
                hardness.mean_score,
                k,
                threshold=view.threshold,
                min_positive_share=view.min_positive_share,
            )
        return _top(hardness.priority, k)

    acquire.__name__ = f"acquire_{name}"
    return acquire


ACQUISITIONS: dict[str, Callable[[PoolView, int], np.ndarray]] = {
    "random": acquire_random,
    "least_confidence": acquire_least_confidence,
    "margin": acquire_margin,
    "entropy": acquire_entropy,
    "var_ratios": acquire_var_ratios,
    "bald": acquire_bald,
    "ens_vote_entropy": acquire_ens_vote_entropy,
    "ens_mi": acquire_ens_mi,
    "kcenter": acquire_kcenter,
    "badge": acquire_badge,
    "uncertainty": _product("uncertainty"),
    "disagreement": _product("disagreement"),
    "hybrid": _product("hybrid"),
}


def needs(strategy: str, product_members: str) -> set[str]:
    """Which model outputs a strategy reads: mc, ensemble, embeddings, gradients."""
    if strategy in ("least_confidence", "margin", "entropy", "var_ratios", "bald"):
        return {"mc"}
    if strategy in ("ens_vote_entropy", "ens_mi"):
        return {"ensemble"}
    if strategy == "kcenter":
        return {"embeddings"}
    if strategy == "badge":
        return {"gradients"}
    if strategy in ("uncertainty", "disagreement", "hybrid"):
        return {product_members}
    return set()
