"""A small typed client for the inference cascade: batching, retries with backoff, idempotent resend.

    from app.client import HardcaseClient
    with HardcaseClient("http://hardcase:8000", api_key="hc_...", project="roadwork") as client:
        summary = client.send(items)   # items: dicts in the ingestion format (see README)

Resending is always safe: items are keyed by external_id and predictions by (model, model_version).

The promoted model, run by the cascade without Hardcase or torch (needs numpy, pillow and onnxruntime):

    model = client.production_model()      # downloaded once per version, sha256-checked, cached
    model.scores(["frame.jpg"])            # P(positive) exactly as the registry scored its holdout
    model.predict(["frame.jpg"])           # score >= the model's threshold

A multiclass model (more than two classes) has no threshold: `scores` returns the class probabilities
(n, K) in the order of `model.classes`, `predict` the argmax class names.

With slice specialists promoted, production_model() returns a RoutedPredictor: given each image's metadata
(`scores(images, metadata=[{"is_night": True}, ...])`) it runs the specialist of the first matching slice and
the generalist for everything else.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class IngestError(RuntimeError):
    """The server refused a batch for a reason a retry will not fix (4xx other than 429)."""

    def __init__(self, status_code: int, body: Any) -> None:
        super().__init__(f"HTTP {status_code}: {body}")
        self.status_code, self.body = status_code, body


@dataclass
class SendSummary:
    batches: int = 0
    items_created: int = 0
    predictions_created: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, body: dict[str, Any], offset: int) -> None:
        self.batches += 1
        self.items_created += body.get("items_created", 0)
        self.predictions_created += body.get("predictions_created", 0)
        self.errors += [{**e, "index": e["index"] + offset} for e in body.get("errors", [])]


class HardcaseClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        project: str,
        batch_size: int = 500,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.project, self.batch_size = project, batch_size
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._http = httpx.Client(
            base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> HardcaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, items: Iterable[dict[str, Any]]) -> SendSummary:
        """Sends items in batches; per-item rejections are collected in the summary, not raised."""
        summary = SendSummary()
        offset = 0
        for batch in _batches(items, self.batch_size):
            summary.add(self.send_batch(batch), offset)
            offset += len(batch)
        return summary

    def send_batch(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        url = f"/api/v1/projects/{self.project}/predictions"
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.post(url, json={"items": batch})
            except httpx.TransportError:
                if attempt == self.max_retries:
                    raise
            else:
                if response.status_code in (201, 207, 422) and "received" in response.json():
                    return response.json()
                if response.status_code not in RETRYABLE_STATUS or attempt == self.max_retries:
                    raise IngestError(response.status_code, _json_or_text(response))
            time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def production_info(self) -> dict[str, Any]:
        """The production model's registry entry: version, threshold, metrics, artifact URL and sha256."""
        response = self._http.get(f"/api/v1/projects/{self.project}/models/production")
        if response.status_code != 200:
            raise IngestError(response.status_code, _json_or_text(response))
        return response.json()

    def production_model(
        self, cache_dir: str | os.PathLike | None = None
    ) -> OnnxPredictor | OnnxDetector | RoutedPredictor:
        """The promoted model as an onnxruntime predictor with its threshold and preprocessing applied; with
        slice specialists promoted, a RoutedPredictor holding the generalist and each slice's specialist.

        Artifacts are downloaded once per version into `cache_dir` (default ~/.cache/hardcase) and checked
        against the registry's sha256; a YOLO detector comes back as an OnnxDetector (boxes after NMS); a model
        without an ONNX export (VLM adapters) raises ModelError."""
        info = self.production_info()
        cache = Path(cache_dir or Path.home() / ".cache" / "hardcase")
        generalist = self._predictor(info, cache)
        routes = info.get("routes") or []
        if not routes:
            return generalist
        specialists = [(route["slice"], self._predictor(route, cache)) for route in routes]
        return RoutedPredictor(default=generalist, routes=specialists)

    def _predictor(self, info: dict[str, Any], cache: Path) -> OnnxPredictor | OnnxDetector:
        root = cache / self.project / f"v{info['version']}"
        folder = root / info["artifact_sha256"]
        if not (folder / ".complete").is_file():
            self._download_artifact(info, folder)
        onnx_dir = next((p.parent for p in folder.rglob(PREDICTOR_FILE)), None)
        if onnx_dir is None:
            raise ModelError(f"{info['name']} v{info['version']} ({info['kind']}) has no ONNX export to run")
        if json.loads((onnx_dir / PREDICTOR_FILE).read_text()).get("format", "").startswith(DETECTOR_FORMAT):
            return OnnxDetector.load(onnx_dir, version=info["version"], name=info["name"])
        return OnnxPredictor.load(onnx_dir, version=info["version"], name=info["name"])

    def _download_artifact(self, info: dict[str, Any], folder: Path) -> None:
        response = self._http.get(info["artifact_url"])
        if response.status_code != 200:
            raise IngestError(response.status_code, _json_or_text(response))
        digest = hashlib.sha256(response.content).hexdigest()
        if digest != info["artifact_sha256"]:
            raise ModelError(
                f"artifact sha256 {digest} does not match the registry's {info['artifact_sha256']}"
            )
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(folder)
        (folder / ".complete").write_text(digest)


