"""Child processes that die with their parent, and are only ever signalled once verified to be ours.

`hardcase up` starts its worker and the embedded Redis in their own process groups (a terminal's Ctrl-C reaches
only the parent, which stops them in order) with a parent-death signal (Linux prctl), so a SIGKILLed parent
does not leave them running. Anything left behind anyway is found again through /proc and verified by what
the process is (its command line plus its data dir or working directory, and its start time against PID
reuse), never by a PID alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
UP_OWNER_ENV = "HARDCASE_UP_DATA_DIR"  # set on the processes `hardcase up` starts: whose data dir they serve


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return libc.prctl


_prctl = _load_prctl()


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that started it dies, however it dies."""
    parent = os.getpid()

    def preexec() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    started: int  # clock ticks after boot: tells a process from a later one that reuses its PID
    argv: tuple[str, ...]
    cwd: str | None
    owner: str | None  # the UP_OWNER_ENV value it was started with

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def read_process(pid: int) -> ProcessInfo | None:
    """What /proc says about `pid`; None when it is gone, a zombie, or not readable by us."""
    base = Path(f"/proc/{pid}")
    try:
        stat = (base / "stat").read_text()
        argv = (base / "cmdline").read_bytes().split(b"\0")
        environ = (base / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may contain spaces
    if fields[0] == "Z":
        return None
    try:
        cwd = os.readlink(base / "cwd")
    except OSError:
        cwd = None
    prefix = f"{UP_OWNER_ENV}=".encode()
    owner = next((e[len(prefix) :].decode(errors="replace") for e in environ if e.startswith(prefix)), None)
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        started=int(fields[19]),
        argv=tuple(a.decode(errors="replace") for a in argv if a),
        cwd=cwd,
        owner=owner,
    )


def all_processes() -> Iterator[ProcessInfo]:
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            info = read_process(int(entry.name))
            if info is not None:
                yield info


def is_up_worker(info: ProcessInfo, data_dir: Path) -> bool:
    """A Celery worker (or its pool/beat child) that `hardcase up` started for this data dir."""
    return (
        info.owner == str(data_dir.resolve())
        and "celery" in info.command
        and "workers.celery_app" in info.command
    )


def up_workers(data_dir: Path) -> list[ProcessInfo]:
    return [info for info in all_processes() if is_up_worker(info, data_dir)]


def _same_process(info: ProcessInfo, verify: Callable[[ProcessInfo], bool]) -> bool:
    now = read_process(info.pid)
    return now is not None and now.started == info.started and verify(now)


def _signal_if_ours(info: ProcessInfo, sig: int, verify: Callable[[ProcessInfo], bool]) -> None:
    if _same_process(info, verify):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(info.pid, sig)


def stop_processes(
    processes: Iterable[ProcessInfo], verify: Callable[[ProcessInfo], bool], *, timeout_s: float = 20.0
) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; each signal only after re-verifying the process."""
    targets = [info for info in processes if verify(info)]
    for info in targets:
        _signal_if_ours(info, signal.SIGTERM, verify)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_same_process(i, verify) for i in targets):
        time.sleep(0.1)
    for info in targets:
        _signal_if_ours(info, signal.SIGKILL, verify)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_same_process(i, verify) for i in targets):
        time.sleep(0.05)
