"""Process commands: `hardcase serve`, `hardcase worker`, `hardcase up` (API + worker + embedded Redis), `demo`."""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.config import EMBEDDED, Settings, get_settings
from app.core.processes import UP_OWNER_ENV, die_with_parent, is_up_worker, stop_processes, up_workers


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """uvicorn in this process; with `workers` > 1 that many processes on one socket, each building its app
    from the environment's settings (so `settings` must be what the environment says)."""
    import uvicorn

    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=5,
        )
        Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()
        return
    from app.main import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


def tcp_listener(sock: socket.socket) -> socket.socket:
    """The listening socket with its protocol set to TCP. uvicorn binds it with protocol 0 for `--workers`
    (uvicorn issue #3149); accepted connections inherit that, asyncio then leaves Nagle's algorithm on, and
    every keep-alive request after the first waits ~40 ms for the client's delayed ACK."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto == socket.IPPROTO_TCP:
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def worker_command(
    queues: str, concurrency: int, beat: bool, *, pool: str = "prefork", name: str | None = None
) -> list[str]:
    """The `celery worker` command line for Hardcase's task modules (also used by the tests)."""
    cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", queues,
           "-c", str(concurrency), "--pool", pool, "--loglevel", "INFO",
           "-n", f"{name or f'hardcase-{os.getpid()}'}@%h"]  # fmt: skip
    if beat:
        cmd += ["-B", "-s", str(get_settings().data_dir.resolve() / "celerybeat-schedule")]
    return cmd


@contextmanager
def embedded_broker(settings: Settings) -> Iterator[None]:
    """Starts the Hardcase-managed Redis when the broker is 'embedded'; always stops it on the way out."""
    if settings.broker_url != EMBEDDED:
        yield
        return
    from app.core.embedded_redis import EmbeddedRedis

    broker = EmbeddedRedis(settings.redis_socket)
    pid = broker.start()
    print(f"embedded redis (pid {pid}) at {settings.redis_socket}", flush=True)
    try:
        yield
    finally:
        broker.stop()
        print("embedded redis stopped", flush=True)


@contextmanager
def worker_process(queues: str, concurrency: int, beat: bool, data_dir: Path) -> Iterator[subprocess.Popen]:
    """The worker of `hardcase up`: its own process group, SIGTERM when we die, marked with our data dir."""
    env = {**os.environ, UP_OWNER_ENV: str(data_dir.resolve())}
    proc = subprocess.Popen(
        worker_command(queues, concurrency, beat), env=env, process_group=0, preexec_fn=die_with_parent()
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown: the main process stops pool and beat
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # pool or beat children that outlived their main process (verified by marker and process group)
        stop_processes(
            [p for p in up_workers(data_dir) if p.pgid == proc.pid],
            lambda info: is_up_worker(info, data_dir),
            timeout_s=5,
        )


def stop_leftovers(data_dir: Path) -> None:
    """Stops the worker processes a killed `hardcase up` left running on this data dir."""
    leftovers = up_workers(data_dir)
    if leftovers:
        pids = ", ".join(str(p.pid) for p in leftovers)
        print(f"stopping worker processes left by an earlier run (pids {pids})", flush=True)
        stop_processes(leftovers, lambda info: is_up_worker(info, data_dir))


@contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """One `hardcase up` per data dir: an exclusive lock the kernel drops when its holder dies, even SIGKILLed."""
    lock = open(data_dir / "up.lock", "a+")  # noqa: SIM115 (held for the whole run)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise SystemExit(
                f"another `hardcase up` (pid {lock.read().strip() or '?'}) runs on {data_dir}; stop it first"
            ) from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        lock.close()


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, systemd) and SIGHUP unwind like Ctrl-C, so every cleanup below runs.

    uvicorn handles the signal during serving, then re-raises it once it has shut down; this handler then
    turns it into KeyboardInterrupt instead of the default instant death.
    """

    def interrupt(signum: int, _frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _pin_data_dir(settings: Settings) -> None:
    """Child processes must see the same absolute data dir, whatever their working directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["HARDCASE_DATA_DIR"] = str(settings.data_dir.resolve())


def cmd_up(args: argparse.Namespace) -> int:
    from app.core.migrate import upgrade

    settings = get_settings()
    _pin_data_dir(settings)
    data_dir = settings.data_dir.resolve()
    try:
        with terminate_like_interrupt(), single_instance(data_dir):
            stop_leftovers(data_dir)
            upgrade(settings.resolved_database_url)
            if args.demo:
                from app.demo import seed_demo

                seed_demo(settings)
            with embedded_broker(settings), worker_process("cpu,gpu", args.concurrency, True, data_dir):
                print(
                    f"Hardcase on http://{args.host}:{args.port}  (Ctrl-C stops API, worker and broker)",
                    flush=True,
                )
                serve(settings, args.host, args.port)
    except KeyboardInterrupt:
        pass
    print("hardcase stopped", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    serve(get_settings(), args.host, args.port, args.workers or _workers_from_environment())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    os.execv(sys.executable, worker_command(args.queues, args.concurrency, args.beat))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.core.migrate import upgrade
    from app.demo import seed_demo

    settings = get_settings()
    _pin_data_dir(settings)
    upgrade(settings.resolved_database_url)
    seed_demo(settings, limit=args.limit)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{text}: expected 1 to 256")
    return value


def _workers_from_environment() -> int:
    try:
        return _positive_int(os.environ.get("HARDCASE_WEB_WORKERS", "1"))
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise SystemExit(f"error: HARDCASE_WEB_WORKERS: {exc}") from exc


def register(sub) -> None:
    up = sub.add_parser("up", help="run API + worker (+ embedded Redis): the whole product on one machine")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--concurrency", type=int, default=1)
    up.add_argument("--demo", action="store_true", help="seed the demo project first (idempotent)")
    up.set_defaults(func=cmd_up)

    srv = sub.add_parser("serve", help="run the API only (production: several behind a proxy)")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="API processes sharing the port (env HARDCASE_WEB_WORKERS; about one per core)",
    )
    srv.set_defaults(func=cmd_serve)

    wk = sub.add_parser("worker", help="run a Celery worker")
    wk.add_argument("--queues", default="cpu,gpu", help="cpu, gpu or both")
    wk.add_argument("--concurrency", type=int, default=1)
    wk.add_argument(
        "--beat", action="store_true", help="also run the periodic scheduler (one per deployment)"
    )
    wk.set_defaults(func=cmd_worker)

    demo = sub.add_parser("demo", help="create the 'roadwork' demo project with real images and predictions")
    demo.add_argument("--limit", type=int, default=0, help="at most this many images (0 = all)")
    demo.set_defaults(func=cmd_demo)
