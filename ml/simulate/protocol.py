"""Gal, Islam & Ghahramani (ICML 2017) on MNIST as the paper ran it, resumable round by round.

`paper`: re-initialise and retrain every round (50 epochs, batch 128, Adam, weight decay c/N on the dense layers,
c = 3.5 as in the authors' code), 20 balanced initial labels, 10 acquired per round from a random subset of 2,000
pool images, MC dropout with T = 20, up to 1,000 labels, the full 10,000-image test set, a 100-image validation set
held out of the pool. `continue`: the simulator's faster recipe (training continues across rounds, 5 epochs of
batch 32, at least 40 steps) on the same data, seeds, pool subsets and test set.

Every (strategy, seed) run keeps its state on disk after each round (`runs/<strategy>-s<seed>/state.json`, and
for `continue` the model and optimiser): rerunning the same command continues where it stopped and gives the
same numbers as an uninterrupted run. A `continue` run whose model file is gone (the repository keeps the
states, not the models) starts over. Rounds go breadth-first (the run with the fewest labels next), so an
interrupted job has every arm and seed at the same depth."""

from __future__ import annotations

import argparse
import json
import math
import os
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

VARIANTS = ("paper", "continue")
PROTOCOL_STRATEGIES = ("var_ratios", "bald", "entropy", "random")
RECIPES = {
    "paper": {"from_scratch": True, "epochs": 50, "batch_size": 128, "min_steps": 1, "weight_decay_c": 3.5},
    "continue": {
        "from_scratch": False,
        "epochs": 5,
        "batch_size": 32,
        "min_steps": 40,
        "weight_decay_c": 0.0,
    },
}


@dataclass
class ProtocolConfig:
    out: Path
    variant: str = "paper"
    strategies: list[str] = field(default_factory=lambda: list(PROTOCOL_STRATEGIES))
    seeds: int = 3
    initial_labels: int = 20
    acquire_per_round: int = 10
    max_labels: int = 1000
    pool_subset: int = 2000
    mc_samples: int = 20
    validation_size: int = 100
    test_size: int = 0  # 0 = all 10,000
    train_size: int = 0  # 0 = all 60,000 (tests use a few hundred)
    learning_rate: float = 1e-3
    epochs: float | None = None  # None = the variant's recipe
    min_steps: int | None = None  # None = the variant's recipe (tests shrink it)
    threads: int = 1

    def __post_init__(self) -> None:
        from ml.simulate.acquisition import ACQUISITIONS

        self.out = Path(self.out)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: must be one of {', '.join(VARIANTS)}")
        unknown = [s for s in self.strategies if s not in ACQUISITIONS or s in ("hybrid", "kcenter", "badge")]
        if unknown or not self.strategies:
            raise ValueError(f"strategies: unknown {unknown}; use random or an MC-dropout strategy")
        if self.seeds < 1 or self.initial_labels < 10 or self.max_labels <= self.initial_labels:
            raise ValueError("seeds: need ≥ 1 seed, ≥ 10 initial labels and max_labels above them")
        if self.acquire_per_round < 1 or self.pool_subset < self.acquire_per_round or self.mc_samples < 2:
            raise ValueError("pool_subset: must hold at least acquire_per_round; mc_samples ≥ 2")

    @property
    def recipe(self) -> dict:
        recipe = dict(RECIPES[self.variant])
        if self.epochs is not None:
            recipe["epochs"] = self.epochs
        if self.min_steps is not None:
            recipe["min_steps"] = self.min_steps
        return recipe


def _run_dir(config: ProtocolConfig, strategy: str, seed: int) -> Path:
    return config.out / "runs" / f"{strategy}-s{seed}"


