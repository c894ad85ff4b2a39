"""The product's own task as a replay: rare roadwork among street photos, the queue ordering items from the
demo's simulated cascade scores (plus the model trained so far), MCC on a held-out test set.

Image model: frozen hand-made features (colour histograms, where saturated orange/red sits in the frame,
gradient-orientation and edge-density texture; no pretrained network, nothing to download) and logistic
regression with balanced class weights. One fit is milliseconds, so many seeds run on one CPU thread.

The arms differ only in which items they reveal (same split, seed set, features and model recipe per seed):
`random`, `uncertainty`, `disagreement` and `hybrid` all rank the candidates through `ml.scoring.rank_matrix`,
the queue's own code, over the cascade's three scores and (with `student_in_queue`) the current model's score,
as the queue does after a promotion; the ranked arms also keep the queue's quota of likely positives
(`min_positive_share`, the queue's default 0.2). Random is plain random sampling.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ml import scoring
from ml.evaluation import mcc
from ml.sample_data import roadwork_pool, sample_data_dir, simulated_cascade
from ml.simulate.efficiency import runs_by_strategy, seed_band

ARMS = ("random", "uncertainty", "disagreement", "hybrid")
CASCADE = ("yolo-cones", "vit-roadwork", "qwen2.5-vl")
FINAL_ROUNDS = 3  # random's "final MCC" is the mean of its last rounds: one round's MCC jumps with one label


@dataclass
class RoadworkConfig:
    """One roadwork replay; every field has a default that runs in seconds on one CPU thread."""

    strategies: list[str] = field(default_factory=lambda: list(ARMS), metadata={"help": ", ".join(ARMS)})
    seeds: int = field(default=20, metadata={"help": "independent splits, cascade draws and seed sets"})
    positive_share: float = field(default=0.10, metadata={"help": "share of positives kept in the pool"})
    test_fraction: float = field(default=0.3, metadata={"help": "negatives held out for the test set"})
    initial_labels: int = field(default=4, metadata={"help": "seed set (at least one positive)"})
    acquire_per_round: int = field(default=2, metadata={"help": "labels revealed per round"})
    max_labels: int = field(default=40, metadata={"help": "label budget (random's final MCC is read there)"})
    student_in_queue: bool = field(
        default=True, metadata={"help": "the trained model scores the pool beside the cascade"}
    )
    threshold: float = field(default=0.5, metadata={"help": "production threshold of the ranking"})
    min_positive_share: float = field(
        default=0.2,
        metadata={"help": "ranked arms serve at least this share of likely positives (the queue's)"},
    )
    regularization: float = field(default=1.0, metadata={"help": "logistic regression C"})
    image_size: int = field(default=96, metadata={"help": "images are resized to this square for features"})
    limit: int = field(default=0, metadata={"help": "at most this many photos per class (0 = all; tests)"})
    project: str = field(default="roadwork", metadata={"help": "project whose overview shows the result"})
    out: Path = field(default=Path("bench/out/simulate-roadwork"), metadata={"help": "report folder"})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        unknown = [s for s in self.strategies if s not in ARMS]
        if unknown or "random" not in self.strategies:
            raise ValueError(f"strategies: need random, and only {', '.join(ARMS)} (unknown {unknown})")
        if self.seeds < 1 or self.initial_labels < 2 or self.acquire_per_round < 1:
            raise ValueError("seeds: seeds ≥ 1, initial_labels ≥ 2, acquire_per_round ≥ 1")
        if self.max_labels <= self.initial_labels:
            raise ValueError("max_labels: must exceed initial_labels")
        if not 0.0 < self.positive_share < 1.0 or not 0.0 < self.test_fraction < 1.0:
            raise ValueError("positive_share: and test_fraction must be in (0, 1)")
        if not 0.0 <= self.min_positive_share <= 1.0:
            raise ValueError("min_positive_share: must be in [0, 1]")
        if not 0.0 < self.threshold < 1.0 or self.regularization <= 0 or self.image_size < 16:
            raise ValueError("threshold: in (0, 1); regularization > 0; image_size ≥ 16")


# --- data -----------------------------------------------------------------------------------------------------


@dataclass
class RoadworkData:
    features: np.ndarray  # (n, d), standardised over all photos (no labels used)
    labels: np.ndarray  # 1 = roadwork
    sources: list[str]
    entries: list[dict]  # roadwork_pool() rows (boxes, is_night) the simulated cascade reads


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    delta = np.where(high > low, high - low, 1.0)
    hue = np.where(
        high == r, (g - b) / delta % 6, np.where(high == g, (b - r) / delta + 2, (r - g) / delta + 4)
    )
    hue = np.where(high > low, hue / 6.0, 0.0)
    return np.stack([hue, np.where(high > 0, (high - low) / np.where(high > 0, high, 1), 0.0), high], -1)


def _grid_means(mask: np.ndarray, cells: int) -> list[float]:
    h, w = mask.shape
    return [
        float(mask[i * h // cells : (i + 1) * h // cells, j * w // cells : (j + 1) * w // cells].mean())
        for i in range(cells)
        for j in range(cells)
    ]


def image_features(path: Path, size: int = 96) -> np.ndarray:
    """Colour (hue×saturation and value histograms, RGB moments per quadrant, orange/red share per cell of a
    3×3 grid: cones, drums and barriers are saturated orange or red) and texture (gradient orientations per
    quadrant, edge density per cell)."""
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (size * 2, size * 2))  # JPEG decodes at reduced scale: much faster
        rgb = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float64) / 255.0
    hsv = _rgb_to_hsv(rgb)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    joint = np.histogram2d(hue.ravel(), sat.ravel(), bins=(12, 2), range=((0, 1), (0, 1)))[0].ravel()
    value = np.histogram(val, bins=8, range=(0, 1))[0]
    warm = ((hue < 0.11) | (hue > 0.95)) & (sat > 0.5) & (val > 0.35)
    quadrants = [rgb[: size // 2, : size // 2], rgb[: size // 2, size // 2 :], rgb[size // 2 :, : size // 2]]
    quadrants.append(rgb[size // 2 :, size // 2 :])
    moments = [v for q in quadrants for v in (*q.mean(axis=(0, 1)), *q.std(axis=(0, 1)))]
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.gradient(gray)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    orientations = []
    for rows in (slice(0, size // 2), slice(size // 2, size)):
        for cols in (slice(0, size // 2), slice(size // 2, size)):
            hist = np.histogram(angle[rows, cols], bins=8, range=(0, np.pi), weights=magnitude[rows, cols])[0]
            orientations.extend(hist / (hist.sum() + 1e-9))
    edges = magnitude > 0.1
    pixels = float(size * size)
    return np.concatenate(
        [joint / pixels, value / pixels, _grid_means(warm, 3), moments, orientations, _grid_means(edges, 3)]
    )


def _limited(pool: list[dict], limit: int, rng: np.random.Generator) -> list[dict]:
    """At most `limit` photos per class, keeping every source represented (VTTI night frames, non-road)."""
    if not limit:
        return pool
    chosen = []
    for label in (0, 1):
        members = [p for p in pool if p["label"] == label]
        keep = {id(p) for p in members if p["source"] != "tracon"}
        order = [members[i] for i in rng.permutation(len(members))]
        picked = [p for p in order if id(p) in keep][: max(1, limit // 4)]
        picked += [p for p in order if id(p) not in keep][: limit - len(picked)]
        chosen += picked
    return chosen


def load_roadwork(config: RoadworkConfig, data_dir: Path | None = None) -> RoadworkData:
    pool, _ = roadwork_pool(data_dir or sample_data_dir())
    pool = _limited(pool, config.limit, np.random.default_rng(12345))
    raw = np.stack([image_features(p["image"], config.image_size) for p in pool])
    spread = raw.std(axis=0)
    features = (raw - raw.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    labels = np.array([p["label"] for p in pool], dtype=np.int64)
    return RoadworkData(features, labels, [p["source"] for p in pool], pool)


def cascade_scores(data: RoadworkData, seed: int) -> np.ndarray:
    """(n, 3) P(roadwork) from the demo's three simulated models, a fresh draw per seed."""
    rng = np.random.default_rng(10_000 + seed)
    rows = [simulated_cascade(p["label"], p["boxes"], p["is_night"], rng) for p in data.entries]
    return np.array([[m["score"] for m in row] for row in rows], dtype=np.float64)


