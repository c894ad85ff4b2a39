"""Slice predicates on item metadata and the low-light illumination step, and the client's copies of both."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app import client
from ml.illumination import MIN_GAMMA, luminance_gamma, normalise_illumination
from ml.slices import slice_label, slice_matches, validate_slice

SPECS = [
    {"key": "is_night", "value": True},
    {"key": "camera_id", "value": "cam7"},
    {"key": "lux", "min": 0, "max": 10},
    {"key": "lux", "min": 10},
    {"key": "speed", "max": 30.5},
    {"key": "lane", "value": 2},
]
METADATA = [
    {"is_night": True, "camera_id": "cam7", "lux": 3, "speed": 30.5, "lane": 2},
    {"is_night": "true", "camera_id": "cam8", "lux": 10.0, "speed": 12, "lane": 2.0},
    {"is_night": False, "lux": "dark", "speed": True, "lane": "2"},
    {},
]


def test_a_slice_is_a_key_with_a_value_or_a_numeric_range():
    assert validate_slice({"key": "is_night", "value": True, "min": None}) == {
        "key": "is_night",
        "value": True,
    }
    assert validate_slice({"key": "lux", "min": 0, "max": 10}) == {"key": "lux", "min": 0, "max": 10}
    for bad, field in [
        ({"key": "", "value": 1}, "key"),
        ({"key": "a b", "value": 1}, "key"),
        ({"key": "lux"}, "value"),
        ({"key": "lux", "value": 1, "min": 0}, "value"),
        ({"key": "lux", "min": 5, "max": 5}, "max"),
        ({"key": "lux", "min": "low"}, "min"),
        ({"key": "lux", "min": float("nan")}, "min"),
        ({"key": "lux", "value": [1]}, "value"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            validate_slice(bad)


def test_slice_membership_compares_booleans_loosely_numbers_numerically_and_ranges_half_open():
    night, cam7, dark, bright, slow, lane2 = SPECS
    assert [slice_matches(night, m) for m in METADATA] == [True, True, False, False]
    assert [slice_matches(cam7, m) for m in METADATA] == [True, False, False, False]
    assert [slice_matches(dark, m) for m in METADATA] == [True, False, False, False]
    assert [slice_matches(bright, m) for m in METADATA] == [False, True, False, False]
    assert [slice_matches(slow, m) for m in METADATA] == [False, True, False, False]
    assert [slice_matches(lane2, m) for m in METADATA] == [True, True, True, False]
    assert slice_label(night) == "is_night = true" and slice_label(dark) == "0 <= lux < 10"


def test_the_clients_slice_matcher_agrees_with_ml_slices():
    for spec in SPECS:
        for metadata in METADATA:
            assert client.slice_matches(spec, metadata) == slice_matches(spec, metadata), (spec, metadata)


def dark_photo(level: int = 40) -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(level, 12, size=(32, 32, 3)), 0, 255).astype(np.uint8)
    pixels[8:16, 8:16] = (level + 40, level // 2, 0)  # a dim orange cone
    return Image.fromarray(pixels)


def mean_luminance(image: Image.Image) -> float:
    return float(np.asarray(image.convert("YCbCr"))[..., 0].mean() / 255.0)


def test_gamma_lifts_a_dark_image_toward_mid_grey_and_keeps_its_chroma():
    dark = dark_photo()
    lifted = normalise_illumination(dark, "gamma")
    assert mean_luminance(dark) < 0.2 and 0.35 < mean_luminance(lifted) <= 0.55
    before, after = np.asarray(dark.convert("YCbCr")), np.asarray(lifted.convert("YCbCr"))
    assert np.abs(before[..., 1:].astype(int) - after[..., 1:].astype(int)).max() <= 3  # rounding only


def test_gamma_leaves_a_bright_image_and_none_leaves_any_image_unchanged():
    bright = dark_photo(level=180)
    assert normalise_illumination(bright, "gamma") is bright
    dark = dark_photo()
    assert normalise_illumination(dark, "none") is dark
    assert (
        luminance_gamma(0.6) == 1.0
        and luminance_gamma(0.0) == MIN_GAMMA
        and luminance_gamma(1e-6) == MIN_GAMMA
    )
    with pytest.raises(ValueError, match="^illumination:"):
        normalise_illumination(dark, "clahe")


def test_the_clients_illumination_step_is_pixel_identical_to_ml_illumination():
    for level in (5, 40, 90, 200):
        image = dark_photo(level)
        ours = np.asarray(normalise_illumination(image, "gamma"))
        theirs = np.asarray(client.normalise_illumination(image, "gamma"))
        assert np.array_equal(ours, theirs)
