"""Service API keys: random secrets shown once, stored as SHA-256 (they are high-entropy, so no slow hash)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import SCOPES, ApiKey
from app.core.db import utcnow

KEY_PREFIX = "hc_"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    *, db_session: Session, name: str, scopes: list[str] | None = None, project_id: int | None = None
) -> tuple[ApiKey, str]:
    scopes = scopes or ["ingest", "read"]
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"scopes: unknown scope {unknown[0]!r}; known: {list(SCOPES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name, prefix=secret[:10], key_hash=hash_key(secret), scopes=scopes, project_id=project_id
    )
    db_session.add(key)
    db_session.flush()
    return key, secret


def find_active_key(*, db_session: Session, secret: str) -> ApiKey | None:
    key = db_session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
    return key if key is not None and key.revoked_at is None else None


def list_keys(*, db_session: Session) -> list[ApiKey]:
    return list(db_session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(*, db_session: Session, key_id: int) -> ApiKey | None:
    key = db_session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
    return key