def _split(y_train: np.ndarray, config: ProtocolConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(initial labels, validation) for a seed: both class-balanced, disjoint, and the same for every strategy."""
    from ml.simulate.data import balanced_seed_set

    rng = np.random.default_rng([seed, 17])
    validation = balanced_seed_set(y_train, config.validation_size, rng=rng)
    rest = np.setdiff1d(np.arange(len(y_train)), validation)
    initial = rest[balanced_seed_set(y_train[rest], config.initial_labels, rng=rng)]
    return np.sort(initial), np.sort(validation)


def load_state(config: ProtocolConfig, strategy: str, seed: int) -> dict | None:
    path = _run_dir(config, strategy, seed) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_traces(config: ProtocolConfig) -> list[Trace]:
    traces = []
    for seed in range(config.seeds):
        for strategy in config.strategies:
            state = load_state(config, strategy, seed)
            traces.append(Trace(**state["trace"]) if state else Trace(strategy, seed))
    return traces


class _Data:
    def __init__(self, config: ProtocolConfig) -> None:
        from ml.simulate.data import replay_data

        data = replay_data("mnist", test_size=config.test_size)
        n = config.train_size or len(data.y_train)
        self.x, self.y = data.x_train[:n], data.y_train[:n]
        self.x_test, self.y_test = data.x_test, data.y_test


def _optimizer(net, config: ProtocolConfig, n_labels: int):
    """Adam; the authors' weight decay is Keras l2(c / N) on both dense layers, i.e. a gradient term 2c/N·w."""
    import torch

    decay = 2 * config.recipe["weight_decay_c"] / n_labels
    dense = [*net.dense.parameters(), *net.out.parameters()]
    conv = list(net.features.parameters())
    groups = [{"params": conv, "weight_decay": 0.0}, {"params": dense, "weight_decay": decay}]
    return torch.optim.Adam(groups, lr=config.learning_rate)


def _fit(config: ProtocolConfig, data: _Data, labeled: np.ndarray, seed: int, folder: Path, state: dict):
    """Train for this round; `continue` restores last round's model and optimiser from disk."""
    import torch

    from ml.simulate import model as cnn

    recipe, n = config.recipe, len(labeled)
    round_no = len(state["trace"]["labels"])
    train_seed = seed * 100_003 + round_no * 31
    steps = max(recipe["min_steps"], recipe["epochs"] * math.ceil(n / recipe["batch_size"]))
    net, optimizer = cnn.new_model(10, seed * 1000 + (round_no if recipe["from_scratch"] else 0)), None
    checkpoint = state.get("checkpoint")
    if not recipe["from_scratch"] and checkpoint:
        saved = torch.load(folder / checkpoint, weights_only=True)
        net.load_state_dict(saved["model"])
        optimizer = _optimizer(net, config, n)
        optimizer.load_state_dict(saved["optimizer"])
    else:
        optimizer = _optimizer(net, config, n)
        if not recipe["from_scratch"]:
            steps *= 3  # the simulator's first round trains longer, from a fresh model
    for group in optimizer.param_groups[1:]:
        group["weight_decay"] = 2 * recipe["weight_decay_c"] / n
    cnn.train_steps(
        net,
        data.x[labeled],
        data.y[labeled],
        steps=int(steps),
        batch_size=recipe["batch_size"],
        learning_rate=config.learning_rate,
        seed=train_seed,
        optimizer=optimizer,
    )
    return net, optimizer


def run_round(config: ProtocolConfig, data: _Data, strategy: str, seed: int) -> Trace:
    """One round of one run: fit on the current labels, evaluate, acquire, then persist the new state."""
    import torch

    from ml.simulate import model as cnn
    from ml.simulate.acquisition import ACQUISITIONS, PoolView

    folder = _run_dir(config, strategy, seed)
    initial, validation = _split(data.y, config, seed)
    state = load_state(config, strategy, seed)
    if state and state.get("checkpoint") and not (folder / state["checkpoint"]).is_file():
        # `continue` needs last round's model, which is not kept in the repository (a fresh clone holds the
        # round states only): the run starts over rather than continue from a different model.
        state = None
    state = state or {
        "labeled": initial.tolist(),
        "trace": asdict(Trace(strategy, seed)),
        "checkpoint": None,
    }
    trace = Trace(**state["trace"])
    if trace.finished:
        return trace
    started = time.perf_counter()
    labeled = np.asarray(state["labeled"], dtype=np.int64)
    net, optimizer = _fit(config, data, labeled, seed, folder, state)
    test_pred = cnn.predict_probs(net, data.x_test).argmax(axis=1)
    val_pred = cnn.predict_probs(net, data.x[validation]).argmax(axis=1)
    trace.labels.append(len(labeled))
    trace.test_error.append(float(np.mean(test_pred != data.y_test)))
    trace.val_error.append(float(np.mean(val_pred != data.y[validation])))
    if len(labeled) >= config.max_labels:
        trace.finished = True
    else:
        pool = np.setdiff1d(np.arange(len(data.y)), np.concatenate([labeled, validation]))
        rng = np.random.default_rng([seed, len(labeled)])
        candidates = np.sort(rng.choice(pool, min(config.pool_subset, len(pool)), replace=False))
        k = min(config.acquire_per_round, config.max_labels - len(labeled))
        round_seed = seed * 100_003 + len(labeled)
        view = PoolView(candidates=candidates, seed=round_seed)
        if strategy != "random":
            view.mc_probs = cnn.mc_dropout_probs(net, data.x[candidates], config.mc_samples, round_seed)
        labeled = np.concatenate([labeled, candidates[ACQUISITIONS[strategy](view, k)]])
    trace.seconds.append(time.perf_counter() - started)
    previous = state.get("checkpoint")
    checkpoint = None
    if not config.recipe["from_scratch"] and not trace.finished:
        checkpoint = f"model-{len(trace.labels)}.pt"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"model": net.state_dict(), "optimizer": optimizer.state_dict()}, folder / (checkpoint + ".tmp")
        )
        os.replace(folder / (checkpoint + ".tmp"), folder / checkpoint)
    write_json_atomic(
        folder / "state.json", {"labeled": labeled.tolist(), "trace": asdict(trace), "checkpoint": checkpoint}
    )
    if previous and previous != checkpoint:
        (folder / previous).unlink(missing_ok=True)
    return trace


