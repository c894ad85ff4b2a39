"""HMAC-SHA256 signatures over "timestamp.body": what the worker sends and what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

SIGNATURE_HEADER = "X-Hardcase-Signature"
TIMESTAMP_HEADER = "X-Hardcase-Timestamp"
EVENT_HEADER = "X-Hardcase-Event"
DELIVERY_HEADER = "X-Hardcase-Delivery"
REPLAY_WINDOW_S = 300  # receivers reject a timestamp further than this from their clock


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(
    secret: str, body: bytes, *, event: str, delivery_id: int, now: float | None = None
) -> dict:
    timestamp = int(now if now is not None else time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": "Hardcase-Webhooks/1",
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    sent_signature: str,
    *,
    now: float | None = None,
    window_s: int = REPLAY_WINDOW_S,
) -> bool:
    """True when the signature matches and the timestamp is within the replay window (what receivers do)."""
    try:
        moment = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - moment) > window_s:
        return False
    return hmac.compare_digest(signature(secret, moment, body), sent_signature or "")
