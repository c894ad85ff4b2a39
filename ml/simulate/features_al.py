"""Active learning on cached self-supervised MNIST features (from `ml.simulate.ssl`).

Every arm starts from zero labels and reveals `acquire_per_round` per round; the classifier is the same small
MLP with dropout for every arm (trained from scratch each round, fixed hyper-parameters), evaluated on the full
test set; a validation set held out of the pool is tracked but never used to choose. Arms are written
`cold+warm:N`: the cold-start rule (typiclust, probcover or random) until N labels, then the uncertainty rule
(bald: MC-dropout mutual information; badge: k-means++ on last-layer gradient embeddings). Each (arm, seed)
result is written when it finishes; rerunning skips finished ones."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml.simulate.efficiency import (
    Trace,
    efficiency_section,
    markdown_table,
    report_document,
    write_json_atomic,
)

DEFAULT_ARMS = (
    "random",
    "typiclust+bald:50",
    "probcover+bald:50",
    "typiclust+badge:50",
    "typiclust",
    "probcover",
)
# The propagation learner's default arms: margin is its uncertainty (no dropout samples, no gradients)
PROPAGATION_ARMS = (
    "random",
    "random+margin:10",
    "typiclust+margin:50",
    "probcover+margin:50",
    "typiclust",
    "probcover",
)
COLD = ("random", "typiclust", "probcover")
WARM = ("bald", "badge", "margin")
# mlp: the dropout MLP on the labeled features alone; propagation: label spreading over the k-NN graph of every
# pool image (ml.simulate.propagation), the semi-supervised learner TypiClust's and ProbCover's papers pair with
LEARNERS = ("mlp", "propagation")
MLP_ONLY_WARM = ("bald", "badge")  # they need the MLP's dropout samples or gradients
INT_OPTIONS = ("seeds", "max_labels", "acquire_per_round", "warm_pool", "coldstart_pool", "steps", "threads")


@dataclass
class FeatureALConfig:
    features: Path  # folder holding features.npz
    out: Path
    arms: list[str] = field(default_factory=lambda: list(DEFAULT_ARMS))
    seeds: int = 3
    acquire_per_round: int = 10
    max_labels: int = 200
    validation_size: int = 100
    warm_pool: int = 5000  # random pool subset scored by BALD/BADGE each round
    coldstart_pool: int = 20_000  # random pool subset TypiClust clusters and ProbCover's graph joins (time)
    mc_samples: int = 20
    hidden: int = 256
    steps: int = 300
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    threads: int = 1
    learner: str = "mlp"
    neighbours: int = 20  # propagation: k of the k-NN graph

    def __post_init__(self) -> None:
        self.features, self.out = Path(self.features), Path(self.out)
        if self.learner not in LEARNERS:
            raise ValueError(f"learner: {self.learner!r} is not one of {LEARNERS}")
        if self.learner == "propagation" and self.arms == list(DEFAULT_ARMS):
            self.arms = list(PROPAGATION_ARMS)
        for arm in self.arms:
            _, warm, _ = parse_arm(arm)
            if self.learner != "mlp" and warm in MLP_ONLY_WARM:
                raise ValueError(f"arms: {arm!r} needs the mlp learner ({warm} scores with its dropout net)")
        if self.seeds < 1 or self.acquire_per_round < 1 or self.max_labels < self.acquire_per_round:
            raise ValueError("seeds: need ≥ 1 seed and a budget of at least one round")


def parse_arm(arm: str) -> tuple[str, str | None, int]:
    """ "typiclust+bald:50" → ("typiclust", "bald", 50); "random" → ("random", None, 0)."""
    cold, _, rest = arm.partition("+")
    warm, _, switch = rest.partition(":")
    if cold not in COLD or (rest and (warm not in WARM or not switch.isdigit())):
        raise ValueError(f"arms: {arm!r} is not cold[+warm:N] with cold in {COLD} and warm in {WARM}")
    return cold, (warm or None), int(switch or 0)


class Classifier:
    """Dropout → dense → ReLU → dropout → dense; MC dropout for BALD, last-layer gradients for BADGE."""

    def __init__(self, config: FeatureALConfig, dim: int, seed: int) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        self.torch, self.config, self.seed = torch, config, seed
        self.body = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, config.hidden), nn.ReLU(), nn.Dropout(0.5))
        self.out = nn.Linear(config.hidden, 10)

    def fit(self, x: np.ndarray, y: np.ndarray) -> None:
        torch = self.torch
        params = [*self.body.parameters(), *self.out.parameters()]
        opt = torch.optim.AdamW(params, lr=self.config.learning_rate, weight_decay=self.config.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        torch.manual_seed(self.seed + 1)
        self.body.train()
        for _ in range(self.config.steps):
            loss = torch.nn.functional.cross_entropy(self.out(self.body(xt)), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def probs(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            self.body.eval()
            return self.torch.softmax(self.out(self.body(self.torch.from_numpy(x))), 1).numpy()

    def mc_probs(self, x: np.ndarray, samples: int, seed: int) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            torch.manual_seed(seed)
            self.body.train()
            xt = torch.from_numpy(x)
            draws = [torch.softmax(self.out(self.body(xt)), 1) for _ in range(samples)]
            self.body.eval()
        return torch.stack(draws, 1).numpy().astype(np.float64)

    def gradient_embeddings(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            self.body.eval()
            hidden = self.body(torch.from_numpy(x))
            probs = torch.softmax(self.out(hidden), 1)
            residual = probs - torch.nn.functional.one_hot(probs.argmax(1), 10).float()
            return (residual[:, :, None] * hidden[:, None, :]).flatten(1).numpy()


def load_features(config: FeatureALConfig) -> dict[str, np.ndarray]:
    from ml.simulate.ssl import load_features as load

    raw = load(config.features)

    def normalise(x: np.ndarray) -> np.ndarray:
        x = x - mean
        return (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)).astype(np.float32)

    mean = raw["x_train"].mean(axis=0)
    return {
        "x": normalise(raw["x_train"]),
        "y": raw["y_train"].astype(np.int64),
        "x_test": normalise(raw["x_test"]),
        "y_test": raw["y_test"].astype(np.int64),
    }


class _ColdStart:
    """Per-seed cached pieces of the cold-start rules (ProbCover's graph is the expensive part)."""

    def __init__(self, config: FeatureALConfig, x: np.ndarray, pool: np.ndarray, seed: int) -> None:
        self.config, self.x, self.seed = config, x, seed
        size = min(config.coldstart_pool, len(pool))
        self.sub = np.sort(np.random.default_rng([seed, 5]).choice(pool, size, replace=False))
        self._graph = None

    def typiclust(self, labeled: np.ndarray, k: int) -> np.ndarray:
        from ml.simulate.coldstart import typiclust

        # labeled points join the clustering (they count as covering their cluster), picks come from the subset
        points = np.concatenate([self.sub, np.setdiff1d(labeled, self.sub)])
        picks = typiclust(self.x[points], k, np.flatnonzero(np.isin(points, labeled)), seed=self.seed)
        return points[picks]

    def probcover(self, labeled: np.ndarray, k: int) -> np.ndarray:
        from ml.simulate.coldstart import ball_graph, covered_by, probcover, purity_radius

        if self._graph is None:
            self.delta = purity_radius(self.x[self.sub], 10, seed=self.seed)
            self._graph = ball_graph(self.x[self.sub], self.delta)
        covered = covered_by(self.x[self.sub], self.x[labeled], self.delta)
        taken = np.flatnonzero(np.isin(self.sub, labeled))
        picks = probcover(self.x[self.sub], k, taken, delta=self.delta, graph=self._graph, covered=covered)
        return self.sub[picks]


class MLPLearner:
    """The dropout MLP trained from scratch on the labeled features alone."""

    def __init__(self, config: FeatureALConfig, data: dict, seed: int) -> None:
        self.data = data
        self.net = Classifier(config, data["x"].shape[1], seed)

    def fit(self, labeled: np.ndarray) -> None:
        self.net.fit(self.data["x"][labeled], self.data["y"][labeled])

    def pool_probs(self, indices: np.ndarray) -> np.ndarray:
        return self.net.probs(self.data["x"][indices])

    def test_probs(self) -> np.ndarray:
        return self.net.probs(self.data["x_test"])


class PropagationLearner:
    """Label spreading over the k-NN graph of every pool image; test images vote through their neighbours."""

    def __init__(self, config: FeatureALConfig, data: dict, seed: int) -> None:
        self.data, self.distribution = data, None

    def fit(self, labeled: np.ndarray) -> None:
        from ml.simulate.propagation import propagate

        self.distribution = propagate(self.data["affinity"], labeled, self.data["y"][labeled], 10)

    def pool_probs(self, indices: np.ndarray) -> np.ndarray:
        return self.distribution[indices]

    def test_probs(self) -> np.ndarray:
        from ml.simulate.propagation import classify

        return classify(self.data["test_graph"], self.distribution)


def with_graphs(config: FeatureALConfig, data: dict, log: Callable[[str], None]) -> dict:
    """Adds the pool's normalised affinity and the test images' pool neighbours (built once per run)."""
    from ml.simulate.propagation import affinity_matrix, knn

    started = time.perf_counter()
    pool_graph = knn(data["x"], data["x"], config.neighbours, exclude_self=True)
    test_graph = knn(data["x_test"], data["x"], config.neighbours, exclude_self=False)
    log(f"k-NN graphs (k={config.neighbours}) built in {time.perf_counter() - started:.1f} s")
    return {**data, "affinity": affinity_matrix(pool_graph), "test_graph": test_graph}


def _warm_picks(
    config: FeatureALConfig,
    learner: MLPLearner | PropagationLearner,
    warm: str,
    candidates: np.ndarray,
    k: int,
    round_seed: int,
) -> np.ndarray:
    from ml import scoring

    if warm == "margin":
        return candidates[np.argsort(scoring.margin(learner.pool_probs(candidates)), kind="stable")[:k]]
    x = learner.data["x"][candidates]
    if warm == "bald":
        probs = learner.net.mc_probs(x, config.mc_samples, round_seed)
        return candidates[np.argsort(-scoring.mutual_information(probs), kind="stable")[:k]]
    return candidates[scoring.kmeans_pp_seeding(learner.net.gradient_embeddings(x), k, seed=round_seed)]


def run_arm(config: FeatureALConfig, data: dict, arm: str, seed: int, log: Callable[[str], None]) -> Trace:
    from ml import scoring

    cold, warm, switch = parse_arm(arm)
    make_learner = PropagationLearner if config.learner == "propagation" else MLPLearner
    x, y = data["x"], data["y"]
    rng = np.random.default_rng([seed, 17])
    validation = np.sort(rng.choice(len(y), config.validation_size, replace=False))
    pool = np.setdiff1d(np.arange(len(y)), validation)
    starter = _ColdStart(config, x, pool, seed)
    labeled = np.zeros(0, dtype=np.int64)
    trace = Trace(arm, seed)
    learner = None  # last round's model: what the uncertainty rules score with
    while len(labeled) < config.max_labels:
        started = time.perf_counter()
        k = min(config.acquire_per_round, config.max_labels - len(labeled))
        unlabeled = np.setdiff1d(pool, labeled)
        round_seed = seed * 100_003 + len(labeled)
        if learner is None or warm is None or len(labeled) < switch or len(np.unique(y[labeled])) < 2:
            if cold == "random":
                new = unlabeled[np.argsort(scoring.stable_random(unlabeled, round_seed), kind="stable")[:k]]
            else:
                new = getattr(starter, cold)(labeled, k)
        else:
            candidates = np.sort(
                np.random.default_rng([seed, len(labeled)]).choice(
                    unlabeled, min(config.warm_pool, len(unlabeled)), replace=False
                )
            )
            new = _warm_picks(config, learner, warm, candidates, k, round_seed)
        labeled = np.concatenate([labeled, new])
        learner = make_learner(config, data, seed * 1000 + len(labeled))
        learner.fit(labeled)
        trace.labels.append(len(labeled))
        trace.test_error.append(float(np.mean(learner.test_probs().argmax(1) != data["y_test"])))
        trace.val_error.append(float(np.mean(learner.pool_probs(validation).argmax(1) != y[validation])))
        trace.seconds.append(time.perf_counter() - started)
        log(
            f"[{time.strftime('%H:%M:%S')}] {arm} seed {seed}: {len(labeled)} labels -> test error "
            f"{trace.test_error[-1]:.4f} (val {trace.val_error[-1]:.3f}, {trace.seconds[-1]:.1f} s)"
        )
    trace.finished = True
    return trace


def _trace_path(config: FeatureALConfig, arm: str, seed: int) -> Path:
    return config.out / "runs" / f"{arm.replace(':', '@')}-s{seed}.json"


def write_summary(config: FeatureALConfig) -> dict:
    from ml.simulate.ssl import describe_features

    traces = []
    for seed in range(config.seeds):
        for arm in config.arms:
            path = _trace_path(config, arm, seed)
            traces.append(Trace(**json.loads(path.read_text())) if path.is_file() else Trace(arm, seed))
    learner = (
        f"MLP {config.hidden} hidden with dropout, {config.steps} full-batch AdamW steps (lr "
        f"{config.learning_rate}, wd {config.weight_decay}) from scratch each round"
        if config.learner == "mlp"
        else f"label propagation over the {config.neighbours}-NN cosine graph of the pool (alpha 0.99, "
        "affinity cos^3; test images vote through their pool neighbours) from scratch each round"
    )
    recipe = (
        f"{describe_features(config.features)}, {learner}; 0 initial "
        f"labels, +{config.acquire_per_round} per round up to {config.max_labels}; BALD/BADGE score "
        f"{config.warm_pool} random pool images, T={config.mc_samples}; margin the same pool; 10,000 test images"
    )
    title = f"Active learning on self-supervised features ({config.seeds} seeds)"
    checkpoints = tuple(n for n in (30, 60, 100, 150, 200, 300) if n <= config.max_labels)
    section = efficiency_section(
        traces, title=title, budget=config.max_labels, paper=False, recipe=recipe, checkpoints=checkpoints
    )
    section["targets_of_issue"] = "≤ 60 labels to 10% error and ≤ 150 to 5% (mean of 3 seeds)"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings.update(dataset="mnist", protocol="ssl-features", max_labels=config.max_labels)
    document = report_document(traces, settings, section)
    write_json_atomic(config.out / "curves.json", document)
    (config.out / "table.md").write_text(f"{title}\n\n{recipe}\n\n{markdown_table(section)}\n")
    return document


def run_feature_al(config: FeatureALConfig, log: Callable[[str], None] = print) -> dict:
    import torch

    torch.set_num_threads(config.threads)
    data = load_features(config)
    if config.learner == "propagation":
        data = with_graphs(config, data, log)
    for arm in config.arms:  # arm by arm: an interrupted job has every seed of the first arms
        for seed in range(config.seeds):
            path = _trace_path(config, arm, seed)
            if path.is_file():
                continue
            trace = run_arm(config, data, arm, seed, log)
            write_json_atomic(path, asdict(trace))
            write_summary(config)
    return write_summary(config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ml.simulate.features_al", description=__doc__)
    p.add_argument("--features", type=Path, required=True, help="folder with features.npz (ml.simulate.ssl)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--arms", default="", help=f"default: {','.join(DEFAULT_ARMS)} (propagation: margin arms)")
    for name in (*INT_OPTIONS, "neighbours"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(FeatureALConfig, name))
    p.add_argument("--learner", choices=LEARNERS, default=FeatureALConfig.learner)
    args = p.parse_args(argv)
    try:
        config = FeatureALConfig(
            features=args.features,
            out=args.out,
            arms=[a.strip() for a in args.arms.split(",") if a.strip()] or list(DEFAULT_ARMS),
            learner=args.learner,
            **{k: getattr(args, k) for k in (*INT_OPTIONS, "neighbours")},
        )
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    run_feature_al(config, log=lambda line: print(line, flush=True))
    print((config.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
