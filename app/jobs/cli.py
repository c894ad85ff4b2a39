"""`hardcase jobs list | watch ID | cancel ID`: the job queue from a terminal (reads the DB directly)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.core.errors import ApiError
from app.jobs import service
from app.jobs.models import FINISHED
from app.jobs.schemas import JobRead

BAR_WIDTH = 30
HEADLINE_METRICS = ("train_loss", "loss", "val_mcc", "ema_val_mcc", "holdout_mcc")


def _sessions():
    return make_sessionmaker(make_engine(get_settings().resolved_database_url))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(job: JobRead) -> str:
    """`[#####-----] 120/400 30% ETA 01:12 train_loss=0.41 val_mcc=0.62 running`"""
    p = job.progress
    filled = int(BAR_WIDTH * p.fraction)
    metrics = " ".join(
        f"{k}={job.latest_metrics[k]:.4g}" for k in HEADLINE_METRICS if k in job.latest_metrics
    )
    return (
        f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {p.step}/{p.total or '?'} {p.fraction:4.0%} "
        f"ETA {_duration(p.eta_s)} {metrics} {job.status}".rstrip()
    )


def cmd_list(args: argparse.Namespace) -> int:
    from app.projects.service import get_by_name

    with session_scope(_sessions()) as session:
        project = get_by_name(db_session=session, name=args.project) if args.project else None
        if args.project and project is None:
            raise SystemExit(f"error: unknown project {args.project!r}")
        jobs = service.list_jobs(db_session=session, project=project, status=args.status, limit=args.limit)
        for job in service.job_reads(db_session=session, jobs=jobs):
            print(
                f"{job.id}\t{job.project}\t{job.kind}\tdataset v{job.dataset_version}\t{job.status}\t"
                f"{job.progress.step}/{job.progress.total}\tattempts {job.attempts}/{job.max_attempts}"
            )
    return 0


def watch(job_id: int, *, interval_s: float = 1.0, out: TextIO = sys.stdout, sessions=None) -> str:
    """Redraws one progress line until the job finishes; returns its final status."""
    sessions = sessions or _sessions()
    while True:
        with session_scope(sessions) as session:
            job = service.get_job(db_session=session, job_id=job_id)
            read = service.job_reads(db_session=session, jobs=[job])[0]
        out.write("\r" + progress_line(read) + "\033[K")
        out.flush()
        if read.status in FINISHED:
            out.write("\n")
            if read.error:
                out.write(read.error.rstrip() + "\n")
            if read.model_version is not None:
                out.write(f"model version {read.model_version}\n")
            return read.status
        time.sleep(interval_s)


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        status = watch(args.id, interval_s=args.interval)
    except ApiError as exc:
        raise SystemExit(f"error: {exc.message}") from exc
    except KeyboardInterrupt:
        return 130
    return 0 if status == "succeeded" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    with session_scope(_sessions()) as session:
        try:
            job = service.request_cancel(
                db_session=session, job=service.get_job(db_session=session, job_id=args.id)
            )
        except ApiError as exc:
            raise SystemExit(f"error: {exc.message}") from exc
        print(f"job {job.id}: {'cancelled' if job.status == 'cancelled' else 'cancel requested'}")
    return 0


def register(sub) -> None:
    jobs = sub.add_parser("jobs", help="training jobs").add_subparsers(dest="jobs_command", required=True)
    ls = jobs.add_parser("list", help="list jobs, newest first")
    ls.add_argument("--project")
    ls.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=cmd_list)
    wt = jobs.add_parser("watch", help="live progress bar until the job ends")
    wt.add_argument("id", type=int)
    wt.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    wt.set_defaults(func=cmd_watch)
    cc = jobs.add_parser("cancel", help="ask a job to stop (it stops within seconds)")
    cc.add_argument("id", type=int)
    cc.set_defaults(func=cmd_cancel)