def write_summary(config: ProtocolConfig) -> dict:
    traces = load_traces(config)
    recipe = config.recipe
    text = (
        f"{config.variant}: {'retrained from scratch' if recipe['from_scratch'] else 'training continued'} each "
        f"round, {recipe['epochs']} epochs of batch {recipe['batch_size']}, Adam lr {config.learning_rate}, "
        f"weight decay c={recipe['weight_decay_c']}/N; {config.initial_labels} balanced initial labels, "
        f"+{config.acquire_per_round} per round from {config.pool_subset} random pool images, T={config.mc_samples}, "
        f"up to {config.max_labels} labels, {config.test_size or 10_000} test images"
    )
    title = f"Gal et al. 2017 protocol, {config.variant} variant ({config.seeds} seeds)"
    checkpoints = tuple(n for n in (20, 40, 60, 100, 150, 300, 1000) if n <= config.max_labels)
    section = efficiency_section(
        traces, title=title, budget=config.max_labels, paper=True, recipe=text, checkpoints=checkpoints
    )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    settings.update(dataset="mnist", protocol=f"gal2017-{config.variant}", **recipe)
    document = report_document(traces, settings, section)
    write_json_atomic(config.out / "curves.json", document)
    (config.out / "table.md").write_text(f"{title}\n\n{text}\n\n{markdown_table(section)}\n")
    return document


def run_protocol(
    config: ProtocolConfig, *, log: Callable[[str], None] = print, max_rounds: int | None = None
) -> list[Trace]:
    """Runs rounds breadth-first until every run is finished (or `max_rounds` rounds were done in this call)."""
    import torch

    torch.set_num_threads(config.threads)
    data = _Data(config)
    done = 0
    while max_rounds is None or done < max_rounds:
        traces = [t for t in load_traces(config) if not t.finished]
        if not traces:
            break
        nxt = min(traces, key=lambda t: (len(t.labels), t.seed, config.strategies.index(t.strategy)))
        trace = run_round(config, data, nxt.strategy, nxt.seed)
        done += 1
        write_summary(config)
        log(
            f"[{time.strftime('%H:%M:%S')}] {config.variant} {trace.strategy} seed {trace.seed}: "
            f"{trace.labels[-1]} labels -> test error {trace.test_error[-1]:.4f} "
            f"(val {trace.val_error[-1]:.3f}, {trace.seconds[-1]:.1f} s)"
        )
    write_summary(config)
    return load_traces(config)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ml.simulate.protocol", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="results folder; rerun the same command to resume")
    p.add_argument("--variant", choices=VARIANTS, default="paper")
    p.add_argument("--strategies", default=",".join(PROTOCOL_STRATEGIES))
    for name in ("seeds", "max_labels", "pool_subset", "mc_samples", "test_size", "train_size", "threads"):
        default = getattr(ProtocolConfig, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    p.add_argument("--epochs", type=float, default=None, help="override the variant's epochs per round")
    p.add_argument("--max-rounds", type=int, default=None, help="stop after this many rounds (resume later)")
    args = p.parse_args(argv)
    try:
        config = ProtocolConfig(
            out=args.out,
            variant=args.variant,
            strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
            **{
                k: getattr(args, k) for k in ("seeds", "max_labels", "pool_subset", "mc_samples", "test_size")
            },
            train_size=args.train_size,
            threads=args.threads,
            epochs=args.epochs,
        )
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    run_protocol(config, log=lambda line: print(line, flush=True), max_rounds=args.max_rounds)
    print((config.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
