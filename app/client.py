"""A small typed client for the inference cascade: batching, retries with backoff, idempotent resend.

    from app.client import HardcaseClient
    with HardcaseClient("http://hardcase:8000", api_key="hc_...", project="roadwork") as client:
        summary = client.send(items)   # items: dicts in the ingestion format (see README)

Resending is always safe: items are keyed by external_id and predictions by (model, model_version).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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

    def production_model(self) -> dict[str, Any]:
        response = self._http.get(f"/api/v1/projects/{self.project}/models/production")
        if response.status_code != 200:
            raise IngestError(response.status_code, _json_or_text(response))
        return response.json()


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
