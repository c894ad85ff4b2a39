"""Queue benchmark (issues 3, 12): N pooled items on PostgreSQL, annotators against a real uvicorn server.

Measures the first ranking and the full re-rank of the project (threshold change), the lease (`queue/next`)
and the label submit p50/p95/p99 for one annotator alone and for 8 at once, items/s, and items served to two
annotators at once (must be 0).

    python -m bench.queue --items 1000000
    python -m bench.queue --items 1000000 --baseline-root /tmp/rank-before   # older code, same run

With `--baseline-root` (a checkout of older code, e.g. `git worktree add /tmp/rank-before <commit>` with a
symlinked .venv) every measurement runs for both checkouts against the same database, one after the other,
and the ratios are printed: re-ranks run in a subprocess importing the checkout's app/, API servers start
from the checkout. `--database` reuses a loaded database (kept afterwards) instead of a scratch one.

(Run it as a module: a script named queue.py would shadow the standard library's `queue`.)

Label Studio 1.23 on this kind of machine (50k tasks): next task 96 ms p50 alone; 0.5–0.7 s p50 and 1.6–2.9 s
p95 with 8 annotators; 5–12% of tasks served to two annotators at once. Targets (issue 12, 1M items): re-rank
≤ 5 s, lease p50 ≤ 5 ms alone and p95 ≤ 25 ms with 8 annotators, 0 doubles.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
import numpy as np
import psycopg

from app.auth.users import create_user
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.projects.schemas import ProjectCreate
from app.projects.service import create as create_project
from app.users.service import add_member
from bench.common import (
    REPO_ROOT,
    add_baseline_option,
    add_environment_options,
    api_server,
    apply_environment_options,
    pg_admin_url,
    scratch_database,
)

MODELS = ("yolo-cones", "vit-roadwork", "qwen2.5-vl")
PASSWORD = "bench-pass"
PROJECT = "roadwork"


@dataclass
class ClientStats:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    pair_ms: list[float] = field(default_factory=list)
    progress_ms: list[float] = field(default_factory=list)
    served: list[int] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


def _copy(conn: psycopg.Connection, table: str, columns: list[str], lines) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n, line in enumerate(lines, 1):
            buffer.write(line)
            if n % 100_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def bulk_load(url: str, project_id: int, n_items: int, seed: int = 0) -> float:
    """Items and three models' predictions straight into PostgreSQL with COPY (not through the API)."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    labels = rng.random(n_items) < 0.1  # roadwork is rare
    base = np.where(labels, 2.0, -2.0)
    scores = 1 / (1 + np.exp(-(base[:, None] + rng.normal(0, 1.6, (n_items, len(MODELS))))))
    phash = rng.integers(-(2**63), 2**63 - 1, n_items, dtype=np.int64)
    cameras = rng.integers(0, 500, n_items)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    offsets = rng.integers(0, 30 * 24 * 3600, n_items)
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(url) as conn:
        _copy(
            conn,
            "items",
            [
                "id",
                "project_id",
                "external_id",
                "phash",
                "captured_at",
                "camera_id",
                "is_night",
                "meta",
                "created_at",
            ],
            (
                f"{i + 1}\t{project_id}\tframe-{i}\t{phash[i]}\t{(t0 + timedelta(seconds=int(offsets[i]))).isoformat()}"
                f"\tcam-{cameras[i]}\t{'t' if offsets[i] % 86400 > 72000 else 'f'}\t{{}}\t{now}\n"
                for i in range(n_items)
            ),
        )
        _copy(
            conn,
            "predictions",
            ["item_id", "project_id", "model", "model_version", "score", "boxes", "extra", "received_at"],
            (
                f"{i + 1}\t{project_id}\t{model}\t1\t{scores[i, j]:.5f}\t[]\t{{}}\t{now}\n"
                for i in range(n_items)
                for j, model in enumerate(MODELS)
            ),
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('items', 'id'), %s)", (n_items,))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def setup_project(url: str, annotators: int) -> int:
    sessions = make_sessionmaker(make_engine(url))
    with session_scope(sessions) as session:
        project = create_project(db_session=session, project_in=ProjectCreate(name=PROJECT, threshold=0.5))
        for i in range(annotators):
            user = create_user(db_session=session, username=f"annotator{i}", password=PASSWORD)
            add_member(db_session=session, project_id=project.id, user_id=user.id)
        return project.id


