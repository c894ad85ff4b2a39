"""A real Label Studio 1.23.2 drives a real Hardcase (scripts/ls_interop.py): backend connection, predictions
in Label Studio's order, annotations through its API and its webhook, Start Training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from ls_interop import default_label_studio  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("label_studio")]

EXPECTED = (
    "ML backend connected",
    "every task has Hardcase's prediction",
    "Label Studio's prediction scores, lowest first, are Hardcase's hardest first",
    "Label Studio's Data Manager sorted by prediction score lists hardest first",
    "boxes arrive in percent coordinates",
    "the update superseded it (history kept)",
    "the deletion retracted it",
    "Start Training queued a Hardcase job",
)


def test_label_studio_uses_hardcase_as_its_ml_backend_and_its_labels_reach_hardcase():
    """Every step of the interop script passes against a Label Studio installed by scripts/test.sh."""
    label_studio = default_label_studio()
    assert label_studio.exists(), (
        f"Label Studio is not installed at {label_studio}: run `bash scripts/ls_interop.sh --install-only`"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "ls_interop.py"), "--label-studio", str(label_studio)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    for step in EXPECTED:
        assert f"ok    {step}" in output, output[-4000:]