class ModelError(RuntimeError):
    """The promoted model cannot be run here (tampered download, or no ONNX export)."""


PREDICTOR_FILE = "predictor.json"
DETECTOR_FORMAT = "hardcase-onnx-detector/"


@dataclass
class OnnxModel:
    """An exported model folder (predictor.json naming the .onnx file, its inputs and decision) on
    onnxruntime's CPU provider; the subclasses add what the model's kind computes."""

    session: Any
    config: dict[str, Any]
    version: int | None = None
    name: str = ""

    @classmethod
    def load(cls, onnx_dir: str | os.PathLike, **info: Any) -> Self:
        import onnxruntime

        folder = Path(onnx_dir)
        config = json.loads((folder / PREDICTOR_FILE).read_text())
        session = onnxruntime.InferenceSession(
            str(folder / config["model"]), providers=["CPUExecutionProvider"]
        )
        return cls(session, config, **info)


@dataclass
class OnnxPredictor(OnnxModel):
    """A promoted classifier on onnxruntime: the training preprocessing, temperature and threshold applied."""

    @property
    def multiclass(self) -> bool:
        """More than two classes: the argmax decides, there is no threshold."""
        return self.config.get("decision") == "argmax" or len(self.config["classes"]) > 2

    @property
    def threshold(self) -> float | None:
        return None if self.multiclass else float(self.config["threshold"])

    @property
    def classes(self) -> list[str]:
        return list(self.config["classes"])

    def preprocess(self, image: Any) -> Any:
        """A path, bytes or PIL image -> (3, size, size) float32, as training prepared it."""
        import numpy as np
        from PIL import Image

        size = int(self.config["image_size"])
        source = io.BytesIO(image) if isinstance(image, bytes | bytearray) else image
        if isinstance(source, Image.Image):
            picture = source.convert("RGB").resize((size, size), Image.BILINEAR)
        else:
            with Image.open(source) as opened:
                opened.draft("RGB", (size, size))  # training decodes JPEGs the same way
                picture = opened.convert("RGB").resize((size, size), Image.BILINEAR)
        picture = normalise_illumination(picture, self.config.get("illumination", "none"))
        pixels = np.asarray(picture, dtype=np.float32) / 255.0
        mean = np.asarray(self.config["image_mean"], dtype=np.float32)
        std = np.asarray(self.config["image_std"], dtype=np.float32)
        return ((pixels - mean) / std).transpose(2, 0, 1)

    def logits(self, images: Sequence[Any], batch_size: int = 32) -> Any:
        import numpy as np

        out = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.preprocess(image) for image in images[start : start + batch_size]])
            out.append(self.session.run([self.config["output"]], {self.config["input"]: batch})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    def probabilities(self, images: Sequence[Any]) -> Any:
        """Class probabilities per image, (n, K) in the order of `classes`: softmax(logits / temperature)."""
        import numpy as np

        z = self.logits(images).astype(np.float64) / float(self.config["temperature"])
        z -= z.max(axis=1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    def scores(self, images: Sequence[Any]) -> Any:
        """P(positive class) per image (softmax(logits / temperature)[positive_class_index]); for a multiclass
        model the class probabilities (n, K), as the registry scored its holdout."""
        probabilities = self.probabilities(images)
        if self.multiclass:
            return probabilities
        return probabilities[:, int(self.config["positive_class_index"])]

    def predict(self, images: Sequence[Any]) -> list[bool] | list[str]:
        """The model's decision per image: score >= its threshold (chosen for maximal MCC on val); for a
        multiclass model the name of the most probable class."""
        if self.multiclass:
            return [self.classes[int(k)] for k in self.probabilities(images).argmax(axis=1)]
        return [bool(score >= self.threshold) for score in self.scores(images)]


@dataclass
class OnnxDetector(OnnxModel):
    """A promoted YOLO detector on onnxruntime (exported by ultralytics with NMS in the graph): boxes per image,
    and the image-level score the registry measured (highest box confidence, 0 without a box) with its
    threshold."""

    multiclass = False  # an image-level positive score with a threshold, like a binary classifier

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])

    @property
    def classes(self) -> list[str]:
        return list(self.config["box_classes"])

    def preprocess(self, image: Any) -> tuple[Any, tuple[float, float, float, int, int]]:
        """A path, bytes or PIL image -> ((3, size, size) float32 letterboxed, (scale, pad_x, pad_y, w, h))."""
        import numpy as np
        from PIL import Image

        size = int(self.config["image_size"])
        source = io.BytesIO(image) if isinstance(image, bytes | bytearray) else image
        picture = source.convert("RGB") if isinstance(source, Image.Image) else None
        if picture is None:
            with Image.open(source) as opened:
                picture = opened.convert("RGB")
        width, height = picture.size
        scale = min(size / width, size / height)
        new_w, new_h = round(width * scale), round(height * scale)
        pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
        fill = int(self.config.get("letterbox_fill", 114))
        canvas = Image.new("RGB", (size, size), (fill, fill, fill))
        left, top = round(pad_x - 0.1), round(pad_y - 0.1)  # ultralytics' rounding of the border
        canvas.paste(picture.resize((new_w, new_h), Image.BILINEAR), (left, top))
        pixels = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0
        return pixels, (scale, float(left), float(top), width, height)

    def detections(self, images: Sequence[Any], min_confidence: float | None = None) -> list[list[dict]]:
        """Per image its boxes after NMS, most confident first: {"box": [x1, y1, x2, y2] normalised to the
        image, "class": name, "confidence"}; boxes below `min_confidence` (default: the export's) left out."""
        import numpy as np

        floor = float(self.config["min_confidence"] if min_confidence is None else min_confidence)
        out = []
        for image in images:
            pixels, (scale, left, top, width, height) = self.preprocess(image)
            rows = self.session.run([self.config["output"]], {self.config["input"]: pixels[None]})[0][0]
            boxes = []
            for x1, y1, x2, y2, confidence, cls in rows[np.argsort(-rows[:, 4])]:
                if confidence <= 0 or confidence < floor:
                    continue
                corners = [(x1 - left) / scale / width, (y1 - top) / scale / height]
                corners += [(x2 - left) / scale / width, (y2 - top) / scale / height]
                box = [float(min(1.0, max(0.0, v))) for v in corners]
                boxes.append({"box": box, "class": self.classes[int(cls)], "confidence": float(confidence)})
            out.append(boxes)
        return out

    def scores(self, images: Sequence[Any]) -> Any:
        """Image-level score: the highest box confidence (0 without a box), as the registry scored its holdout."""
        import numpy as np

        return np.array(
            [max((b["confidence"] for b in found), default=0.0) for found in self.detections(images)]
        )

    def predict(self, images: Sequence[Any]) -> list[bool]:
        """Whether each image shows the positive class: score >= the threshold chosen on val."""
        return [bool(score >= self.threshold) for score in self.scores(images)]