# Runs in a subprocess importing the measured checkout's app/: prints seconds, items, created rows, peak RSS.
RERANK_SNIPPET = """
import json, resource, sys, time
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.projects.models import Project
from app.queue.ranking import rerank_project
url, project_id, threshold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sessions = make_sessionmaker(make_engine(url))
started = time.perf_counter()
with session_scope(sessions) as session:
    project = session.get(Project, project_id)
    project.threshold = threshold
    summary = rerank_project(db_session=session, project=project)
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "items": summary.items, "created": summary.rows_created, "rss_mb": rss}))
"""


# Leases through the service function alone (no HTTP, no auth): what the SQL costs. Each item is released
# again, so every lease sees the same pool. Prints the per-lease milliseconds.
LEASE_SNIPPET = """
import json, sys, time
from sqlalchemy import select
from app.auth.models import User
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.projects.models import Project
from app.queue.service import lease_next_item, release_items
url, project_id, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sessions = make_sessionmaker(make_engine(url))
times = []
with session_scope(sessions) as session:
    project = session.get(Project, project_id)
    user = session.scalar(select(User).where(User.username == "annotator0"))
    for _ in range(n):
        started = time.perf_counter()
        lease = lease_next_item(db_session=session, project=project, user=user, lease_minutes=5)
        times.append((time.perf_counter() - started) * 1000)
        release_items(db_session=session, project=project, user=user, item_ids=[lease.item_id])
print(json.dumps(times))
"""


