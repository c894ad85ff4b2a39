"""Settings of an active-learning replay; importable without torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DATASETS = ("mnist", "mnist-binary")
PROTOCOLS = ("gal2017",)
MC_STRATEGIES = ("least_confidence", "margin", "entropy", "var_ratios", "bald")
ENSEMBLE_STRATEGIES = ("ens_vote_entropy", "ens_mi")
PRODUCT_STRATEGIES = ("uncertainty", "disagreement", "hybrid")
STRATEGY_NAMES = ("random", *MC_STRATEGIES, *ENSEMBLE_STRATEGIES, "kcenter", "badge", *PRODUCT_STRATEGIES)

# Gal, Islam & Ghahramani (ICML 2017), Table 1: labels needed to reach 10% / 5% test error on MNIST.
GAL2017_LABELS_TO_ERROR = {
    "var_ratios": (120, 295),
    "bald": (145, 335),
    "entropy": (165, 355),
    "random": (255, 835),
}


@dataclass
class SimulationConfig:
    """One replay: seed set, rounds of `acquire_per_round` labels chosen by each strategy, retrain, evaluate."""

    dataset: str = field(
        default="mnist", metadata={"help": "mnist (10 classes) | mnist-binary (rare positive)"}
    )
    protocol: str = field(default="gal2017", metadata={"help": "gal2017: 20 balanced seeds, +10 per round"})
    strategies: list[str] = field(
        default_factory=lambda: ["random", "var_ratios", "bald", "entropy", "hybrid"],
        metadata={"help": f"any of {', '.join(STRATEGY_NAMES)}"},
    )
    seeds: int = field(
        default=1, metadata={"help": "independent repetitions (different seed sets and inits)"}
    )
    max_labels: int = field(default=1000, metadata={"help": "stop once this many labels are revealed"})
    initial_labels: int = field(default=20, metadata={"help": "seed set size (class-balanced)"})
    acquire_per_round: int = field(default=10, metadata={"help": "labels revealed per round"})
    pool_size: int = field(default=2000, metadata={"help": "random unlabeled candidates scored per round"})
    mc_samples: int = field(default=20, metadata={"help": "MC-dropout forward passes (T)"})
    ensemble_size: int = field(default=3, metadata={"help": "independently trained members (K)"})
    hybrid_members: str = field(
        default="auto", metadata={"help": "members the product strategies score: mc | ensemble | auto"}
    )
    threshold: float = field(default=0.5, metadata={"help": "production threshold on P(positive) (binary)"})
    min_positive_share: float = field(
        default=0.0, metadata={"help": "product strategies serve at least this share of likely positives"}
    )
    epochs: float = field(default=5.0, metadata={"help": "passes over the labeled set per round"})
    min_steps: int = field(default=40, metadata={"help": "at least this many optimiser steps per round"})
    batch_size: int = field(default=32, metadata={"help": "training batch size"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    from_scratch: bool = field(
        default=False, metadata={"help": "re-initialise every round instead of continuing training"}
    )
    test_size: int = field(default=0, metadata={"help": "test images used (0 = all 10,000)"})
    positive_digit: int = field(default=7, metadata={"help": "mnist-binary: the digit that is 'positive'"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    out: Path = field(default=Path("bench/out/simulate"), metadata={"help": "folder for JSON, PNG and table"})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: must be one of {', '.join(DATASETS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: must be one of {', '.join(PROTOCOLS)}")
        unknown = [s for s in self.strategies if s not in STRATEGY_NAMES]
        if unknown or not self.strategies:
            raise ValueError(f"strategies: unknown {unknown}; choose from {', '.join(STRATEGY_NAMES)}")
        if self.seeds < 1:
            raise ValueError("seeds: must be at least 1")
        if self.initial_labels < self.n_classes:
            raise ValueError(f"initial_labels: need at least one per class ({self.n_classes})")
        if self.max_labels <= self.initial_labels:
            raise ValueError("max_labels: must exceed initial_labels")
        if self.acquire_per_round < 1 or self.pool_size < self.acquire_per_round:
            raise ValueError("pool_size: must be at least acquire_per_round (≥ 1)")
        if self.mc_samples < 2 or self.ensemble_size < 2:
            raise ValueError("mc_samples: and ensemble_size need at least 2 members")
        if self.hybrid_members not in ("mc", "ensemble", "auto"):
            raise ValueError("hybrid_members: must be mc, ensemble or auto")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError("threshold: must be in (0, 1)")
        if not 0.0 <= self.min_positive_share <= 1.0:
            raise ValueError("min_positive_share: must be in [0, 1]")
        if self.epochs <= 0 or self.min_steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs: epochs, min_steps, batch_size and learning_rate must be positive")
        if not 0 <= self.positive_digit <= 9:
            raise ValueError("positive_digit: must be 0-9")

    @property
    def n_classes(self) -> int:
        return 2 if self.dataset == "mnist-binary" else 10

    @property
    def members_for_product(self) -> str:
        """The cascade is several independently trained models, so the binary product setting uses an ensemble."""
        if self.hybrid_members != "auto":
            return self.hybrid_members
        return "ensemble" if self.dataset == "mnist-binary" else "mc"

    @property
    def metric(self) -> str:
        return "mcc" if self.dataset == "mnist-binary" else "error"

    @property
    def targets(self) -> tuple[float, ...]:
        return (0.8, 0.9) if self.dataset == "mnist-binary" else (0.10, 0.05)