def rare_split(labels: np.ndarray, config: RoadworkConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool, test) indices: `test_fraction` of the negatives plus as many positives form a balanced test set
    (a stable MCC from few photos); the pool keeps the other negatives and positives at `positive_share`."""
    rng = np.random.default_rng(seed)
    negatives = rng.permutation(np.flatnonzero(labels == 0))
    positives = rng.permutation(np.flatnonzero(labels == 1))
    n_test = max(2, round(config.test_fraction * len(negatives)))
    pool_negatives = negatives[n_test:]
    n_pool_pos = max(2, round(len(pool_negatives) * config.positive_share / (1 - config.positive_share)))
    test = np.concatenate([negatives[:n_test], positives[: min(n_test, len(positives) - n_pool_pos)]])
    pool = np.concatenate([pool_negatives, positives[len(positives) - n_pool_pos :]])
    return np.sort(pool), np.sort(test)


def seed_set(labels: np.ndarray, pool: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` pool items with the pool's share of positives, at least one of each class."""
    positives, negatives = pool[labels[pool] == 1], pool[labels[pool] == 0]
    n_pos = min(len(positives), max(1, round(size * len(positives) / len(pool))))
    return np.concatenate(
        [rng.choice(positives, n_pos, replace=False), rng.choice(negatives, size - n_pos, replace=False)]
    )


