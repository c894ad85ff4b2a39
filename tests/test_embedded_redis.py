"""The embedded broker is started, replaced and cleaned up by pidfile; no stray server survives `stop`."""

from __future__ import annotations

import os
import signal

from app.core.embedded_redis import EmbeddedRedis, _process_exists


def test_a_live_server_from_an_earlier_run_is_replaced_and_its_queued_data_kept(tmp_path):
    first = EmbeddedRedis(tmp_path / "redis" / "redis.sock")
    pid = first.start()
    first.client().set("queued", "task")
    again = EmbeddedRedis(tmp_path / "redis" / "redis.sock")
    try:
        new_pid = again.start()
        assert new_pid != pid and not _process_exists(pid)
        assert again.client().get("queued") == b"task"
    finally:
        again.stop()
        first.stop()
    assert not _process_exists(new_pid)
    assert not again.pidfile.exists() and not again.socket_path.exists()


def test_a_stale_pidfile_and_socket_after_a_crash_are_cleaned_up(tmp_path):
    broker = EmbeddedRedis(tmp_path / "redis" / "redis.sock")
    pid = broker.start()
    os.kill(pid, signal.SIGKILL)  # a crash: pidfile and socket stay behind
    broker.socket_path.touch(exist_ok=True)
    new_pid = broker.start()
    try:
        assert new_pid != pid and broker.is_alive()
    finally:
        broker.stop()


def test_queued_data_survives_a_restart_with_appendonly(tmp_path):
    broker = EmbeddedRedis(tmp_path / "redis" / "redis.sock")
    broker.start()
    broker.client().lpush("cpu", "task-1")
    broker.stop()
    broker.start()
    try:
        assert broker.client().lrange("cpu", 0, -1) == [b"task-1"]
    finally:
        broker.stop()
