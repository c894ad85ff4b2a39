"""The `yolo` job kind: ultralytics trained offline on real roadwork boxes, scored per image, cancelled, resumed."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest

from ml.training.reporting import JobCancelled, MemoryReporter
from ml.training.yolo.config import YoloConfig
from ml.training.yolo.trainer import run
from tests.ml.conftest import REPO_ROOT, write_roadwork_dataset

# 27 train images at batch 8: 4 batches per epoch.
TINY = {"model": "yolov8n.yaml", "image_size": 64, "epochs": 2, "batch": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_roadwork_dataset(tmp_path_factory.mktemp("yolo_dataset") / "version")


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """One training run with every outgoing connection refused and recorded."""
    attempts: list = []

    def refuse(sock, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    reporter = MemoryReporter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(subprocess, "run", _no_downloads(subprocess.run, attempts))
        result = run(YoloConfig(**TINY), dataset, reporter, tmp_path_factory.mktemp("yolo_job"))
    return result, reporter, attempts


def _no_downloads(real_run, attempts: list):
    def guarded(cmd, *args, **kwargs):
        if cmd and str(cmd[0]) in ("curl", "wget"):
            attempts.append(cmd)
            raise OSError("downloads disabled in this test")
        return real_run(cmd, *args, **kwargs)

    return guarded


def test_training_never_touches_the_network(trained):
    _, _, attempts = trained
    assert attempts == []


def test_training_writes_weights_data_threshold_metrics_and_model_card(trained):
    result, _, _ = trained

    for role, name in result.files.items():
        assert (result.artifact_dir / name).exists(), role
    assert set(result.files) == {"weights", "data", "threshold", "metrics", "model_card", "onnx"}
    assert (result.artifact_dir / "onnx" / "model.onnx").is_file()
    assert json.loads((result.artifact_dir / "threshold.json").read_text())["threshold"] == result.threshold
    assert json.loads((result.artifact_dir / "metrics.json").read_text()) == pytest.approx(result.metrics)
    assert f"{result.threshold:.4f}" in (result.artifact_dir / "README.md").read_text()


def test_training_reports_detection_and_image_level_metrics_on_the_holdout(trained, dataset):
    result, _, _ = trained

    assert {"map50", "map50_95", "mcc", "f1", "auroc", "val_mcc"} <= set(result.metrics)
    assert 0.0 <= result.metrics["map50_95"] <= result.metrics["map50"] <= 1.0
    assert any(key.startswith("map50/") for key in result.metrics)
    assert result.metrics["n"] == len(dataset.records("holdout"))
    assert -1.0 <= result.metrics["mcc"] <= 1.0 and 0.0 <= result.threshold <= 1.0


def test_holdout_scores_cover_every_holdout_image_as_max_box_confidence(trained, dataset):
    result, _, _ = trained

    assert set(result.holdout_scores) == {r.item_id for r in dataset.records("holdout")}
    assert all(0.0 <= score <= 1.0 for score in result.holdout_scores.values())


def test_training_streams_per_batch_progress_and_per_epoch_losses_and_map(trained):
    _, reporter, _ = trained

    assert reporter.steps[-1] == (8, 8)
    assert [step for step, _ in reporter.history] == [1, 2]
    for _, values in reporter.history:
        assert {"box_loss", "cls_loss", "map50", "map50_95"} <= set(values)
        assert all(math.isfinite(v) for v in values.values())


def test_a_cancelled_job_stops_mid_epoch_and_its_retry_resumes_from_the_last_epoch(dataset, tmp_path):
    cancelling = MemoryReporter(cancel_after_step=5)  # first batch of epoch 2
    with pytest.raises(JobCancelled):
        run(YoloConfig(**TINY), dataset, cancelling, tmp_path)
    assert cancelling.steps[-1] == (5, 8)
    assert not (tmp_path / "artifacts").exists()
    assert (tmp_path / "checkpoints" / "weights" / "last.pt").is_file()

    retry = MemoryReporter()
    result = run(YoloConfig(**TINY), dataset, retry, tmp_path)
    assert any(line.startswith("resuming from") for line in retry.lines)
    assert retry.steps[0] == (5, 8)  # epoch 1 is not trained again
    assert [step for step, _ in retry.history] == [2]
    assert (result.artifact_dir / "best.pt").is_file()


def test_a_hub_checkpoint_name_is_refused_instead_of_downloaded(dataset, tmp_path):
    with pytest.raises(ValueError, match="model: 'yolov8n.pt' is not a local checkpoint"):
        run(YoloConfig(**{**TINY, "model": "yolov8n.pt"}), dataset, MemoryReporter(), tmp_path)


def test_asking_for_cuda_without_a_gpu_fails_with_a_clear_error(dataset, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    with pytest.raises(ValueError, match="device: 'cuda' was asked for"):
        run(YoloConfig(**{**TINY, "device": "cuda"}), dataset, MemoryReporter(), tmp_path)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"model": "yolov8n"}, "model"),
        ({"image_size": 100}, "image_size"),
        ({"epochs": 0}, "epochs"),
        ({"mosaic": 1.5}, "mosaic"),
        ({"device": "tpu"}, "device"),
        ({"optimizer": "Lion"}, "optimizer"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(values, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        YoloConfig(**values)


def test_job_catalogue_builds_the_yolo_config_without_importing_torch_or_ultralytics():
    code = (
        "import sys; from ml.training.kinds import build_config, config_fields; "
        "config = build_config('yolo', {'epochs': 3, 'model': 'yolo11n.yaml'}); "
        "assert config.epochs == 3 and all(f['help'] for f in config_fields('yolo')); "
        "assert not {'torch', 'ultralytics'} & set(sys.modules), 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_a_local_checkpoint_is_fine_tuned_further(trained, dataset, tmp_path):
    result, _, _ = trained
    config = YoloConfig(**{**TINY, "model": str(result.artifact_dir / "best.pt"), "epochs": 1})
    reporter = MemoryReporter()

    tuned = run(config, dataset, reporter, tmp_path)
    assert reporter.lines[0].startswith(f"training {config.model}")
    assert set(tuned.holdout_scores) == set(result.holdout_scores)


def test_the_detector_is_exported_to_onnx_by_ultralytics_and_runs_on_onnxruntime(trained, dataset):
    """best.pt is exported by ultralytics (offline, NMS in the graph) beside the .pt with its sha256; onnxruntime
    runs it on a real photo and the client's OnnxDetector gives boxes and image scores close to the .pt's."""
    import hashlib

    import numpy as np
    import onnxruntime

    from app.client import OnnxDetector

    result, _, _ = trained
    assert result.files["onnx"] == "onnx" and result.files["weights"] == "best.pt"
    folder = result.artifact_dir / "onnx"
    config = json.loads((folder / "predictor.json").read_text())
    assert config["model_sha256"] == hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest()
    assert config["threshold"] == pytest.approx(result.threshold)

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    size = TINY["image_size"]
    [output] = session.run(None, {"images": np.zeros((1, 3, size, size), dtype=np.float32)})
    assert output.shape == (1, 300, 6)

    detector = OnnxDetector.load(folder)
    holdout = [r for r in dataset.records("holdout") if r.item_id in result.holdout_scores]
    images = [dataset.image_path(r) for r in holdout]
    found = detector.detections(images)
    for boxes in found:
        for box in boxes:
            x1, y1, x2, y2 = box["box"]
            assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1 and box["class"] in detector.classes
    scores = detector.scores(images)
    # same weights; ultralytics' own letterbox (cv2, rectangular) differs slightly from the square PIL one
    np.testing.assert_allclose(scores, [result.holdout_scores[r.item_id] for r in holdout], atol=0.05)
    assert detector.predict(images) == [bool(s >= result.threshold) for s in scores]
