"""Ingest cost per batch as the table grows: the curve from 10k items to 1M (or more), not one point.

    python -m bench.scale --items 200000                       # every item through the ingest service
    python -m bench.scale --items 1000000 --fill sql           # PostgreSQL: jump between checkpoints with
                                                               # server-side SQL, measure batches at each size

Each batch (1,000 items x 3 predictions by default) goes through `app.ingest.service.ingest_batch` in this
process, the code path behind the HTTP endpoint without the HTTP layer. At every checkpoint it prints the
median seconds per batch of the last `--window` batches and the ratio to the first checkpoint: a flat curve
(ratio ~1) means ingest stays linear in the table size. Nothing runs ANALYZE for the benchmark; statistics are
whatever the product keeps up to date itself (autovacuum is off on the reference machine);
`--analyze-at-start` takes one snapshot after the first batch, as an early autovacuum pass would.

`--fill sql` inserts items, three predictions each and their hardness rows with one INSERT ... SELECT from
generate_series (as a bulk import or months of ingest would leave them), then ingests `--window` batches
through the service at that size. 10M needs about 10 GB of disk.

`--leases N` adds the queue's curve: at every checkpoint N leases of one annotator through
`app.queue.service.lease_next_item` (each released again), median ms; `--rerank` times a full re-rank of the
project there (`app.queue.ranking.rerank_project`, seconds and items/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from app.auth.models import User
from app.auth.users import create_user
from app.core.blobs import BlobStore
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.ingest.service import ingest_batch
from app.projects.models import Project
from app.projects.schemas import ProjectCreate
from app.projects.service import create as create_project
from app.queue.ranking import rerank_project
from app.queue.service import lease_next_item, release_items
from bench.common import add_environment_options, apply_environment_options, scratch_database, sql_fill
from bench.ingest import make_item


def checkpoints(text: str) -> list[int]:
    return sorted(int(float(part.lower().replace("k", "e3").replace("m", "e6"))) for part in text.split(","))


class Ingester:
    """Sends numbered batches through the ingest service and remembers how long each took."""

    def __init__(self, url: str, data_dir: Path, batch_size: int, models: int) -> None:
        self.sessions = make_sessionmaker(make_engine(url))
        self.settings = Settings(data_dir=data_dir, database_url=url)
        self.blobs = BlobStore(data_dir / "blobs")
        self.batch_size, self.models = batch_size, models
        self.next_index = 0
        with session_scope(self.sessions) as session:
            self.project_id = create_project(db_session=session, project_in=ProjectCreate(name="scale")).id

    def batch(self) -> float:
        items = [make_item(self.next_index + i, self.models) for i in range(self.batch_size)]
        self.next_index += self.batch_size
        started = time.perf_counter()
        with session_scope(self.sessions) as session:
            summary = ingest_batch(
                db_session=session,
                project=session.get(Project, self.project_id),
                raw_items=items,
                files={},
                blobs=self.blobs,
                settings=self.settings,
            )
        elapsed = time.perf_counter() - started
        assert summary.items_created == len(items), summary
        return elapsed


class QueueProbe:
    """The queue at the current table size: lease latency of one annotator, and a full re-rank."""

    def __init__(self, ingester: Ingester) -> None:
        self.sessions, self.project_id = ingester.sessions, ingester.project_id
        with session_scope(self.sessions) as session:
            self.user_id = create_user(db_session=session, username="scale-annotator", password="x" * 12).id

    def lease_ms(self, n: int) -> float:
        """Median of n leases; each item is released again so the pool stays the same."""
        times, taken = [], []
        with session_scope(self.sessions) as session:
            project, user = session.get(Project, self.project_id), session.get(User, self.user_id)
            for _ in range(n):
                started = time.perf_counter()
                lease = lease_next_item(db_session=session, project=project, user=user, lease_minutes=5)
                times.append(time.perf_counter() - started)
                taken += [lease.item_id] if lease else []
            release_items(db_session=session, project=project, user=user, item_ids=taken)
        return statistics.median(times) * 1000 if times else float("nan")

    def rerank_s(self) -> float:
        with session_scope(self.sessions) as session:
            return rerank_project(db_session=session, project=session.get(Project, self.project_id)).seconds


def analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def run(args: argparse.Namespace) -> None:
    marks = checkpoints(args.checkpoints) if args.checkpoints else []
    marks = [m for m in marks if m <= args.items] or [args.items]
    print(
        f"{args.backend}: {args.items} items x {args.models} predictions in batches of {args.batch_size}, "
        f"fill={args.fill}, median of the last {args.window} batches at each checkpoint"
    )
    print(
        f"{'items':>10} {'s/batch':>9} {'items/s':>9} {'x first':>8}"
        + (f" {'lease ms':>9}" if args.leases else "")
        + (f" {'rerank s':>9} {'items/s':>9}" if args.rerank else "")
    )
    with scratch_database(args.backend) as url, tempfile.TemporaryDirectory() as tmp:
        ingester = Ingester(url, Path(tmp), args.batch_size, args.models)
        probe = QueueProbe(ingester) if args.leases or args.rerank else None
        table_size, first, times = 0, None, []
        if args.analyze_at_start:  # one statistics snapshot of a young project, as one autovacuum pass leaves
            times.append(ingester.batch())
            table_size += args.batch_size
            analyze(url)
        for mark in marks:
            if args.fill == "sql":
                sql_fill(url, ingester.project_id, table_size, mark - args.window * args.batch_size)
                table_size = mark - args.window * args.batch_size
                times = []
            while table_size < mark:
                times.append(ingester.batch())
                table_size += args.batch_size
            median = statistics.median(times[-args.window :])
            first = first or median
            queue = ""
            if probe and args.leases:
                queue += f" {probe.lease_ms(args.leases):>9.2f}"
            if probe and args.rerank:
                seconds = probe.rerank_s()
                queue += f" {seconds:>9.2f} {table_size / seconds:>9.0f}"
            print(
                f"{table_size:>10} {median:>9.3f} {args.batch_size / median:>9.0f} {median / first:>8.2f}{queue}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default=os.environ.get("HARDCASE_BENCH_BACKEND", "postgresql"))
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--checkpoints", default="10k,50k,100k,200k,500k,1m,2m,5m,10m")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--window", type=int, default=5, help="batches whose median is reported per point")
    parser.add_argument("--fill", choices=("ingest", "sql"), default="ingest")
    parser.add_argument(
        "--analyze-at-start",
        action="store_true",
        help="ANALYZE once after the first batch and never again (what one early autovacuum pass leaves): "
        "plans that depend on statistics then degrade unless the product refreshes them",
    )
    parser.add_argument("--leases", type=int, default=0, help="leases timed at each checkpoint (0: none)")
    parser.add_argument("--rerank", action="store_true", help="time a full re-rank at each checkpoint")
    add_environment_options(parser)
    args = parser.parse_args()
    apply_environment_options(args)
    if args.fill == "sql" and args.backend != "postgresql":
        parser.error("--fill sql is PostgreSQL only")
    run(args)


if __name__ == "__main__":
    main()
