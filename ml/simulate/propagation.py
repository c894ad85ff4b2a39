"""Label propagation over a k-nearest-neighbour graph of fixed features (numpy + scipy, no torch).

Zhou et al. (NIPS 2004) label spreading with the affinities of Iscen et al. (CVPR 2019, "Label propagation for
deep semi-supervised learning"): W_ij = max(cos_ij, 0)^gamma over each point's k nearest neighbours, made
symmetric, S = D^-1/2 W D^-1/2, and F = (I - alpha S)^-1 Y solved by conjugate gradients per class. Every
unlabeled pool image takes part (its label is never read), so a few labels reach the whole cluster they sit
in. Test images are not in the graph: each is classified by its k nearest pool images' propagated labels, so
the test set stays unseen. Features are expected L2-normalised (cosine = dot product)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import cg


@dataclass(frozen=True)
class KnnGraph:
    """Each row's k nearest neighbours (itself excluded) in `reference` and their cosine similarities."""

    neighbours: np.ndarray  # (n, k) int64 indices into the reference points
    similarities: np.ndarray  # (n, k) float32


def knn(
    queries: np.ndarray, reference: np.ndarray, k: int, *, exclude_self: bool, block: int = 2048
) -> KnnGraph:
    """Exact cosine k-NN by blocked matrix products (60k × 60k × 128 takes seconds)."""
    n = len(queries)
    extra = 1 if exclude_self else 0
    neighbours = np.empty((n, k), dtype=np.int64)
    similarities = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        sims = queries[start : start + block] @ reference.T
        if exclude_self:
            rows = np.arange(len(sims))
            sims[rows, start + rows] = -np.inf
        top = np.argpartition(-sims, k + extra - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1)
        neighbours[start : start + block] = np.take_along_axis(top, order, axis=1)
        similarities[start : start + block] = np.take_along_axis(top_sims, order, axis=1)
    return KnnGraph(neighbours, similarities)


def affinity_matrix(graph: KnnGraph, gamma: float = 3.0) -> sparse.csr_matrix:
    """Symmetric normalised affinity S = D^-1/2 (W + W^T) D^-1/2 of a k-NN graph."""
    n, k = graph.neighbours.shape
    weights = np.clip(graph.similarities, 0.0, None).astype(np.float64) ** gamma
    w = sparse.csr_matrix(
        (weights.ravel(), (np.repeat(np.arange(n), k), graph.neighbours.ravel())), shape=(n, n)
    )
    w = w + w.T
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    return sparse.diags(scale) @ w @ sparse.diags(scale)


def propagate(
    affinity: sparse.csr_matrix,
    labeled: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    alpha: float = 0.99,
    iterations: int = 20,
) -> np.ndarray:
    """(n, classes) propagated label distribution, rows summing to 1 (uniform where nothing reached).

    Each class's seed vector is divided by its labeled count (Iscen et al.'s class balancing), so a class that
    happens to have more labels does not flood its neighbours'."""
    n = affinity.shape[0]
    operator = sparse.identity(n, format="csr") - alpha * affinity
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    scores = np.zeros((n, n_classes))
    for c in range(n_classes):
        if counts[c] == 0:
            continue
        seed = np.zeros(n)
        seed[labeled[labels == c]] = 1.0 / counts[c]
        scores[:, c], _ = cg(operator, seed, maxiter=iterations)
    scores = np.clip(scores, 0.0, None)
    scores[labeled] = 0.0
    scores[labeled, labels] = 1.0  # a labeled image is what its annotator said
    total = scores.sum(axis=1, keepdims=True)
    return np.where(total > 0, scores / np.where(total > 0, total, 1.0), 1.0 / n_classes)


def classify(graph: KnnGraph, distribution: np.ndarray, gamma: float = 3.0) -> np.ndarray:
    """(queries, classes) the similarity-weighted mean of the query's pool neighbours' distributions."""
    weights = np.clip(graph.similarities, 0.0, None).astype(np.float64) ** gamma + 1e-12
    mixed = (weights[..., None] * distribution[graph.neighbours]).sum(axis=1)
    return mixed / mixed.sum(axis=1, keepdims=True)
