"""The server process keeps the garbage collector off its startup objects and off decoded ingest batches:
a full collection would otherwise walk ~170k long-lived objects, and a 1,000-item batch triggers several."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from app.ingest.decode import decode_batch

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import gc, sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from app.core.config import Settings
from app.main import create_app
settings = Settings(data_dir=Path(tempfile.mkdtemp()), database_url="", gc_freeze=sys.argv[1] == "on")
before = gc.get_freeze_count()
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
    print(before, gc.get_freeze_count())
"""


def _freeze_counts(setting: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, setting], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = out.stdout.split()
    return int(before), int(after)


def test_a_started_server_freezes_its_startup_objects_unless_told_not_to():
    before, after = _freeze_counts("on")
    assert before == 0 and after > 50_000  # the app's modules, routes and schemas
    assert _freeze_counts("off") == (0, 0)


def test_a_decoded_batch_is_not_tracked_by_the_garbage_collector():
    body = (
        b'{"items": [{"external_id": "a", "metadata": {"camera_id": "c1"},'
        b' "predictions": [{"model": "m", "score": 0.5}]}]}'
    )
    items = decode_batch(body, max_metadata_bytes=4096)
    assert items is not None and items[0].predictions[0].score == 0.5
    assert not gc.is_tracked(items[0]) and not gc.is_tracked(items[0].predictions[0])
