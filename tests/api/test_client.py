"""The cascade's client: batching, retry on transient failure, idempotent resend, per-item errors kept."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.client import HardcaseClient, IngestError
from app.ingest.models import Item, Prediction
from tests.utils.factories import item, make_key, make_project


class FlakyTransport(httpx.BaseTransport):
    """Fails the first `failures` requests with a 503 or a dropped connection, then forwards to the app."""

    def __init__(self, app, failures: int, drop: bool) -> None:
        self.app, self.failures, self.drop, self.calls = app, failures, drop, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.failures:
            if self.drop:
                raise httpx.ConnectError("connection dropped", request=request)
            return httpx.Response(503, json={"detail": "busy"})
        from fastapi.testclient import TestClient

        with TestClient(self.app) as client:
            response = client.request(
                request.method, request.url.path, content=request.content, headers=dict(request.headers)
            )
        return httpx.Response(response.status_code, content=response.content, headers=response.headers)


@pytest.fixture
def key(db):
    make_project(db)
    return make_key(db)


def client_for(app, key, failures=0, drop=False, batch_size=3):
    transport = FlakyTransport(app, failures, drop)
    return HardcaseClient(
        "http://hardcase",
        api_key=key,
        project="roadwork",
        batch_size=batch_size,
        backoff_s=0.001,
        transport=transport,
    ), transport


def test_items_are_sent_in_batches_and_counted(app, db, key):
    client, transport = client_for(app, key)
    summary = client.send(item(f"i{n}") for n in range(7))
    assert (summary.batches, summary.items_created, summary.predictions_created) == (3, 7, 21)
    assert transport.calls == 3


@pytest.mark.parametrize("drop", [False, True])
def test_transient_failures_are_retried_and_resending_duplicates_nothing(app, db, key, drop):
    client, transport = client_for(app, key, failures=2, drop=drop)
    summary = client.send([item("a"), item("b")])
    assert summary.items_created == 2 and transport.calls == 3
    again, _ = client_for(app, key)
    assert again.send([item("a"), item("b")]).items_created == 0
    assert db.scalar(select(func.count()).select_from(Prediction)) == 6
    assert db.scalar(select(func.count()).select_from(Item)) == 2


def test_per_item_errors_carry_their_position_in_the_whole_stream(app, db, key):
    client, _ = client_for(app, key, batch_size=2)
    summary = client.send([item("a"), item("b"), item("c", scores={"det": 2.0})])
    assert [(e["index"], e["field"]) for e in summary.errors] == [(2, "items[0].predictions[0].score")]


def test_a_wrong_key_raises_without_retrying(app, db, key):
    client, transport = client_for(app, "hc_wrong")
    with pytest.raises(IngestError) as caught:
        client.send([item("a")])
    assert caught.value.status_code == 401 and transport.calls == 1
