"""The built-in student: a small CNN that saves and reloads without transformers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

WEIGHTS_FILE = "student.pt"
CONFIG_FILE = "student.json"


class TinyCNN(nn.Module):
    """Three conv blocks (width, 2·width, 4·width), global average pooling, a linear head."""

    def __init__(self, num_labels: int = 2, width: int = 32) -> None:
        super().__init__()
        self.num_labels, self.width = num_labels, width
        blocks, channels = [], 3
        for out in (width, 2 * width, 4 * width):
            blocks += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            channels = out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_labels)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(pixel_values))


def save_tiny_cnn(model: TinyCNN, path: Path, preprocessing: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / WEIGHTS_FILE)
    config = {
        "architecture": "tiny-cnn",
        "num_labels": model.num_labels,
        "width": model.width,
        **preprocessing,
    }
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return path


def load_tiny_cnn(path: Path) -> tuple[TinyCNN, dict]:
    """The student in eval mode and its preprocessing (image_size, image_mean, image_std)."""
    config = json.loads((path / CONFIG_FILE).read_text())
    model = TinyCNN(num_labels=config["num_labels"], width=config["width"])
    model.load_state_dict(torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval(), config
