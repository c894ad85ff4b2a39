"""The compose `monitoring` profile: Prometheus scrapes the API with a metrics key and every worker's port."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_prometheus_scrapes_the_api_with_the_compose_secret_and_each_workers_metrics_port():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    service = compose["services"]["prometheus"]
    assert service["profiles"] == ["monitoring"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}

    api = jobs["hardcase-api"]
    assert api["metrics_path"] == "/metrics" and api["static_configs"][0]["targets"] == ["api:8000"]
    assert api["authorization"]["credentials_file"] == f"/run/secrets/{service['secrets'][0]}"
    assert service["secrets"][0] in compose["secrets"]

    workers = jobs["hardcase-workers"]["dns_sd_configs"][0]
    fields = {f"HARDCASE_{name.upper()}" for name in Settings.model_fields}
    for name in workers["names"]:
        env = compose["services"][name]["environment"]
        assert int(env["HARDCASE_WORKER_METRICS_PORT"]) == workers["port"]
        assert {k for k in env if k.startswith("HARDCASE_")} <= fields
        assert env["PROMETHEUS_MULTIPROC_DIR"] in compose["services"][name]["tmpfs"]
