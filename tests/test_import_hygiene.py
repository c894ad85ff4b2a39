"""The web server process never imports the heavy ML stack (torch, transformers, peft, trl, ultralytics,
alibi-detect): building the app and serving every page and API route must leave them unimported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "torchvision", "transformers", "peft", "trl", "ultralytics", "alibi_detect", "tensorflow"]

PROBE = f"""
import sys, tempfile
from pathlib import Path
from app.core.config import Settings
from app.main import create_app
import app.cli
tmp = Path(tempfile.mkdtemp())
create_app(Settings(data_dir=tmp))
app.cli.build_parser()
loaded = [m for m in {HEAVY!r} if m in sys.modules]
print(",".join(loaded))
"""


def test_building_the_web_app_imports_no_heavy_ml_library():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"web process imported: {out.stdout.strip()}"
