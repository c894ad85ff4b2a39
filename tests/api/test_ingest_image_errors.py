"""Every way an image can fail to decode is that item's error (207); the rest of the batch is stored."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from sqlalchemy import select

from app.ingest.models import Item
from tests.utils.factories import b64, item, make_key, make_project, png_bytes

URL = "/api/v1/projects/roadwork/predictions"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims a canvas far past Pillow's own bomb limit."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


BAD_IMAGES = {
    "decompression bomb": png_declaring(40_000, 40_000),
    "truncated": png_bytes(64, 64)[:60],
    "not an image": b"%PDF-1.4 definitely not pixels" * 10,
    "corrupt pixel data": png_bytes(64, 64)[:33] + _chunk(b"IDAT", b"garbage") + _chunk(b"IEND", b""),
    "png signature only": b"\x89PNG\r\n\x1a\n",
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_an_undecodable_image_is_an_item_error_and_the_rest_of_the_batch_is_kept(client, db, kind):
    make_project(db)
    key = make_key(db)
    batch = {
        "items": [
            item("good-before", image={"base64": b64(png_bytes())}),
            item("bad", image={"base64": b64(BAD_IMAGES[kind])}),
            item("good-after"),
        ]
    }
    response = client.post(URL, json=batch, headers={"X-API-Key": key})
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["accepted"] == 2
    [error] = body["errors"]
    assert (error["index"], error["external_id"], error["field"]) == (1, "bad", "items[1].image")
    assert "Error" not in error["message"]  # says what is wrong with the image, not which exception
    db.rollback()
    stored = set(db.scalars(select(Item.external_id)))
    assert stored == {"good-before", "good-after"}


def test_a_bomb_uploaded_as_a_multipart_file_is_an_item_error(client, db):
    make_project(db)
    key = make_key(db)
    batch = {"items": [item("bomb", image={"file": "f0"}), item("fine")]}
    response = client.post(
        URL,
        data={"batch": json.dumps(batch)},
        files={"f0": ("bomb.png", png_declaring(40_000, 40_000), "image/png")},
        headers={"X-API-Key": key},
    )
    assert response.status_code == 207, response.text
    assert [e["external_id"] for e in response.json()["errors"]] == ["bomb"]
