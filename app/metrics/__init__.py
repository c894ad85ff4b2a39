"""Prometheus metrics: request latency by route template, ingest/queue/label/job/drift/webhook counters, and
gauges read from the database at scrape time; multiprocess mode for workers (PROMETHEUS_MULTIPROC_DIR)."""
