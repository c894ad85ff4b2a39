"""Export of a large frozen dataset version: seconds and peak RSS per format, against an older checkout.

    python -m bench.export --items 50000 --before /tmp/export-before
    python -m bench.export --items 50000 --formats jsonl,coco,label_studio,parquet --rounds 2

Builds one binary project with a box class on a scratch PostgreSQL database: `--items` items, each with its
own stored image (a tiny distinct JPEG in the blob store), three model predictions (one with boxes), a human
label, and human boxes on every other item; then a frozen version holding all of them (70/15/15 split).
Each export runs cold in a fresh process (`export_archive`: read the version from the database, write the
export, zip it), alternating between this checkout and `--before` when given, format by format; with `--warm`
the version is read once beforehand and every export reuses it (as every export and training job after the
first one of a version does: a frozen version is written to disk once). Printed:
seconds (wall, and the exporting process's own CPU: on a loaded machine the steadier of the two; the
database server's work is not in it) and the process's peak RSS (VmHWM, imports included), the ratio before/after, and whether the
two archives hold the same bytes (or, for a JSON file written differently, the same values).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import psycopg

from bench.common import REPO_ROOT, add_environment_options, apply_environment_options, scratch_database

MODELS = ("yolo-cones", "vit-roadwork", "qwen2.5-vl")
SPLITS = ("train",) * 14 + ("val",) * 3 + ("holdout",) * 3


def tiny_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 90, 30)).save(buffer, format="JPEG", quality=60)
    return buffer.getvalue()


def store_images(blob_root: Path, n_items: int) -> list[str]:
    """One distinct JPEG per item (bytes after the end marker differ), written as the blob store lays them out."""
    import hashlib

    base = tiny_jpeg()
    shas = []
    for index in range(n_items):
        data = base + index.to_bytes(4, "big")
        sha = hashlib.sha256(data).hexdigest()
        path = blob_root / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        shas.append(sha)
    return shas


def seed(url: str, data_dir: Path, n_items: int) -> None:
    from app.core.db import make_engine, make_sessionmaker, session_scope
    from app.projects.schemas import ProjectCreate
    from app.projects.service import create

    with session_scope(make_sessionmaker(make_engine(url))) as session:
        project_in = ProjectCreate(name="bench", box_classes=["cone"])
        project_id = create(db_session=session, project_in=project_in).id
    shas = store_images(data_dir / "blobs", n_items)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY items (project_id, external_id, image_uri, sha256, width, height, captured_at, camera_id, "
            "is_night, meta, created_at) FROM STDIN"
        ) as copy:
            for i, sha in enumerate(shas):
                copy.write_row(
                    (project_id, f"frame-{i:08d}", f"blob:{sha}", sha, 64, 48,
                     f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00+00", f"cam-{i % 50}", i % 5 == 0,
                     json.dumps({"tags": ["bench"], "route": f"r{i % 7}"}), "2026-11-30T00:00:00+00")
                )  # fmt: skip
        cur.execute("SELECT id FROM items WHERE project_id = %s ORDER BY id", (project_id,))
        ids = [row[0] for row in cur.fetchall()]
        with cur.copy(
            "COPY predictions (item_id, project_id, model, model_version, score, label, boxes, extra, received_at) "
            "FROM STDIN"
        ) as copy:
            for n, item_id in enumerate(ids):
                for m, model in enumerate(MODELS):
                    score = ((n * 7919 + m * 104729) % 1000) / 1000
                    boxes = [[0.1, 0.2, 0.3, 0.5, 0, score]] if m == 0 and score >= 0.5 else []
                    copy.write_row(
                        (item_id, project_id, model, "1", score, None, json.dumps(boxes), "{}", "2026-11-30")
                    )
        cur.execute(
            "INSERT INTO dataset_versions (project_id, version, content_hash, filters, stats, val_fraction, "
            "item_count, created_at) VALUES (%s, 1, %s, '{}', '{}', 0.15, %s, now()) RETURNING id",
            (project_id, f"bench-{n_items}", n_items),
        )
        version_id = cur.fetchone()[0]
        with cur.copy(
            "COPY dataset_items (dataset_version_id, item_id, label, boxes, split) FROM STDIN"
        ) as copy:
            for n, item_id in enumerate(ids):
                label = n % 3 == 0
                boxes = [[0.1, 0.2, 0.4, 0.6, 0], [0.5, 0.5, 0.7, 0.9, 0]] if label and n % 2 == 0 else []
                copy.write_row((version_id, item_id, int(label), json.dumps(boxes), SPLITS[n % len(SPLITS)]))
        cur.execute("ANALYZE")


def child(url: str, data_dir: Path, fmt: str, keep: Path, warm: bool) -> None:
    """Runs in a fresh process with the measured checkout first on sys.path; prints its figures as JSON."""
    from app.core.blobs import BlobStore
    from app.core.config import Settings
    from app.core.db import make_engine, make_sessionmaker, session_scope
    from app.datasets.service import export_archive, get_version
    from app.projects.service import get_by_name

    settings = Settings(database_url=url, data_dir=data_dir)
    for cached in ("exports",) if warm else ("datasets", "exports"):
        shutil.rmtree(data_dir / cached, ignore_errors=True)
    imported_rss = peak_rss_mb()
    with session_scope(make_sessionmaker(make_engine(url))) as session:
        project = get_by_name(db_session=session, name="bench")
        version = get_version(db_session=session, project=project, version=1)
        start, cpu_start = time.perf_counter(), time.process_time()
        archive = export_archive(
            db_session=session,
            project=project,
            version=version,
            fmt=fmt,
            settings=settings,
            blobs=BlobStore(data_dir / "blobs"),
        )
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    shutil.copyfile(archive, keep)
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "imported_rss_mb": imported_rss,
    }
    print(json.dumps({**figures, "zip_mb": archive.stat().st_size / 2**20}))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the forking parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: Path, url: str, data_dir: Path, fmt: str, keep: Path, warm: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bench.export", "--child", fmt, "--child-url", url, "--child-data", str(data_dir),
           "--child-keep", str(keep)] + (["--child-warm"] if warm else [])  # fmt: skip
    if root != REPO_ROOT:  # the older checkout may have no bench/export.py: run this file against its app/
        script = (
            f"import runpy, sys; sys.argv = {cmd[2:]!r}; runpy.run_path({__file__!r}, run_name='__main__')"
        )
        cmd = [sys.executable, "-c", script]
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"export {fmt} from {root} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def json_values(name: str, data: bytes) -> object:
    """A JSON file's values (JSON lines: each line's, with the `metadata` column, itself JSON text, parsed);
    a fresh object for any other file, so that a differing non-JSON file never compares equal."""
    if name.endswith(".json"):
        return json.loads(data)
    if name.endswith(".jsonl"):
        rows = [json.loads(line) for line in data.splitlines() if line.strip()]
        return [
            {**row, "metadata": json.loads(row["metadata"])} if "metadata" in row else row for row in rows
        ]
    return object()


def same_archives(before: Path, after: Path) -> str:
    """'identical' when both zips hold the same files with the same bytes, else the first difference."""
    with zipfile.ZipFile(before) as b, zipfile.ZipFile(after) as a:
        names_b, names_a = sorted(b.namelist()), sorted(a.namelist())
        if names_b != names_a:
            return f"file lists differ ({len(names_b)} vs {len(names_a)} files)"
        reformatted = [name for name in names_b if b.getinfo(name).CRC != a.getinfo(name).CRC]
        for name in reformatted:
            if json_values(name, b.read(name)) != json_values(name, a.read(name)):
                return f"{name} differs"
    if reformatted:
        shown = ", ".join(reformatted[:3]) + (
            f" and {len(reformatted) - 3} more" if len(reformatted) > 3 else ""
        )
        return f"equivalent ({len(names_b)} files, same JSON values in {shown})"
    return f"identical ({len(names_b)} files)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--formats", default="jsonl,coco,label_studio")
    parser.add_argument("--rounds", type=int, default=1, help="median over this many runs of each")
    parser.add_argument("--before", type=Path, help="an older checkout measured in the same run (baseline)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-keep", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--warm", action="store_true", help="the version already on disk (read it once before)"
    )
    add_environment_options(parser)
    args = parser.parse_args()
    if args.child:
        child(args.child_url, args.child_data, args.child, args.child_keep, args.child_warm)
        return
    apply_environment_options(args)
    roots = {"after": REPO_ROOT} | ({"before": args.before.resolve()} if args.before else {})
    print(f"export of a {args.items}-item version (3 predictions each, boxes on 1 in 6), "
          f"{'warm' if args.warm else 'cold'}, median of {args.rounds}; before = {args.before or '-'}")  # fmt: skip
    print(
        f"{'format':<13} {'code':<7} {'seconds':>8} {'CPU s':>6} {'peak RSS MB':>12} {'RSS after imports':>18} "
        f"{'zip MB':>7}"
    )
    with scratch_database("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        start = time.perf_counter()
        seed(url, data_dir, args.items)
        print(f"(seeded in {time.perf_counter() - start:.1f} s)", flush=True)
        if args.warm:  # the version on disk, as the first export or training job leaves it
            measure(REPO_ROOT, url, data_dir, "jsonl", data_dir / "materialised.zip")
        for fmt in args.formats.split(","):
            runs: dict[str, list[dict]] = {name: [] for name in roots}
            for _ in range(args.rounds):
                for name, root in roots.items():
                    keep = data_dir / f"{name}-{fmt}.zip"
                    runs[name].append(measure(root, url, data_dir, fmt, keep, args.warm))
            medians = {
                name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
                for name, rs in runs.items()
            }
            for name, m in medians.items():
                print(f"{fmt:<13} {name:<7} {m['seconds']:>8.2f} {m['cpu_seconds']:>6.2f} {m['peak_rss_mb']:>12.0f} "
                      f"{m['imported_rss_mb']:>18.0f} {m['zip_mb']:>7.1f}", flush=True)  # fmt: skip
            if "before" in medians:
                b, a = medians["before"], medians["after"]
                same = same_archives(data_dir / f"before-{fmt}.zip", data_dir / f"after-{fmt}.zip")
                print(f"{fmt:<13} {'ratio':<7} {b['seconds'] / a['seconds']:>7.1f}x "
                      f"{b['cpu_seconds'] / a['cpu_seconds']:>5.1f}x {b['peak_rss_mb'] / a['peak_rss_mb']:>11.1f}x"
                      f"   content: {same}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