@dataclass
class RoutedPredictor:
    """The generalist plus slice specialists: each image is scored by the first route whose slice its metadata
    falls in (the registry's routing table, in order), else by the generalist."""

    default: OnnxPredictor
    routes: list[tuple[dict[str, Any], OnnxPredictor]]

    @property
    def version(self) -> int | None:
        return self.default.version

    @property
    def threshold(self) -> float | None:
        return self.default.threshold

    @property
    def classes(self) -> list[str]:
        return self.default.classes

    def for_item(self, metadata: dict[str, Any] | None) -> OnnxPredictor:
        """The predictor that serves an item with this metadata."""
        for spec, predictor in self.routes:
            if metadata is not None and slice_matches(spec, metadata):
                return predictor
        return self.default

    def _grouped(self, images: Sequence[Any], metadata: Sequence[dict[str, Any] | None] | None):
        if metadata is not None and len(metadata) != len(images):
            raise ValueError(f"{len(images)} images but {len(metadata)} metadata entries")
        groups: dict[int, tuple[OnnxPredictor, list[int]]] = {}
        for index in range(len(images)):
            predictor = self.for_item(metadata[index] if metadata is not None else None)
            groups.setdefault(id(predictor), (predictor, []))[1].append(index)
        return groups.values()

    def scores(self, images: Sequence[Any], metadata: Sequence[dict[str, Any] | None] | None = None) -> Any:
        """P(positive) per image (class probabilities (n, K) for multiclass), each from the model that serves
        its slice."""
        import numpy as np

        shape = (len(images), len(self.classes)) if self.default.multiclass else (len(images),)
        out = np.zeros(shape, dtype=np.float64)
        for predictor, indexes in self._grouped(images, metadata):
            out[indexes] = predictor.scores([images[i] for i in indexes])
        return out

    def predict(
        self, images: Sequence[Any], metadata: Sequence[dict[str, Any] | None] | None = None
    ) -> list[bool] | list[str]:
        """Each image's decision by the model that serves its slice (threshold, or argmax class)."""
        decisions: list[Any] = [False] * len(images)
        for predictor, indexes in self._grouped(images, metadata):
            for i, decision in zip(indexes, predictor.predict([images[i] for i in indexes]), strict=True):
                decisions[i] = decision
        return decisions


