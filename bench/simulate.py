"""Fuller active-learning replay (Gal et al. 2017 protocol on MNIST): same CLI as `hardcase simulate`, bigger
defaults. Example: python bench/simulate.py --seeds 3 --max-labels 1000 --test-size 0"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
