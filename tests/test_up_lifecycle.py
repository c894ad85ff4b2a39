"""`hardcase up` under real signals: SIGTERM stops everything, SIGKILL leaves nothing behind for long, and
nothing that is not verifiably ours is ever signalled."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.embedded_redis import EmbeddedRedis
from app.core.processes import UP_OWNER_ENV, ProcessInfo, all_processes, is_up_worker
from app.runner import single_instance, stop_leftovers

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240  # a cold start imports the app and Celery twice; generous for a loaded CI machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_of(data_dir: Path) -> list[ProcessInfo]:
    """Worker, pool, beat and embedded Redis processes serving `data_dir`."""
    broker = EmbeddedRedis(data_dir / "redis" / "redis.sock")
    return [p for p in all_processes() if is_up_worker(p, data_dir) or broker.is_ours(p)]


def start_up(tmp_path: Path, data_dir: Path, name: str) -> tuple[subprocess.Popen, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDCASE_")}
    env.update(HARDCASE_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--port", str(port := free_port())],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"hardcase up exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if "ready." in log.read_text() and _healthy(port):
            return proc, log
        time.sleep(0.3)
    proc.kill()
    pytest.fail(f"hardcase up did not become ready:\n{log.read_text()[-3000:]}")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen, sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=90)


def test_sigterm_stops_the_api_the_worker_and_the_embedded_redis(tmp_path):
    data_dir = tmp_path / "data"
    proc, log = start_up(tmp_path, data_dir, "up")
    assert len([p for p in processes_of(data_dir) if "celery" in p.command]) >= 2  # worker and its pool
    stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert processes_of(data_dir) == []
    assert "embedded redis stopped" in log.read_text()


def test_after_sigkill_a_restart_runs_exactly_one_worker_and_nothing_of_the_old_run(tmp_path):
    data_dir = tmp_path / "data"
    first, _ = start_up(tmp_path, data_dir, "first")
    before = {(p.pid, p.started) for p in processes_of(data_dir)}
    stop(first, signal.SIGKILL)
    second, log = start_up(tmp_path, data_dir, "second")
    try:
        now = processes_of(data_dir)
        assert before.isdisjoint({(p.pid, p.started) for p in now})
        mains = [p for p in now if is_up_worker(p, data_dir) and p.ppid == second.pid]
        assert len(mains) == 1, [p.command for p in now]
        assert all(p.pgid == mains[0].pid for p in now if is_up_worker(p, data_dir))
    finally:
        stop(second, signal.SIGTERM)
    assert processes_of(data_dir) == [], log.read_text()[-2000:]


def _lookalike_worker(owner: Path | None) -> subprocess.Popen:
    """A process whose command line reads like an up worker (no Celery started: the check is what matters)."""
    env = dict(os.environ)
    env.pop(UP_OWNER_ENV, None)
    if owner is not None:
        env[UP_OWNER_ENV] = str(owner.resolve())
    script = "import sys, time; sys.stdout.write('up'); sys.stdout.flush(); time.sleep(120)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "-m", "celery", "-A", "workers.celery_app", "worker"],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout.read(2) == b"up"  # started: its /proc entries are complete
    return proc


def test_a_restart_stops_only_the_leftover_workers_of_its_own_data_dir(tmp_path):
    mine, elsewhere = tmp_path / "mine", tmp_path / "elsewhere"
    mine.mkdir(), elsewhere.mkdir()
    leftover, other_dir, unmarked = (
        _lookalike_worker(mine),
        _lookalike_worker(elsewhere),
        _lookalike_worker(None),
    )
    try:
        stop_leftovers(mine)
        assert leftover.wait(timeout=30) == -signal.SIGTERM
        assert other_dir.poll() is None and unmarked.poll() is None
    finally:
        for proc in (leftover, other_dir, unmarked):
            proc.kill()
            proc.wait()


def test_a_pidfile_naming_an_unrelated_process_is_never_signalled(tmp_path):
    sleeper = subprocess.Popen(["sleep", "120"])
    other = EmbeddedRedis(tmp_path / "other" / "redis.sock")
    other_pid = other.start()
    broker = EmbeddedRedis(tmp_path / "data" / "redis" / "redis.sock")
    try:
        for stale in (sleeper.pid, other_pid):  # a recycled PID: a stranger, or another data dir's Redis
            broker.dir.mkdir(parents=True, exist_ok=True)
            broker.pidfile.write_text(str(stale))
            broker.socket_path.touch()
            assert broker.start() not in (sleeper.pid, other_pid)
            assert broker.is_alive()
            broker.stop()
        assert sleeper.poll() is None
        assert other.is_alive()
    finally:
        other.stop()
        sleeper.kill()
        sleeper.wait()


def test_a_second_up_on_the_same_data_dir_is_refused_while_the_first_runs(tmp_path):
    with (
        single_instance(tmp_path),
        pytest.raises(SystemExit, match=f"pid {os.getpid()}"),
        single_instance(tmp_path),
    ):
        pass
    with single_instance(tmp_path):  # released when the holder stops
        pass
