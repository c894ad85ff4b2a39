"""The label page's image proxy: referenced images fetched server-side into a bounded on-disk cache, so the
browser only ever loads images from Hardcase itself."""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import suppress
from pathlib import Path

from app.core.config import Settings
from app.core.errors import ApiError
from app.ingest.images import ImageRejected, check_image
from app.ingest.remote import RemoteForbidden, RemoteRefused, fetch_remote_image


class ImageCache:
    """Files named by the sha256 of their URL; the least recently served go first past `max_bytes`."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes

    def path_for(self, url: str) -> Path:
        return self.root / hashlib.sha256(url.encode()).hexdigest()

    def get(self, url: str) -> Path | None:
        path = self.path_for(url)
        try:
            os.utime(path)  # recently served: evicted last
        except FileNotFoundError:
            return None
        return path

    def put(self, url: str, data: bytes) -> Path | None:
        if len(data) > self.max_bytes:
            return None
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_for(url)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        self.evict(keep=path)
        return path

    def evict(self, keep: Path | None = None) -> None:
        entries = []
        for path in self.root.iterdir():
            with suppress(FileNotFoundError):  # another request may evict the same file
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with suppress(FileNotFoundError):
                path.unlink()
            total -= size

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir()) if self.root.exists() else 0


def proxied_image(url: str, settings: Settings) -> Path | bytes:
    """The referenced image from the cache, else fetched now (checked to be an image: never served raw)."""
    cache = ImageCache(settings.image_cache_dir, settings.image_cache_bytes)
    cached = cache.get(url)
    if cached is not None:
        return cached
    try:
        data = fetch_remote_image(url, settings)
        check_image(data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    except RemoteForbidden as exc:
        raise ApiError(403, "image", str(exc)) from exc
    except (RemoteRefused, ImageRejected) as exc:
        raise ApiError(502, "image", str(exc)) from exc
    return cache.put(url, data) or data
