"""Drift of a model's recent scores or embeddings against a reference window (alibi-detect KS and MMD tests)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DriftResult:
    is_drift: bool
    p_value: float
    distance: float
    method: str
    n_reference: int
    n_recent: int

    def to_dict(self) -> dict:
        return asdict(self)


def _quiet_alibi() -> None:
    # alibi-detect pulls in transformers/tensorflow probes; keep it offline and quiet.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _check_windows(reference: np.ndarray, recent: np.ndarray, min_size: int) -> None:
    if len(reference) < min_size or len(recent) < min_size:
        raise ValueError(f"reference: and recent need at least {min_size} samples each")


def check_score_drift(reference: np.ndarray, recent: np.ndarray, *, p_value: float = 0.05) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov test on 1-D scores (alibi-detect KSDrift)."""
    _quiet_alibi()
    from alibi_detect.cd import KSDrift

    ref = np.asarray(reference, dtype=np.float32).reshape(-1, 1)
    new = np.asarray(recent, dtype=np.float32).reshape(-1, 1)
    _check_windows(ref, new, 2)
    data = KSDrift(ref, p_val=p_value).predict(new)["data"]
    return DriftResult(
        is_drift=bool(data["is_drift"]),
        p_value=float(np.min(data["p_val"])),
        distance=float(np.max(data["distance"])),
        method="ks",
        n_reference=len(ref),
        n_recent=len(new),
    )


def check_embedding_drift(
    reference: np.ndarray,
    recent: np.ndarray,
    *,
    p_value: float = 0.05,
    backend: str = "pytorch",
    n_permutations: int = 100,
) -> DriftResult:
    """Maximum mean discrepancy with a permutation test on (n, d) embeddings (alibi-detect MMDDrift)."""
    if backend not in ("pytorch", "keops"):
        raise ValueError(f"backend: use 'pytorch' (installed) or 'keops', got {backend!r}")
    _quiet_alibi()
    from alibi_detect.cd import MMDDrift

    ref = np.asarray(reference, dtype=np.float32)
    new = np.asarray(recent, dtype=np.float32)
    ref, new = ref.reshape(len(ref), -1), new.reshape(len(new), -1)
    _check_windows(ref, new, 2)
    detector = MMDDrift(ref, backend=backend, p_val=p_value, n_permutations=n_permutations, device="cpu")
    data = detector.predict(new)["data"]
    return DriftResult(
        is_drift=bool(data["is_drift"]),
        p_value=float(data["p_val"]),
        distance=float(data["distance"]),
        method="mmd",
        n_reference=len(ref),
        n_recent=len(new),
    )
