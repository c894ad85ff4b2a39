"""Web process start-up: seconds from spawning uvicorn to the first response, and its resident memory (RSS).

    python -m bench.startup --rounds 5
    python -m bench.startup --rounds 5 --before /tmp/hardcase-before     # an older checkout, paired

Each round starts one single-process server per checkout (interleaved, so both see the same load), waits for
`GET /healthz`, reads VmRSS from /proc, then serves `GET /login` (templates, static routes) and reads it again.
Prints the median per checkout and, with --before, the ratios. Targets (issue 12): <= 2 s, <= 120 MB idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import REPO_ROOT, add_environment_options, apply_environment_options, free_port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def one_start(root: Path, redis_url: str) -> dict[str, float]:
    """One cold start of the app from `root` on an empty SQLite data dir (migrated by the app itself)."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {
            **os.environ,
            "HARDCASE_DATA_DIR": tmp,
            "HARDCASE_DATABASE_URL": "",
            "HARDCASE_BROKER_URL": redis_url,
        }
        cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)]
        cmd += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=root)
        try:
            base = f"http://127.0.0.1:{port}"
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server from {root} exited with {proc.returncode}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.02)
            first = time.perf_counter() - started
            idle = rss_mb(proc.pid)
            httpx.get(f"{base}/login", timeout=30).raise_for_status()
            return {"first_response_s": first, "rss_idle_mb": idle, "rss_after_page_mb": rss_mb(proc.pid)}
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="another checkout to measure in the same rounds")
    add_environment_options(parser)
    args = parser.parse_args()
    apply_environment_options(args)
    roots = {"this": args.app_root or REPO_ROOT}
    if args.before:
        roots = {"before": args.before, **roots}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            runs[name].append(one_start(root, args.redis_url))
    keys = ("first_response_s", "rss_idle_mb", "rss_after_page_mb")
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    print(f"median of {args.rounds} cold starts each (interleaved)")
    print(f"{'checkout':<8} {'first response s':>17} {'RSS idle MB':>12} {'RSS after /login MB':>20}")
    for name, m in medians.items():
        print(f"{name:<8} {m[keys[0]]:>17.2f} {m[keys[1]]:>12.0f} {m[keys[2]]:>20.0f}")
    if args.before:
        ratios = [medians["this"][k] / medians["before"][k] for k in keys]
        print(f"{'ratio':<8} {ratios[0]:>17.2f} {ratios[1]:>12.2f} {ratios[2]:>20.2f}   (this / before)")


if __name__ == "__main__":
    main()