def service_leases(url: str, project_id: int, n: int, root: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-c", LEASE_SNIPPET, url, str(project_id), str(n)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"leases in {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_rerank(url: str, project_id: int, threshold: float, root: Path) -> dict:
    """One re-rank (the first ranking when the project has no hardness rows) by the code in `root`, committed;
    the table is vacuumed and analysed afterwards, outside the timing, so each run starts from the same state."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-c", RERANK_SNIPPET, url, str(project_id), str(threshold)]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"re-rank in {root} failed:\n{done.stderr[-3000:]}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE hardness")
    return json.loads(done.stdout.strip().splitlines()[-1])


def reset_queue(url: str) -> None:
    """No ranking, no labels, no serving history: the state right after a bulk import."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE hardness, annotations, queue_cursors, queue_skips CASCADE")


def annotate(
    base_url: str,
    username: str,
    labels: int,
    start: threading.Barrier,
    seed: int,
    think_s: float = 0.0,
    progress_every_s: float | None = None,
) -> ClientStats:
    """One annotator labeling `labels` items. `progress_every_s`: also read /progress as the label page does,
    when it opens and after a label once that many seconds have passed since the last read (0: after every
    label, as the page did before 2026-12-01); None: the lease path alone."""
    stats = ClientStats()
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        login = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        login.raise_for_status()
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        start.wait()
        read_at = -math.inf
        for _ in range(labels):
            if progress_every_s is not None and time.perf_counter() - read_at >= progress_every_s:
                read_at = time.perf_counter()
                client.get(f"/api/v1/projects/{PROJECT}/progress").raise_for_status()
                stats.progress_ms.append((time.perf_counter() - read_at) * 1000)
            t0 = time.perf_counter()
            response = client.post(f"/api/v1/projects/{PROJECT}/queue/next")
            t1 = time.perf_counter()
            if response.status_code != 200:
                stats.errors[f"next {response.status_code}"] += 1
                break
            item_id = response.json()["item"]["id"]
            stats.served.append(item_id)
            body = {"label": int(rng.random() < 0.2), "duration_ms": 1500}
            submitted = client.post(f"/api/v1/projects/{PROJECT}/items/{item_id}/annotations", json=body)
            t2 = time.perf_counter()
            if submitted.status_code != 201:
                stats.errors[f"submit {submitted.status_code}"] += 1
            stats.next_ms.append((t1 - t0) * 1000)
            stats.submit_ms.append((t2 - t1) * 1000)
            stats.pair_ms.append((t2 - t0) * 1000)
            if think_s:  # looking at the image; drawn, so the annotators drift out of step
                time.sleep(rng.uniform(0.5, 1.5) * think_s)
    return stats


def percentiles(values: list[float]) -> str:
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms  (n={len(values)})"


def run_clients(
    base_urls: list[str],
    annotators: int,
    labels: int,
    think_s: float = 0.0,
    progress_every_s: float | None = None,
) -> tuple[list[ClientStats], float]:
    barrier = threading.Barrier(annotators + 1)
    with ThreadPoolExecutor(annotators) as pool:
        futures = [
            pool.submit(
                annotate,
                base_urls[i % len(base_urls)],
                f"annotator{i}",
                labels,
                barrier,
                i,
                think_s,
                progress_every_s,
            )
            for i in range(annotators)
        ]
        barrier.wait()
        started = time.perf_counter()
        results = [f.result() for f in futures]
    return results, time.perf_counter() - started


def report(results: list[ClientStats], wall_s: float) -> int:
    merge = lambda name: [v for r in results for v in getattr(r, name)]  # noqa: E731
    served_by = Counter(item for r in results for item in set(r.served))
    doubles = sum(1 for n in served_by.values() if n > 1)
    labeled = len(merge("pair_ms"))
    print(f"queue/next          {percentiles(merge('next_ms'))}")
    print(f"submit              {percentiles(merge('submit_ms'))}")
    print(f"next + submit       {percentiles(merge('pair_ms'))}")
    if merge("progress_ms"):
        print(f"progress            {percentiles(merge('progress_ms'))}")
    print(f"throughput          {labeled / wall_s:.0f} items/s ({labeled} labels in {wall_s:.1f} s)")
    print(f"double service      {doubles} items served to two annotators at once")
    errors = sum((r.errors for r in results), Counter())
    if errors:
        print(f"errors              {dict(errors)}")
    return doubles


@dataclass
class Measured:
    first_s: list[float] = field(default_factory=list)
    rerank_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    service: dict[str, float] = field(default_factory=dict)
    alone: dict[str, float] = field(default_factory=dict)
    crowd: dict[str, float] = field(default_factory=dict)
    doubles: int = 0


def lease_figures(results: list[ClientStats], wall_s: float) -> dict[str, float]:
    merge = lambda name: [v for r in results for v in getattr(r, name)]  # noqa: E731
    figures = {}
    for name in ("next_ms", "submit_ms"):
        p50, p95, p99 = np.percentile(merge(name) or [np.nan], [50, 95, 99])
        figures |= {f"{name}_p50": p50, f"{name}_p95": p95, f"{name}_p99": p99}
    figures["items_per_s"] = len(merge("pair_ms")) / wall_s
    return figures


def measure_ranking(url: str, project_id: int, root: Path, measured: Measured, rounds: int) -> None:
    reset_queue(url)
    first = timed_rerank(url, project_id, 0.5, root)
    measured.first_s.append(first["seconds"])
    print(f"  first ranking       {first['seconds']:7.2f} s for {first['items']:,} items", flush=True)
    for i in range(rounds):
        rerank = timed_rerank(url, project_id, 0.4 if i % 2 == 0 else 0.5, root)
        measured.rerank_s.append(rerank["seconds"])
        measured.rss_mb.append(rerank["rss_mb"])
        print(
            f"  full re-rank        {rerank['seconds']:7.2f} s, peak RSS {rerank['rss_mb']:.0f} MB",
            flush=True,
        )


def measure_leases(url: str, project_id: int, root: Path, tmp: Path, args, measured: Measured) -> None:
    """Both checkouts serve the same state: ranked by the current code, analysed, nobody labeled yet."""
    reset_queue(url)
    timed_rerank(url, project_id, 0.5, REPO_ROOT)
    service = service_leases(url, project_id, args.alone_labels, root)
    measured.service = dict(zip(("p50", "p95"), np.percentile(service, [50, 95]), strict=True))
    print(f"  lease_next_item     {percentiles(service)} (in-process, one annotator)", flush=True)
    if "http" in args.skip:
        return
    with ExitStack() as servers:
        urls = [
            servers.enter_context(api_server(url, tmp / f"s{i}", root=root, PYTHONPATH=str(root)))
            for i in range(args.servers)
        ]
        alone, wall_s = run_clients(urls, 1, args.alone_labels)
        measured.alone = lease_figures(alone, wall_s)
        print(f"  1 annotator         queue/next {percentiles(alone[0].next_ms)}", flush=True)
        think_s = args.think_ms / 1000
        crowd, wall_s = run_clients(
            urls, args.annotators, args.labels_per_annotator, think_s, args.progress_every
        )
        measured.crowd = lease_figures(crowd, wall_s)
        pacing = f", {args.think_ms:.0f} ms per image between labels" if think_s else " labeling back to back"
        if args.progress_every is not None:
            pacing += f", reading /progress at most every {args.progress_every:g} s"
        print(f"  {args.annotators} annotators, {args.servers} server(s){pacing}:", flush=True)
        measured.doubles = report(crowd, wall_s)


def compare(label: str, current: list[float] | float, baseline: list[float] | float) -> None:
    now, before = float(np.median(current)), float(np.median(baseline))
    print(f"{label:<28} {before:10.2f} {now:10.2f} {before / now:8.1f}x")


def summary(args, current: Measured, baseline: Measured | None) -> None:
    if baseline is None:
        return
    print(f"\n{args.items:,} items, medians          before      after   faster")
    if current.first_s:
        compare("first ranking (s)", current.first_s, baseline.first_s)
        compare("full re-rank (s)", current.rerank_s, baseline.rerank_s)
        compare("re-rank peak RSS (MB)", current.rss_mb, baseline.rss_mb)
    for key in current.service:
        compare(f"lease_next_item {key} (ms)", current.service[key], baseline.service[key])
    for who, now, before in (
        ("alone", current.alone, baseline.alone),
        ("crowd", current.crowd, baseline.crowd),
    ):
        for key in ("next_ms_p50", "next_ms_p95", "submit_ms_p50", "submit_ms_p95"):
            if key in now:
                compare(f"{who} {key} (ms)", now[key], before[key])
        if "items_per_s" in now:
            rate, rate_before = now["items_per_s"], before["items_per_s"]
            print(f"{who + ' labels/s':<28} {rate_before:10.2f} {rate:10.2f} {rate / rate_before:8.1f}x")


@contextmanager
def database(args) -> Iterator[str]:
    if not args.database:
        with scratch_database("postgresql") as url:
            yield url
        return
    yield pg_admin_url().rsplit("/", 1)[0] + f"/{args.database}"


def prepared_project(url: str, args) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT id FROM projects WHERE name = %s", (PROJECT,)).fetchone()
        n_items = (
            found and conn.execute("SELECT count(*) FROM items WHERE project_id = %s", found).fetchone()[0]
        )
    if found and n_items == args.items:
        print(f"reusing {n_items:,} items in {url.rsplit('/', 1)[1]}")
        return found[0]
    if found:
        raise SystemExit(f"{url} holds {n_items} items, not {args.items}: use another --database")
    project_id = setup_project(url, max(args.annotators, 1))
    print(f"bulk-loading {args.items:,} items x {len(MODELS)} models into PostgreSQL")
    print(f"bulk load           {bulk_load(url, project_id, args.items):.1f} s (COPY)")
    return project_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--labels-per-annotator", type=int, default=250)
    parser.add_argument("--alone-labels", type=int, default=300, help="leases of the one-annotator run")
    parser.add_argument("--rerank-rounds", type=int, default=2, help="re-ranks after the first ranking")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="single-process uvicorn servers, annotators spread over them as behind a load balancer",
    )
    parser.add_argument(
        "--skip",
        choices=("ranking", "leases", "http"),
        action="append",
        default=[],
        help="http: leases through the service function only",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="the crowd's mean time looking at an image between submit and next (0: back to back, saturation)",
    )
    parser.add_argument(
        "--progress-every",
        type=float,
        help="the crowd also reads /progress as the label page does: at most every this many seconds (15 now; "
        "0: after every label, as the page did before); unset: the lease path alone",
    )
    parser.add_argument("--database", help="an existing database to load once and reuse (not dropped)")
    add_baseline_option(parser)
    add_environment_options(parser)
    args = parser.parse_args(argv)
    apply_environment_options(args)
    roots = [("after", args.app_root)] + ([("before", args.baseline_root)] if args.baseline_root else [])
    results = {name: Measured() for name, _ in roots}
    doubles = 0
    with database(args) as url, TemporaryDirectory() as tmp:
        project_id = prepared_project(url, args)
        for name, root in reversed(roots):  # the baseline first: the current code runs on a warmer cache
            if "ranking" not in args.skip:
                print(f"{name} ({root}): ranking {args.items:,} items", flush=True)
                measure_ranking(url, project_id, root, results[name], args.rerank_rounds)
        for name, root in reversed(roots):
            if "leases" not in args.skip:
                print(f"{name} ({root}): leases on {args.items:,} pooled items", flush=True)
                measure_leases(url, project_id, root, Path(tmp), args, results[name])
                doubles += results[name].doubles if name == "after" else 0
    summary(args, results["after"], results.get("before"))
    print(
        "Label Studio 1.23 (50k tasks, same kind of machine): next 96 ms p50 alone; 0.5-0.7 s p50 and "
        "1.6-2.9 s p95 with 8 annotators; 5-12% double service"
    )
    return 1 if doubles else 0


if __name__ == "__main__":
    raise SystemExit(main())
