"""File helpers shared by the exporters: stable file names, image links and image sizes."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ml.dataset import DatasetInfo, DatasetRecord, DatasetVersionDir, Split

# Tools that read these exports (ultralytics, HF imagefolder, COCO users) call the final split "test".
SPLIT_DIRS: dict[Split, str] = {"train": "train", "val": "val", "holdout": "test"}


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FORMAT_SUFFIXES = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
}


# Leading bytes of the formats PIL names in FORMAT_SUFFIXES: read 12 bytes rather than open the image with PIL
# (an export names every image of the version).
_MAGIC_SUFFIXES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def image_suffix(path: Path | str, head: bytes | None = None) -> str:
    """The file's image suffix; content-addressed blobs have none, so it comes from the image header
    (ultralytics and imagefolder readers pick images by suffix). `head`: the file's first 12 bytes, when the
    caller has read them already."""
    text = os.fspath(path)
    suffix = os.path.splitext(text)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return suffix
    if head is None:
        descriptor = os.open(text, os.O_RDONLY)  # not a buffered file object: an export names every image
        try:
            head = os.read(descriptor, 12)
        finally:
            os.close(descriptor)
    for magic, suffix in _MAGIC_SUFFIXES:
        if head.startswith(magic):
            return suffix
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    from PIL import Image

    with Image.open(text) as image:
        return FORMAT_SUFFIXES.get(image.format or "", ".jpg")


class ExportFiles(Protocol):
    """Where an export puts its images and its small per-image files (YOLO's label files). Written as a folder
    (`IN_FOLDER`, what training workers read) they are links and files; an archive puts them straight into
    the zip instead, with no file made and removed for each of them."""

    def add_image(self, source: str, folder: str, stem: str) -> str:
        """The image file `source` in the export's `folder` as `stem` plus its image suffix (content-addressed
        blobs have none: it comes from the image's first bytes); returns that file name."""

    def write(self, target: str, data: bytes) -> None:
        """A small file of `data` at the export's path `target`."""


class FolderFiles:
    """Into the export folder: images linked (`link_image`), files written; folders made as needed."""

    def add_image(self, source: str, folder: str, stem: str) -> str:
        name = stem + image_suffix(source)
        link_image(source, os.path.join(folder, name))
        return name

    def write(self, target: str, data: bytes) -> None:
        try:
            fh = open(target, "wb")  # noqa: SIM115 (closed below; the folder is made when the open fails)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fh = open(target, "wb")  # noqa: SIM115
        with fh:
            fh.write(data)


IN_FOLDER = FolderFiles()


def link_image(source: Path | str, target: Path | str) -> None:
    """Hard link, else symlink, else copy: an export should not duplicate gigabytes of images. The target's
    folder is made when a link into it first fails, not checked before every image."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(os.fspath(target)), exist_ok=True)
        _link_into_folder(Path(source), Path(target))
    except OSError:
        _link_into_folder(Path(source), Path(target))


def _link_into_folder(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
        return
    except FileExistsError:
        target.unlink()
        return _link_into_folder(source, target)
    except OSError:
        pass
    try:
        target.symlink_to(source.resolve())
    except OSError:
        shutil.copy2(source, target)


def json_bytes(value: Any, *, sorted_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON, by msgspec: eight times faster than `json.dumps`, which was a third of a large
    JSON export's time (NaN and infinities become null: they are not JSON)."""
    return msgspec.json.encode(value, order="sorted" if sorted_keys else None)


def resolved(path: Path | str) -> str:
    """An absolute path with every folder resolved (`Path.resolve` on the folder), each folder once, on
    strings: an export resolves every image of the version, and pathlib objects and one lstat per image were
    a sixth of it. A symlinked image file keeps its own name (it reads the same bytes as its target)."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return str(Path(text).resolve())
    folder, name = os.path.split(text)
    return (
        os.path.join(_resolved_folder(folder), name)
        if name not in ("", ".", "..")
        else str(Path(text).resolve())
    )


@functools.lru_cache(maxsize=65_536)
def _resolved_folder(folder: str) -> str:
    parent, name = os.path.split(folder)
    if not name or name in (".", "..") or parent == folder or name in _symlinks_in(parent):
        return str(Path(folder).resolve())
    return os.path.join(_resolved_folder(parent), name)


@functools.lru_cache(maxsize=4_096)
def _symlinks_in(folder: str) -> frozenset[str]:
    """The names of the symlinks in `folder`, from one listing (the entries' types, no stat each): the blob
    store's 65,536 image folders sit in 256 parents, and an lstat per image folder was a tenth of an export."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except OSError:
        return frozenset()


def image_size(dataset: DatasetVersionDir, record: DatasetRecord) -> tuple[int, int]:
    """(width, height) from the metadata when the server stored it, else from the image header."""
    width, height = record.metadata.get("width"), record.metadata.get("height")
    if width and height:
        return int(width), int(height)
    from PIL import Image

    with Image.open(dataset.image_path(record)) as image:
        return image.size


def box_class_names(info: DatasetInfo) -> list[str]:
    return list(info.box_classes or info.classes)


def label_name(info: DatasetInfo, record: DatasetRecord) -> str | None:
    return None if record.label is None else info.classes[record.label]


def has_box_annotation(info: DatasetInfo, record: DatasetRecord) -> bool:
    """True when the human boxes are complete: boxes drawn, or a labelled image known to hold no object.

    A binary positive without boxes was labelled at image level only; training a detector on it as an
    empty image would teach it to miss the very objects it holds.
    """
    if record.boxes:
        return True
    return record.label is not None and (info.kind == "detection" or record.label == 0)
