"""The replay loop: seed set → (train, score pool, acquire k, reveal labels) rounds → learning curve per strategy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ml.simulate.acquisition import ACQUISITIONS, PoolView, needs
from ml.simulate.config import SimulationConfig
from ml.simulate.data import ReplayData, balanced_seed_set, replay_data


@dataclass
class Curve:
    """One strategy, one seed: metric after each round."""

    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)
    error: list[float] = field(default_factory=list)
    positives: list[int] = field(default_factory=list)  # labeled positives so far (binary)
    round_seconds: list[float] = field(default_factory=list)


def mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp = float(np.sum((y_true == 1) & (y_pred == 1)))
    tn = float(np.sum((y_true == 0) & (y_pred == 0)))
    fp = float(np.sum((y_true == 0) & (y_pred == 1)))
    fn = float(np.sum((y_true == 1) & (y_pred == 0)))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denom) if denom > 0 else 0.0


class _Learner:
    """The model(s) of one strategy's run: a main CNN plus K−1 more members when the strategy needs an ensemble."""

    def __init__(self, config: SimulationConfig, data: ReplayData, seed: int, n_members: int) -> None:
        from ml.simulate import model as cnn

        self.cnn, self.config, self.data, self.seed = cnn, config, data, seed
        self.models = [cnn.new_model(data.n_classes, seed * 1000 + i) for i in range(n_members)]
        self.optimizers: list = [None] * n_members
        self.round = 0

    def fit(self, labeled: np.ndarray) -> None:
        c = self.config
        steps = self.cnn.steps_for(
            len(labeled), epochs=c.epochs, batch_size=c.batch_size, min_steps=c.min_steps
        )
        if self.round == 0 or c.from_scratch:
            steps *= 3
        for i, net in enumerate(self.models):
            if c.from_scratch:
                net = self.models[i] = self.cnn.new_model(self.data.n_classes, self.seed * 1000 + i)
                self.optimizers[i] = None
            self.optimizers[i] = self.cnn.train_steps(
                net,
                self.data.x_train[labeled],
                self.data.y_train[labeled],
                steps=steps,
                batch_size=c.batch_size,
                learning_rate=c.learning_rate,
                seed=self.seed * 7919 + self.round * 31 + i,
                optimizer=self.optimizers[i],
            )
        self.round += 1

    def evaluate(self) -> tuple[float, float]:
        """(error, MCC) of the first member on the fixed test set. Extra ensemble members only score the pool, so
        every strategy is judged on one model trained on the labels it chose."""
        pred = self.cnn.predict_probs(self.models[0], self.data.x_test).argmax(axis=1)
        error = float(np.mean(pred != self.data.y_test))
        return error, mcc(self.data.y_test, pred) if self.data.n_classes == 2 else float("nan")

    def view(self, strategy: str, candidates: np.ndarray, labeled: np.ndarray, seed: int) -> PoolView:
        c = self.config
        view = PoolView(
            candidates=candidates,
            seed=seed,
            threshold=c.threshold,
            min_positive_share=c.min_positive_share,
            product_members=c.members_for_product,
        )
        wanted = needs(strategy, c.members_for_product)
        x = self.data.x_train[candidates]
        main = self.models[0]
        if "mc" in wanted:
            view.mc_probs = self.cnn.mc_dropout_probs(main, x, c.mc_samples, seed)
        if "ensemble" in wanted:
            view.member_probs = np.stack([self.cnn.predict_probs(net, x) for net in self.models], axis=1)
        if "embeddings" in wanted:
            view.embeddings = self.cnn.embeddings(main, x)
            view.labeled_embeddings = self.cnn.embeddings(main, self.data.x_train[labeled])
        if "gradients" in wanted:
            view.gradient_embeddings = self.cnn.gradient_embeddings(main, x)
        return view


def run_strategy(
    config: SimulationConfig, data: ReplayData, strategy: str, seed: int, log: Callable[[str], None] = print
) -> Curve:
    rng = np.random.default_rng(seed)
    labeled = balanced_seed_set(data.y_train, config.initial_labels, rng=rng)
    uses_ensemble = "ensemble" in needs(strategy, config.members_for_product)
    learner = _Learner(config, data, seed, config.ensemble_size if uses_ensemble else 1)
    curve = Curve(strategy, seed)
    acquire = ACQUISITIONS[strategy]
    while True:
        started = time.perf_counter()
        learner.fit(labeled)
        error, mcc_value = learner.evaluate()
        curve.labels.append(len(labeled))
        curve.error.append(error)
        curve.metric.append(mcc_value if config.metric == "mcc" else error)
        curve.positives.append(int(np.sum(data.y_train[labeled] == 1)) if data.n_classes == 2 else 0)
        if len(labeled) >= config.max_labels:
            curve.round_seconds.append(time.perf_counter() - started)
            break
        unlabeled = np.setdiff1d(np.arange(len(data.y_train)), labeled)
        candidates = np.sort(rng.choice(unlabeled, min(config.pool_size, len(unlabeled)), replace=False))
        k = min(config.acquire_per_round, config.max_labels - len(labeled))
        round_seed = seed * 100_003 + len(labeled)
        picks = acquire(learner.view(strategy, candidates, labeled, round_seed), k)
        labeled = np.concatenate([labeled, candidates[picks]])
        curve.round_seconds.append(time.perf_counter() - started)
        log(f"{strategy} seed {seed}: {len(labeled) - k} labels -> {config.metric} {curve.metric[-1]:.4f}")
    return curve


def run_simulation(
    config: SimulationConfig,
    log: Callable[[str], None] = print,
    on_curve: Callable[[list[Curve]], None] | None = None,
) -> list[Curve]:
    """Every strategy on every seed; `on_curve` sees the curves so far after each run (partial reports)."""
    import torch

    torch.set_num_threads(config.threads)
    curves = []
    for seed in range(config.seeds):
        data = replay_data(
            config.dataset, test_size=config.test_size, positive_digit=config.positive_digit, seed=seed
        )
        for strategy in config.strategies:
            curves.append(run_strategy(config, data, strategy, seed, log))
            if on_curve:
                on_curve(curves)
    return curves
