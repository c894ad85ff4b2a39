"""The cascade runs the promoted model without Hardcase's code or torch: HardcaseClient.production_model()
downloads the artifact (sha256 checked, cached per version) and scores images on onnxruntime exactly as the
registry scored the holdout, in a clean venv holding only the client's dependencies and app/client.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.client import HardcaseClient, ModelError
from app.registry.models import ModelVersion
from tests.utils.factories import make_key, make_project
from tests.utils.labeled_data import client_as, seed_labeled_items, stored_holdout
from workers.training import execute_job

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CLIENT_BASE_DEPENDENCIES = ("httpx", "numpy", "pillow")  # what app/client.py imports besides onnxruntime

TINY_DISTILL = {
    "max_steps": 4,
    "batch_size": 8,
    "eval_every": 4,
    "checkpoint_every": 4,
    "image_size": 32,
    "tiny_cnn_width": 8,
    "device": "cpu",
    "threshold_grid": 200,
}
PREDICT_IN_A_FRESH_PROCESS = """
import json, sys
from app.client import OnnxPredictor
predictor = OnnxPredictor.load(sys.argv[1])
paths = json.loads(sys.argv[2])
print(json.dumps({"scores": predictor.scores(paths).tolist(), "decisions": predictor.predict(paths),
                  "heavy": [m for m in ("torch", "torchvision", "transformers") if m in sys.modules]}))
"""


def client_requirements() -> list[str]:
    """The client's dependencies as pyproject declares them: its base ones and the [client] extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = [
        d
        for d in project["dependencies"]
        if d.split(">")[0].split("<")[0].split("=")[0] in CLIENT_BASE_DEPENDENCIES
    ]
    return [*base, *project["optional-dependencies"]["client"]]


@pytest.fixture(scope="session")
def clean_client_python(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh venv with only the client's dependencies (no torch, no Hardcase), and a folder holding nothing
    of Hardcase but app/client.py: what a cascade machine has."""
    root = tmp_path_factory.mktemp("cascade")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *client_requirements()],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    package = root / "code" / "app"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copyfile(REPO / "app" / "client.py", package / "client.py")
    return python, root / "code"


class AppTransport(httpx.BaseTransport):
    """Sends the client's requests to the app in-process and counts them."""

    def __init__(self, app) -> None:
        self.client, self.paths = TestClient(app), []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = self.client.request(
            request.method,
            request.url.raw_path.decode(),
            content=request.content,
            headers=dict(request.headers),
        )
        return httpx.Response(response.status_code, content=response.content, headers=response.headers)


def promoted_distill_model(app, db, sessions, settings) -> ModelVersion:
    project = make_project(db, "roadwork")
    admin, annotator = client_as(app, db, "admin")
    seed_labeled_items(db, app.state.blobs, project, annotator, 32)
    assert admin.post("/api/v1/projects/roadwork/datasets", json={}).status_code == 201
    body = {"kind": "distill", "dataset_version": 1, "config": TINY_DISTILL}
    job_id = admin.post("/api/v1/projects/roadwork/jobs", json=body).json()["id"]
    assert (
        execute_job(job_id, sessions=sessions, settings=settings, worker_id="w", task_id="t") == "succeeded"
    )
    promote = {"force": True, "reason": "test holdout is small"}
    assert admin.post("/api/v1/projects/roadwork/models/1/promote", json=promote).status_code == 200
    with sessions() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))


def test_the_promoted_model_reproduces_the_registry_holdout_scores_on_onnxruntime_in_a_clean_venv(
    app, db, sessions, settings, tmp_path, clean_client_python
):
    model = promoted_distill_model(app, db, sessions, settings)
    assert model.files["onnx"] == "onnx"
    expected = dict(stored_holdout(sessions, app.state.blobs, model.id))
    assert len(expected) >= 4
    transport = AppTransport(app)
    key = make_key(db, scopes=["models"])
    with HardcaseClient("http://hardcase", api_key=key, project="roadwork", transport=transport) as client:
        predictor = client.production_model(cache_dir=tmp_path / "cache")
        assert predictor.version == 1 and predictor.threshold == pytest.approx(model.threshold)
        client.production_model(cache_dir=tmp_path / "cache")  # cached: no second download
        with pytest.raises(ModelError, match="sha256"):
            client._download_artifact(
                {**client.production_info(), "artifact_sha256": "0" * 64}, tmp_path / "tampered"
            )
    assert sum(path.endswith("/artifact") for path in transport.paths) == 2  # first load + the tampered try

    paths = list(expected)
    onnx_dir = next((tmp_path / "cache").rglob("predictor.json")).parent
    python, code = clean_client_python
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(
        [str(python), "-c", PREDICT_IN_A_FRESH_PROCESS, str(onnx_dir), json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=code,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["heavy"] == []  # the clean venv has neither torch nor transformers
    np.testing.assert_allclose(result["scores"], [expected[p] for p in paths], atol=1e-4)
    assert result["decisions"] == [expected[p] >= model.threshold for p in paths]
    np.testing.assert_allclose(predictor.scores(paths), result["scores"], atol=1e-9)
