"""Cold-start selection on a fixed representation (numpy + scikit-learn, no torch).

TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): cluster into |labeled| + budget groups, then repeatedly take
the most typical point (highest inverse mean distance to its nearest neighbours) of the largest cluster that
holds the fewest labeled points. ProbCover (Yehuda et al., NeurIPS 2022): a graph joining points closer than δ,
δ the largest radius whose balls stay 95% pure under a k-means labelling; greedily take the point whose ball
covers most still-uncovered points, labeled points' balls counting as covered."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.einsum("nd,nd->n", a, a)[:, None] - 2.0 * a @ b.T + np.einsum("nd,nd->n", b, b)[None, :]
    return np.clip(d, 0.0, None)


def typicality(features: np.ndarray, k: int = 20) -> np.ndarray:
    """1 / mean distance to the k nearest other points (the paper's density estimate, within one cluster)."""
    n = len(features)
    if n <= 1:
        return np.ones(n)
    k = min(k, n - 1)
    out = np.empty(n)
    for start in range(0, n, 1024):
        d = np.sqrt(_sq_dists(features[start : start + 1024], features))
        nearest = np.partition(d, k, axis=1)[:, : k + 1]  # includes the point itself at distance 0
        out[start : start + 1024] = 1.0 / (nearest.sum(axis=1) / k + 1e-12)
    return out


def typiclust(
    features: np.ndarray,
    budget: int,
    labeled: np.ndarray | None = None,
    *,
    seed: int = 0,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
    knn: int = 20,
) -> np.ndarray:
    """Indices (into `features`) of `budget` new points; `labeled` indices are never returned."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    features = np.asarray(features, dtype=np.float32)
    labeled = np.asarray(labeled if labeled is not None else [], dtype=np.int64)
    n_clusters = min(len(labeled) + budget, max_clusters, len(features))
    if n_clusters <= 50:
        km = KMeans(n_clusters, n_init=1, random_state=seed)
    else:
        km = MiniBatchKMeans(n_clusters, n_init=1, random_state=seed, batch_size=4096)
    assign = km.fit_predict(features)
    sizes = np.bincount(assign, minlength=n_clusters)
    covered = (
        np.bincount(assign[labeled], minlength=n_clusters) if len(labeled) else np.zeros(n_clusters, int)
    )
    taken = np.zeros(len(features), dtype=bool)
    taken[labeled] = True
    picks: list[int] = []
    for _ in range(budget):
        open_sizes = np.where(sizes - np.bincount(assign[taken], minlength=n_clusters) > 0, sizes, 0)
        eligible = open_sizes >= min(min_cluster_size, max(open_sizes.max(), 1))
        # fewest labeled first, then the largest cluster
        order = np.lexsort((-sizes, covered))
        cluster = next(int(c) for c in order if eligible[c])
        members = np.flatnonzero((assign == cluster) & ~taken)
        typ = typicality(features[assign == cluster], knn)
        in_cluster = np.flatnonzero(assign == cluster)
        score = dict(zip(in_cluster.tolist(), typ.tolist(), strict=True))
        best = max(members.tolist(), key=lambda i: (score[i], -i))
        picks.append(best)
        taken[best] = True
        covered[cluster] += 1
    return np.array(picks, dtype=np.int64)


def purity_radius(features: np.ndarray, n_classes: int, *, purity: float = 0.95, seed: int = 0) -> float:
    """Largest δ with at least `purity` of the δ-balls holding a single k-means cluster (ProbCover's choice)."""
    from sklearn.cluster import KMeans

    assign = KMeans(n_classes, n_init=1, random_state=seed).fit_predict(features)
    nearest_other = np.empty(len(features))
    for start in range(0, len(features), 1024):
        d = _sq_dists(features[start : start + 1024], features)
        d[assign[start : start + 1024][:, None] == assign[None, :]] = np.inf
        nearest_other[start : start + 1024] = np.sqrt(d.min(axis=1))
    # a ball is pure iff δ is below the distance to the nearest point of another cluster
    return float(np.quantile(nearest_other, 1.0 - purity))


def ball_graph(features: np.ndarray, delta: float) -> sparse.csr_matrix:
    """Boolean (n, n) adjacency: j is in i's δ-ball (i itself included)."""
    rows, cols = [], []
    for start in range(0, len(features), 1024):
        d = _sq_dists(features[start : start + 1024], features)
        r, c = np.nonzero(d <= delta * delta)
        rows.append(r + start)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    n = len(features)
    return sparse.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(n, n))


def covered_by(features: np.ndarray, centers: np.ndarray, delta: float) -> np.ndarray:
    """Which points lie within δ of at least one center (labeled points outside the graph still cover)."""
    covered = np.zeros(len(features), dtype=bool)
    for start in range(0, len(centers), 256):
        covered |= (_sq_dists(features, centers[start : start + 256]) <= delta * delta).any(axis=1)
    return covered


def probcover(
    features: np.ndarray,
    budget: int,
    labeled: np.ndarray | None = None,
    *,
    delta: float,
    graph=None,
    covered: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy max coverage of δ-balls; pass `graph` (from `ball_graph`) to reuse it across rounds and `covered`
    for points already covered by labeled points that are not in `features`."""
    features = np.asarray(features, dtype=np.float32)
    graph = graph if graph is not None else ball_graph(features, delta)
    labeled = np.asarray(labeled if labeled is not None else [], dtype=np.int64)
    uncovered = np.ones(len(features), dtype=np.float32)
    if len(labeled):
        uncovered[graph[labeled].indices] = 0.0
    if covered is not None:
        uncovered[covered] = 0.0
    taken = np.zeros(len(features), dtype=bool)
    taken[labeled] = True
    picks: list[int] = []
    for _ in range(budget):
        gain = graph @ uncovered
        gain[taken] = -1.0
        if gain.max() <= 0:  # everything is covered: fall back to the most connected untaken point
            gain = np.asarray(graph.sum(axis=1)).ravel()
            gain[taken] = -1.0
        best = int(np.argmax(gain))
        picks.append(best)
        taken[best] = True
        uncovered[graph[best].indices] = 0.0
    return np.array(picks, dtype=np.int64)
