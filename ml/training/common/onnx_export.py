"""Classifiers and students exported to ONNX beside their native format, with everything a cascade needs to
score an image without Hardcase or torch: input size, normalisation, temperature, threshold, classes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ml.training.common.data import Normalisation

ONNX_DIR = "onnx"
ONNX_MODEL = "model.onnx"
PREDICTOR_FILE = "predictor.json"
OPSET = 17


class LogitsOnly(nn.Module):
    """pixel_values (n, 3, h, w) -> logits (n, classes), whatever the wrapped model returns."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values)
        return output.logits if hasattr(output, "logits") else output


def export_classifier_onnx(
    model: nn.Module,
    artifact_dir: Path,
    *,
    size: int,
    normalisation: Normalisation,
    temperature: float,
    threshold: float,
    classes: list[str],
    illumination: str = "none",
) -> dict[str, str]:
    """artifact_dir/onnx/model.onnx and predictor.json (how the client's onnxruntime predictor prepares an image
    and turns logits into a decision: softmax(logits / temperature)[1] >= threshold for two classes, the
    argmax of softmax(logits / temperature) for more)."""
    out = Path(artifact_dir) / ONNX_DIR
    out.mkdir(parents=True, exist_ok=True)
    wrapped = LogitsOnly(model).cpu().eval()
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example,),
            str(out / ONNX_MODEL),
            input_names=["pixel_values"],
            output_names=["logits"],
            dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter handles HF ViTs and the CNN without onnxscript
        )
    predictor = {
        "format": "hardcase-onnx-classifier/1",
        "model": ONNX_MODEL,
        "input": "pixel_values",
        "output": "logits",
        "image_size": size,
        "resize": "bilinear, JPEG draft decoding, RGB, exactly as in training",
        "illumination": illumination,
        "illumination_doc": "after the resize: 'gamma' raises YCbCr luminance to the power "
        "clip(log(0.5) / log(mean luminance), 0.3, 1) through a 256-entry table (ml/illumination.py)",
        "image_mean": list(normalisation.mean),
        "image_std": list(normalisation.std),
        "temperature": float(temperature),
        "threshold": float(threshold),
        "positive_class_index": 1,
        "classes": list(classes),
        "score": "softmax(logits / temperature)[positive_class_index]",
        "decision": "score >= threshold",
    }
    if len(classes) > 2:
        predictor |= {
            "threshold": None,
            "positive_class_index": None,
            "score": "softmax(logits / temperature): one probability per class",
            "decision": "argmax",
        }
    (out / PREDICTOR_FILE).write_text(json.dumps(predictor, indent=2))
    return {"onnx": ONNX_DIR}
