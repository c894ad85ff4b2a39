"""The detector exported to ONNX through ultralytics' own exporter, with NMS inside the graph, and the
predictor.json the cascade's onnxruntime predictor (app/client.py OnnxDetector) reads.

Offline by construction: `simplify=False` (onnxslim is not needed), auto-install off (YOLO_AUTOINSTALL), the
only requirement left is the `onnx` package, which the [train] extra installs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ml.training.common.onnx_export import ONNX_DIR, ONNX_MODEL, PREDICTOR_FILE

LETTERBOX_FILL = 114  # ultralytics' padding grey
NMS_IOU = 0.7  # ultralytics' predict default
MAX_DETECTIONS = 300


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_detector_onnx(
    yolo_cls: Any,
    weights: Path,
    artifact_dir: Path,
    *,
    image_size: int,
    score_conf: float,
    threshold: float,
    box_classes: list[str],
) -> dict[str, str]:
    """artifact_dir/onnx/model.onnx (input `images` (1, 3, size, size) RGB in [0, 1], letterboxed; output
    `output0` (1, max_det, 6): x1, y1, x2, y2 in input pixels, confidence, class index, zero rows padding)."""
    os.environ["YOLO_AUTOINSTALL"] = "False"
    from ultralytics.utils import checks

    checks.AUTOINSTALL = (
        False  # read at import: a check that finds a package missing must fail, not pip install
    )
    exported = yolo_cls(str(weights)).export(
        format="onnx",
        imgsz=image_size,
        simplify=False,
        nms=True,
        conf=score_conf,
        iou=NMS_IOU,
        max_det=MAX_DETECTIONS,
        dynamic=False,
        device="cpu",
        verbose=False,
    )
    out = Path(artifact_dir) / ONNX_DIR
    out.mkdir(parents=True, exist_ok=True)
    shutil.move(str(exported), out / ONNX_MODEL)
    predictor = {
        "format": "hardcase-onnx-detector/1",
        "model": ONNX_MODEL,
        "model_sha256": file_sha256(out / ONNX_MODEL),
        "input": "images",
        "output": "output0",
        "image_size": image_size,
        "preprocess": "RGB, letterbox to image_size (scale to fit, centred, padded with 114 grey), / 255, CHW",
        "letterbox_fill": LETTERBOX_FILL,
        "output_layout": "x1, y1, x2, y2 (input pixels), confidence, class index; NMS applied in the graph",
        "nms_iou": NMS_IOU,
        "min_confidence": score_conf,
        "box_classes": list(box_classes),
        "threshold": float(threshold),
        "score": "max box confidence in the image (0 without a box)",
        "decision": "score >= threshold",
    }
    (out / PREDICTOR_FILE).write_text(json.dumps(predictor, indent=2))
    return {"onnx": ONNX_DIR}
