"""The web server process never imports the heavy ML stack (torch, transformers, peft, trl, ultralytics,
alibi-detect), and imports the scientific stack (scipy, scikit-learn, pandas, pyarrow, matplotlib) only in the
functions that use it: building the app must leave them all unimported (a lean, fast-starting web process).
The PostgreSQL driver is loaded only by an app that runs on PostgreSQL."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "torchvision", "transformers", "peft", "trl", "ultralytics", "alibi_detect", "tensorflow"]
SCIENTIFIC = ["scipy", "sklearn", "pandas", "pyarrow", "matplotlib"]
POSTGRES_DRIVER = ["psycopg"]

PROBE = f"""
import sys, tempfile
from pathlib import Path
from app.core.config import Settings
from app.main import create_app
import app.cli
tmp = Path(tempfile.mkdtemp())
create_app(Settings(data_dir=tmp, database_url=""))  # the embedded default: SQLite
app.cli.build_parser()
loaded = [m for m in {HEAVY + SCIENTIFIC + POSTGRES_DRIVER!r} if m in sys.modules]
print(",".join(loaded))
"""


@functools.cache
def _imported_by_the_web_app() -> frozenset[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return frozenset(filter(None, out.stdout.strip().split(",")))


def test_building_the_web_app_imports_no_heavy_ml_library():
    assert _imported_by_the_web_app() & set(HEAVY) == set()


def test_building_the_web_app_leaves_scipy_sklearn_pandas_pyarrow_and_matplotlib_unimported():
    assert _imported_by_the_web_app() & set(SCIENTIFIC) == set()


def test_an_app_on_sqlite_never_loads_the_postgresql_driver():
    """The embedded default (SQLite) runs without psycopg and libpq in memory (~9 MB of the idle process)."""
    assert _imported_by_the_web_app() & set(POSTGRES_DRIVER) == set()
