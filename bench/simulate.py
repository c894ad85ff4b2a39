"""Fuller active-learning replay (Gal et al. 2017 protocol on MNIST): same CLI as `hardcase simulate`, bigger
defaults. Example: python -m bench.simulate --seeds 3 --max-labels 1000 --test-size 0
(about 5-20 s per round and strategy on a 2-core CPU, more for ensemble strategies)."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, sys.path[0] is bench/, whose modules (bench/queue.py) would shadow the standard library.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from ml.simulate.cli import main  # noqa: E402
from ml.simulate.config import SimulationConfig  # noqa: E402

BENCH_DEFAULTS = SimulationConfig(
    strategies=["random", "var_ratios", "bald", "entropy", "hybrid"],
    seeds=2,
    max_labels=300,
    pool_size=1000,
    mc_samples=20,
    test_size=2000,
    out=Path("bench/out/simulate"),
)

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], defaults=BENCH_DEFAULTS))
