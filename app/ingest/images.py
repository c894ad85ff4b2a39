"""Image intake: size limits, a real decode with Pillow, dimensions, decompression-bomb guard."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; the message says why."""


@dataclass
class CheckedImage:
    data: bytes
    width: int
    height: int
    image: Image.Image


def decode_base64(text: str) -> bytes:
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejected(f"not valid base64: {exc}") from exc


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    if len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes; the limit is {max_bytes}")
    if not data:
        raise ImageRejected("image is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageRejected("not a decodable image (JPEG, PNG, WebP, BMP, GIF, TIFF)") from exc
    if image.format not in ALLOWED_FORMATS:
        raise ImageRejected(f"image format {image.format} is not accepted")
    width, height = image.size
    # Checked from the header, before any pixel is decoded: a small file can declare a huge canvas.
    if width * height > max_pixels:
        raise ImageRejected(f"image is {width}x{height}; the limit is {max_pixels} pixels")
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ImageRejected(f"image data is corrupt: {exc}") from exc
    return CheckedImage(data=data, width=width, height=height, image=image)