# --- the replay -----------------------------------------------------------------------------------------------


@dataclass
class RoadworkCurve:
    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)
    mcc: list[float] = field(default_factory=list)
    positives: list[int] = field(default_factory=list)


@dataclass
class Logistic:
    """L2-regularised logistic regression with balanced class weights (sklearn's objective with C), fitted by
    Newton's method in numpy: a few ms on ~100 features, and no sklearn import (seconds) per run."""

    weights: np.ndarray
    bias: float

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(x @ self.weights + self.bias, -30, 30)))


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, iterations: int = 30) -> Logistic:
    n, d = x.shape
    sample = np.where(y == 1, n / (2.0 * max(1, y.sum())), n / (2.0 * max(1, n - y.sum())))
    design = np.column_stack([x, np.ones(n)])
    penalty = np.full(d + 1, 1.0 / c)
    penalty[-1] = 0.0  # the intercept is not shrunk
    beta = np.zeros(d + 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (sample * (p - y)) + penalty * beta
        hessian = (design * (sample * p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Logistic(beta[:-1], float(beta[-1]))


def _fit_student(data: RoadworkData, labeled: np.ndarray, config: RoadworkConfig) -> Logistic:
    return fit_logistic(
        data.features[labeled], data.labels[labeled].astype(np.float64), config.regularization
    )


def _pick(
    strategy: str, matrix: np.ndarray, candidates: np.ndarray, k: int, seed: int, config: RoadworkConfig
) -> np.ndarray:
    """The queue's choice of k: rank_matrix's priority, and for the ranked arms the queue's quota of likely
    positives (random stays plain random sampling, the literature's baseline)."""
    names = [f"m{i}" for i in range(matrix.shape[1])]
    hardness = scoring.rank_matrix(
        matrix,
        names,
        threshold=config.threshold,
        strategy=scoring.StrategyConfig(name=strategy, seed=seed),
        item_keys=candidates,
    )
    if strategy == "random" or config.min_positive_share == 0:
        return np.argsort(-hardness.priority, kind="stable")[:k]
    return scoring.select_with_positive_quota(
        hardness.priority,
        hardness.mean_score,
        k,
        threshold=config.threshold,
        min_positive_share=config.min_positive_share,
    )


def run_arm(
    data: RoadworkData, cascade: np.ndarray, config: RoadworkConfig, strategy: str, seed: int
) -> RoadworkCurve:
    pool, test = rare_split(data.labels, config, seed)
    rng = np.random.default_rng(seed)
    labeled = seed_set(data.labels, pool, config.initial_labels, rng)  # the same seed set for every arm
    budget = min(config.max_labels, len(pool))
    curve = RoadworkCurve(strategy, seed)
    while True:
        student = _fit_student(data, labeled, config)
        predicted = student.predict_proba(data.features[test]) >= 0.5
        curve.labels.append(len(labeled))
        curve.mcc.append(mcc(data.labels[test], predicted))
        curve.positives.append(int(data.labels[labeled].sum()))
        if len(labeled) >= budget:
            return curve
        candidates = np.setdiff1d(pool, labeled)
        matrix = cascade[candidates]
        if config.student_in_queue:
            matrix = np.column_stack([matrix, student.predict_proba(data.features[candidates])])
        k = min(config.acquire_per_round, budget - len(labeled))
        picks = _pick(strategy, matrix, candidates, k, seed * 100_003 + len(labeled), config)
        labeled = np.concatenate([labeled, candidates[picks]])


def run_roadwork(
    config: RoadworkConfig, data: RoadworkData | None = None, log: Callable[[str], None] = print
) -> list[RoadworkCurve]:
    from threadpoolctl import threadpool_limits

    data = data or load_roadwork(config)
    curves = []
    with threadpool_limits(1):
        for seed in range(config.seeds):
            cascade = cascade_scores(data, seed)
            for strategy in config.strategies:
                curves.append(run_arm(data, cascade, config, strategy, seed))
            finals = {c.strategy: c.mcc[-1] for c in curves if c.seed == seed}
            log(
                f"seed {seed}: MCC at {curves[-1].labels[-1]} labels "
                + ", ".join(f"{s} {v:.3f}" for s, v in finals.items())
            )
    return curves


# --- the figures ----------------------------------------------------------------------------------------------


def labels_to_reach(labels: np.ndarray, values: np.ndarray, target: float) -> float | None:
    """Labels where the curve first reaches `target`, interpolated between rounds; None if it never does."""
    above = np.flatnonzero(values >= target)
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0 or values[i] == values[i - 1]:
        return float(labels[i])
    share = (target - values[i - 1]) / (values[i] - values[i - 1])
    return float(labels[i - 1] + share * (labels[i] - labels[i - 1]))


def _arm_ratios(
    arrays: dict[str, np.ndarray], labels: np.ndarray, seeds: np.ndarray
) -> dict[str, tuple[float, bool]]:
    """On the mean curves of the given seeds: each arm's labels to random's final MCC over the budget, and
    whether it got there (one that never does counts at the budget, a lower bound)."""
    random_mean = arrays["random"][seeds].mean(axis=0)
    target = float(random_mean[-FINAL_ROUNDS:].mean())
    out = {}
    for strategy, values in arrays.items():
        reached = labels_to_reach(labels, values[seeds].mean(axis=0), target)
        out[strategy] = ((reached if reached is not None else labels[-1]) / labels[-1], reached is not None)
    return out


def labels_to_random_final(curves: list[RoadworkCurve], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Per arm: labels until its mean curve over seeds first reaches random's final MCC (the mean of random's
    last FINAL_ROUNDS rounds: one round's MCC jumps with a single label), as a ratio of random's budget.
    Single seeds are too noisy for a first crossing (random 'reaches' its own final MCC at half the budget),
    so the ± is the std of that ratio over a bootstrap of the seeds."""
    length = min(len(c.mcc) for c in curves)
    labels = np.array(curves[0].labels[:length], dtype=np.float64)
    budget = int(labels[-1])
    strategies = list(dict.fromkeys(c.strategy for c in curves))
    by_seed = {s: sorted((c for c in curves if c.strategy == s), key=lambda c: c.seed) for s in strategies}
    arrays = {s: np.array([c.mcc[:length] for c in runs]) for s, runs in by_seed.items()}
    n_seeds = len(by_seed["random"])
    point = _arm_ratios(arrays, labels, np.arange(n_seeds))
    rng = np.random.default_rng(seed)
    boots = [_arm_ratios(arrays, labels, rng.integers(0, n_seeds, n_seeds)) for _ in range(n_boot)]
    rows = []
    for strategy in strategies:
        ratios = np.array([b[strategy][0] for b in boots])
        final = arrays[strategy][:, -1]
        ratio = point[strategy][0]
        rows.append(
            {
                "strategy": strategy,
                f"MCC at {budget}": f"{final.mean():.3f} ± {final.std():.3f}",
                "labels to random's final MCC": f"{ratio * budget:.1f}" + ("" if point[strategy][1] else "+"),
                "ratio vs random": f"{ratio:.2f} ± {ratios.std():.2f}",
                "bootstrap not reaching": f"{np.mean([not b[strategy][1] for b in boots]):.0%}",
                f"positives in {budget}": round(
                    float(np.mean([c.positives[length - 1] for c in by_seed[strategy]])), 1
                ),
                "_labels": round(ratio * budget, 1),
                "_labels_std": round(float(ratios.std()) * budget, 1),
                "_ratio": round(ratio, 3),
                "_ratio_std": round(float(ratios.std()), 3),
            }
        )
    return rows


def summarise(curves: list[RoadworkCurve]) -> dict[str, dict]:
    """Mean and std of MCC per label count and arm (the /simulate page's learning-curve chart)."""
    out = {}
    for strategy, runs in runs_by_strategy(curves).items():
        length, band = seed_band(runs, lambda c: c.mcc)
        out[strategy] = {
            **band,
            "positives_labeled": np.mean([c.positives[:length] for c in runs], axis=0).tolist(),
        }
    return out


def labels_saved(rows: list[dict], budget: int, target: float, strategy: str = "hybrid") -> dict | None:
    """What the project overview shows: labels the ranking saved against random to reach random's MCC."""
    row = next((r for r in rows if r["strategy"] == strategy), None)
    if row is None:
        return None
    return {
        "strategy": strategy,
        "budget": budget,
        "target_mcc": round(target, 3),
        "labels": row["_labels"],
        "labels_std": row["_labels_std"],
        "saved": round(budget - row["_labels"], 1),
        "ratio": row["_ratio"],
        "ratio_std": row["_ratio_std"],
    }


def format_table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if not k.startswith("_")]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def write_report(curves: list[RoadworkCurve], config: RoadworkConfig, data: RoadworkData) -> dict:
    """curves.json in the simulator's report shape (the /simulate page reads it) and table.md."""
    config.out.mkdir(parents=True, exist_ok=True)
    rows = labels_to_random_final(curves)
    budget = max(c.labels[-1] for c in curves)
    target = float(np.mean([np.mean(c.mcc[-FINAL_ROUNDS:]) for c in curves if c.strategy == "random"]))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    sources = {s: data.sources.count(s) for s in dict.fromkeys(data.sources)}
    document = {
        "config": {
            **settings,
            "dataset": "roadwork",
            "protocol": f"rare positives ({config.positive_share:.0%} of the pool)",
        },
        "photos": {"total": len(data.labels), "positives": int(data.labels.sum()), "sources": sources},
        "metric": "mcc",
        "targets": [round(target, 3)],
        "strategies": summarise(curves),
        "table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "labels_saved": labels_saved(rows, budget, target),
        "runs": [asdict(c) for c in curves],
    }
    (config.out / "curves.json").write_text(json.dumps(document, indent=1))
    (config.out / "table.md").write_text(format_table(rows) + "\n")
    return document


# --- command line ---------------------------------------------------------------------------------------------


def build_parser(defaults: RoadworkConfig | None = None) -> argparse.ArgumentParser:
    d = defaults or RoadworkConfig()
    helps = {f.name: f.metadata.get("help", "") for f in fields(RoadworkConfig)}
    p = argparse.ArgumentParser(prog="hardcase simulate --dataset roadwork", description=__doc__)
    p.add_argument("--dataset", choices=["roadwork"], default="roadwork")
    p.add_argument("--strategies", default=",".join(d.strategies), help=helps["strategies"])
    for name in ("seeds", "initial_labels", "acquire_per_round", "max_labels", "image_size", "limit"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name), help=helps[name])
    for name in ("positive_share", "test_fraction", "threshold", "min_positive_share", "regularization"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name), help=helps[name])
    p.add_argument("--cascade-only", action="store_true", help="rank on the cascade alone (no trained model)")
    p.add_argument("--project", default=d.project, help=helps["project"])
    p.add_argument("--out", type=Path, default=d.out, help=helps["out"])
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    return p


def main(argv: list[str] | None = None, defaults: RoadworkConfig | None = None) -> int:
    args = build_parser(defaults).parse_args(argv)
    values = {f.name: getattr(args, f.name) for f in fields(RoadworkConfig) if hasattr(args, f.name)}
    values["strategies"] = [s.strip() for s in args.strategies.split(",") if s.strip()]
    values["student_in_queue"] = not args.cascade_only
    try:
        config = RoadworkConfig(**values)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    started = time.perf_counter()
    data = load_roadwork(config)
    curves = run_roadwork(config, data, log=(lambda _: None) if args.quiet else print)
    document = write_report(curves, config, data)
    photos = document["photos"]
    print(
        f"\nroadwork: {photos['total']} photos ({photos['positives']} roadwork), {config.seeds} seeds, pool "
        f"{config.positive_share:.0%} positive; labels to reach random's final MCC "
        f"({document['targets'][0]:.3f} at {config.max_labels} labels)"
    )
    print(format_table(labels_to_random_final(curves)))
    print(f"wrote {config.out}/curves.json, table.md in {time.perf_counter() - started:.0f} s")
    return 0
