"""Every metric Hardcase records in-process (the scrape-time gauges are in collector.py).

Names follow Prometheus conventions: `hardcase_` prefix, base units (seconds), `_total` on counters, and
labels that stay few (project, route template, job kind, event), never an item, user or raw path.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)

REQUEST_SECONDS = Histogram(
    "hardcase_http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
INGEST_ITEMS = Counter(
    "hardcase_ingest_items_total", "Items accepted by ingestion (new or updated)", ["project"]
)
INGEST_REJECTED = Counter(
    "hardcase_ingest_rejected_items_total",
    "Items rejected by ingestion (validation or image errors)",
    ["project"],
)
INGEST_PREDICTIONS = Counter(
    "hardcase_ingest_predictions_total", "New predictions stored (resent ones are not counted)", ["project"]
)
LEASE_SECONDS = Histogram(
    "hardcase_queue_lease_duration_seconds",
    "Time to lease the next item to an annotator",
    ["project"],
    buckets=LATENCY_BUCKETS,
)
ANNOTATIONS = Counter(
    "hardcase_annotations_total", "Annotations submitted (corrections included)", ["project"]
)
JOB_SECONDS = Histogram(
    "hardcase_job_duration_seconds",
    "Training job run time, from its start to its final state",
    ["kind", "status"],
    buckets=JOB_BUCKETS,
)
STAGE_CHANGES = Counter(
    "hardcase_model_stage_changes_total", "Models promoted or rolled back", ["project", "event"]
)
DRIFT_ALARMS = Counter(
    "hardcase_drift_alarms_total",
    "Drift alarms raised (a model and test that was not alarming)",
    ["project", "kind"],
)
WEBHOOK_ATTEMPTS = Counter(
    "hardcase_webhook_attempts_total",
    "Webhook POSTs by outcome (succeeded, retried, failed)",
    ["event", "outcome"],
)
TASK_SECONDS = Histogram(
    "hardcase_worker_task_duration_seconds",
    "Celery task run time by task name and final state",
    ["task", "state"],
    buckets=(*LATENCY_BUCKETS, 60.0, 300.0, 1800.0, 7200.0),
)