# --- copies of ml.slices.slice_matches and ml.illumination (the client runs without Hardcase's code; tests
# check both copies agree) ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    if _is_number(expected) and _is_number(actual):
        return float(expected) == float(actual)
    return str(expected) == str(actual)


def slice_matches(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Whether an item with `metadata` is in the slice (a missing key never is)."""
    actual = metadata.get(spec["key"])
    if actual is None:
        return False
    if "value" in spec:
        return _same(spec["value"], actual)
    if not _is_number(actual):
        return False
    return ("min" not in spec or actual >= spec["min"]) and ("max" not in spec or actual < spec["max"])


def normalise_illumination(image: Any, method: str) -> Any:
    """'gamma': YCbCr luminance raised to clip(log(0.5) / log(mean), 0.3, 1) by a 256-entry table."""
    if method == "none":
        return image
    import numpy as np
    from PIL import Image

    if method != "gamma":
        raise ModelError(f"unknown illumination step {method!r}")
    y, cb, cr = image.convert("YCbCr").split()
    mean = float((np.asarray(y, dtype=np.float64) / 255.0).mean())
    if mean <= 0.0:
        gamma = 0.3
    elif mean >= 0.5:
        gamma = 1.0
    else:
        gamma = max(0.3, min(1.0, math.log(0.5) / math.log(mean)))
    if gamma == 1.0:
        return image
    table = [round(255.0 * (v / 255.0) ** gamma) for v in range(256)]
    return Image.merge("YCbCr", (y.point(table), cb, cr)).convert("RGB")


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
