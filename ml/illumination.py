"""Illumination normalisation for low-light slices: an adaptive gamma on the luminance channel only.

The image is converted to YCbCr; the luminance Y (0..255) is raised to the power gamma, chosen so that the
image's mean luminance maps to TARGET_MEAN, and clipped to [MIN_GAMMA, 1] so a dark image is brightened and a
bright one is left alone; the chroma channels are untouched, so colours (orange cones) keep their hue. It is a
pure function of the pixels (PIL + numpy, no torch), applied after the resize: training, evaluation and the
client's ONNX predictor (which carries a copy, checked equal by a test) prepare each image the same way.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

METHODS = ("none", "gamma")
TARGET_MEAN = 0.5  # mean luminance (0..1) a dark image is lifted to
MIN_GAMMA = 0.3  # the strongest brightening (very dark frames would otherwise turn to noise)


def luminance_gamma(mean_luminance: float) -> float:
    """The gamma that maps `mean_luminance` (0..1) to TARGET_MEAN, within [MIN_GAMMA, 1]."""
    if mean_luminance <= 0.0 or mean_luminance >= TARGET_MEAN:
        return 1.0 if mean_luminance > 0.0 else MIN_GAMMA
    return max(MIN_GAMMA, min(1.0, math.log(TARGET_MEAN) / math.log(mean_luminance)))


def normalise_illumination(image: Image.Image, method: str) -> Image.Image:
    """`image` (RGB) with its luminance normalised by `method` ('none' returns it unchanged)."""
    if method == "none":
        return image
    if method != "gamma":
        raise ValueError(f"illumination: unknown method {method!r}; known: {', '.join(METHODS)}")
    y, cb, cr = image.convert("YCbCr").split()
    luma = np.asarray(y, dtype=np.float64) / 255.0
    gamma = luminance_gamma(float(luma.mean()))
    if gamma == 1.0:
        return image
    table = [round(255.0 * (v / 255.0) ** gamma) for v in range(256)]
    return Image.merge("YCbCr", (y.point(table), cb, cr)).convert("RGB")
