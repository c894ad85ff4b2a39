"""A small typed client for the inference cascade: batching, retries with backoff, idempotent resend.

    from app.client import HardcaseClient
    with HardcaseClient("http://hardcase:8000", api_key="hc_...", project="roadwork") as client:
        summary = client.send(items)   # items: dicts in the ingestion format (see README)

Resending is always safe: items are keyed by external_id and predictions by (model, model_version).

The promoted model, run by the cascade without Hardcase or torch (needs numpy, pillow and onnxruntime):

    model = client.production_model()      # downloaded once per version, sha256-checked, cached
    model.scores(["frame.jpg"])            # P(positive) exactly as the registry scored its holdout
    model.predict(["frame.jpg"])           # score >= the model's threshold
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def production_model(self, cache_dir: str | os.PathLike | None = None) -> OnnxPredictor:
        """The promoted model as an onnxruntime predictor with its threshold and preprocessing applied.

        The artifact is downloaded once per version into `cache_dir` (default ~/.cache/hardcase) and checked
        against the registry's sha256; a model without an ONNX export (YOLO, VLM adapters) raises ModelError."""
        info = self.production_info()
        root = Path(cache_dir or Path.home() / ".cache" / "hardcase") / self.project / f"v{info['version']}"
        folder = root / info["artifact_sha256"]
        if not (folder / ".complete").is_file():
            self._download_artifact(info, folder)
        onnx_dir = next((p.parent for p in folder.rglob(PREDICTOR_FILE)), None)
        if onnx_dir is None:
            raise ModelError(f"{info['name']} v{info['version']} ({info['kind']}) has no ONNX export to run")
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


@dataclass
class OnnxPredictor:
    """A promoted classifier on onnxruntime: the training preprocessing, temperature and threshold applied."""

    session: Any
    config: dict[str, Any]
    version: int | None = None
    name: str = ""

    @classmethod
    def load(cls, onnx_dir: str | os.PathLike, **info: Any) -> OnnxPredictor:
        import onnxruntime

        folder = Path(onnx_dir)
        config = json.loads((folder / PREDICTOR_FILE).read_text())
        session = onnxruntime.InferenceSession(
            str(folder / config["model"]), providers=["CPUExecutionProvider"]
        )
        return cls(session, config, **info)

    @property
    def threshold(self) -> float:
        return float(self.config["threshold"])

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

    def scores(self, images: Sequence[Any]) -> Any:
        """P(positive class) per image: softmax(logits / temperature)[positive_class_index]."""
        import numpy as np

        z = self.logits(images).astype(np.float64) / float(self.config["temperature"])
        z -= z.max(axis=1, keepdims=True)
        probabilities = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return probabilities[:, int(self.config["positive_class_index"])]

    def predict(self, images: Sequence[Any]) -> list[bool]:
        """The model's decision per image: score >= its threshold (chosen for maximal MCC on val)."""
        return [bool(score >= self.threshold) for score in self.scores(images)]


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
