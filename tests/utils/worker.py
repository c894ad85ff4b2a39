"""A real Celery worker process for tests, pointed at the test's database, broker and data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from app.core.config import Settings
from app.runner import worker_command

REPO_ROOT = Path(__file__).resolve().parents[2]


def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDCASE_")}
    env.update(
        {
            "HARDCASE_DATABASE_URL": settings.resolved_database_url,
            "HARDCASE_BROKER_URL": settings.broker_url,
            "HARDCASE_DATA_DIR": str(settings.data_dir.resolve()),
            "HARDCASE_VISIBILITY_TIMEOUT_S": str(settings.visibility_timeout_s),
            "HARDCASE_JOB_HEARTBEAT_S": str(settings.job_heartbeat_s),
            "HARDCASE_SECRET_KEY": settings.secret_key,
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def celery_worker(
    settings: Settings,
    queues: str = "cpu,gpu",
    log_path: Path | None = None,
    pool: str = "prefork",
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Starts `celery worker` and waits until it is ready; always stops it (SIGTERM, then SIGKILL).
    `extra_env` adds variables (settings the test changes, PROMETHEUS_MULTIPROC_DIR)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or settings.data_dir / f"worker-{time.monotonic_ns()}.log"
    log = log_path.open("w")
    name = f"test-{os.getpid()}-{time.monotonic_ns()}"
    cmd = worker_command(queues, 1, beat=False, pool=pool, name=name)
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(
        cmd,
        env={**worker_env(settings), **(extra_env or {})},
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_log(log_path, "ready.", proc, timeout_s=60)
        yield proc
    finally:
        stop_worker(proc)
        log.close()


def wait_for_log(path: Path, needle: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(
                f"worker exited with {proc.returncode}:\n{path.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)
    raise TimeoutError(f"worker not ready in {timeout_s}s:\n{path.read_text(errors='replace')[-3000:]}")


def stop_worker(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_worker(proc)


def kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group: the main process and its prefork children, as a crash would."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"{message} not met within {timeout_s}s")
