"""`hardcase simulate`: replay a labeled dataset as active learning and print labels-to-target per strategy."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from ml.simulate.config import DATASETS, PROTOCOLS, STRATEGY_NAMES, SimulationConfig


def build_parser(defaults: SimulationConfig | None = None) -> argparse.ArgumentParser:
    d = defaults or SimulationConfig()
    helps = {f.name: f.metadata.get("help", "") for f in fields(SimulationConfig)}
    p = argparse.ArgumentParser(prog="hardcase simulate", description=__doc__)
    p.add_argument("--dataset", choices=DATASETS, default=d.dataset, help=helps["dataset"])
    p.add_argument("--protocol", choices=PROTOCOLS, default=d.protocol, help=helps["protocol"])
    p.add_argument(
        "--strategies",
        default=",".join(d.strategies),
        help=f"comma-separated, any of {', '.join(STRATEGY_NAMES)}",
    )
    for name in (
        "seeds",
        "max_labels",
        "initial_labels",
        "acquire_per_round",
        "pool_size",
        "mc_samples",
        "ensemble_size",
        "min_steps",
        "batch_size",
        "test_size",
        "positive_digit",
        "threads",
    ):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name), help=helps[name])
    for name in ("epochs", "learning_rate", "threshold", "min_positive_share"):
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(d, name), help=helps[name])
    p.add_argument("--hybrid-members", choices=("mc", "ensemble", "auto"), default=d.hybrid_members)
    p.add_argument("--from-scratch", action="store_true", default=d.from_scratch, help=helps["from_scratch"])
    p.add_argument("--out", type=Path, default=d.out, help=helps["out"])
    p.add_argument("--quiet", action="store_true", help="print only the final table")
    return p


def is_roadwork(argv: list[str] | None) -> bool:
    """`--dataset roadwork` goes to ml.simulate.roadwork (its own image model, options and report)."""
    argv = sys.argv[1:] if argv is None else argv
    return "--dataset=roadwork" in argv or any(
        a == "--dataset" and b == "roadwork" for a, b in zip(argv, argv[1:], strict=False)
    )


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    values = {f.name: getattr(args, f.name) for f in fields(SimulationConfig) if hasattr(args, f.name)}
    values["strategies"] = [s.strip() for s in args.strategies.split(",") if s.strip()]
    return SimulationConfig(**values)


def main(argv: list[str] | None = None, defaults: SimulationConfig | None = None) -> int:
    if is_roadwork(argv):  # the product's own task has its own image model and options
        from ml.simulate.roadwork import main as roadwork_main

        return roadwork_main(argv)
    args = build_parser(defaults).parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    from ml.simulate.loop import run_simulation
    from ml.simulate.report import format_table, write_report

    started = time.perf_counter()
    log = (lambda _: None) if args.quiet else print
    curves = run_simulation(config, log=log, on_curve=lambda done: write_report(done, config))
    document = write_report(curves, config)
    print(
        f"\n{config.dataset} / {config.protocol}: labels needed to reach each target (mean over {config.seeds} "
        f"seed(s); paper = Gal et al. 2017, 10% / 5% error)"
    )
    print(format_table(document["table"], config))
    print(f"wrote {config.out}/curves.json, curves.png, table.txt in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
