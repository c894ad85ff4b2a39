"""Image intake: size limits, a real decode with Pillow, dimensions, decompression-bomb guard, perceptual hash."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from ml.scoring.diversity import perceptual_hash

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}
NOT_AN_IMAGE = "not a decodable image (JPEG, PNG, WebP, BMP, GIF, TIFF)"

log = logging.getLogger("hardcase.ingest")


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why."""


@dataclass
class CheckedImage:
    data: bytes
    width: int
    height: int
    image: Image.Image
    phash: int  # signed 64-bit, as the column stores it


def decode_base64(text: str) -> bytes:
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(f"not valid base64: {exc}") from exc


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Decodes and hashes the image; any failure of the decoder is this item's ImageRejected, never the batch's."""
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise ImageRejected("image is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises, past twice its own limit) on huge canvases; our own limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(data, max_pixels=max_pixels)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"image declares too many pixels; the limit is {max_pixels}") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, struct.error...
        log.info("image rejected by the decoder: %r", exc)
        unidentified = isinstance(exc, UnidentifiedImageError)
        raise ImageRejected(NOT_AN_IMAGE if unidentified else "image data is corrupt") from exc


def _decode(data: bytes, *, max_pixels: int) -> CheckedImage:
    image = Image.open(io.BytesIO(data))
    if image.format not in ALLOWED_FORMATS:
        raise ImageRejected(f"image format {image.format} is not accepted")
    width, height = image.size
    # Checked from the header, before any pixel is decoded: a small file can declare a huge canvas.
    if width * height > max_pixels:
        raise ImageRejected(f"image is {width}x{height}; the limit is {max_pixels} pixels")
    image.load()
    return CheckedImage(
        data=data, width=width, height=height, image=image, phash=_signed64(perceptual_hash(image))
    )


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value
