"""Content-addressed image store: an image sent twice is stored once, under its SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

BLOB_SCHEME = "blob:"


class BlobStore:
    """A local (or shared-volume) directory `ab/cd/<sha256>`; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prefix = os.path.join(os.fspath(root), "")  # "<root>/": blob paths are built by concatenation

    def path_for(self, sha256: str) -> Path:
        return Path(self.path_text(sha256))

    def path_text(self, sha256: str) -> str:
        """Where the blob lives, as a string: `ab/cd/<sha256>` under the root (an export asks for every image of
        a version, and pathlib objects cost more than the lookups)."""
        return f"{self._prefix}{sha256[:2]}{os.sep}{sha256[2:4]}{os.sep}{sha256}"

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return sha

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()


def blob_uri(sha256: str) -> str:
    return BLOB_SCHEME + sha256


def sha_from_uri(uri: str | None) -> str | None:
    return uri[len(BLOB_SCHEME) :] if uri and uri.startswith(BLOB_SCHEME) else None


def stored_sha(image_uri: str | None, sha256: str | None) -> str | None:
    """The blob holding an item's image: its own upload, or the copy a worker fetched from its reference."""
    return sha_from_uri(image_uri) or sha256
