"""docker-compose.yml stays consistent with the code: every `hardcase ...` command it runs parses with our CLI,
every service using our image gets the same settings, and the Dockerfile copies packages that exist."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.cli import build_parser
from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_compose_command_is_a_valid_hardcase_command():
    services = compose()["services"]
    commands = [s["command"] for s in services.values() if s.get("command", [None])[0] == "hardcase"]
    assert len(commands) >= 4
    for command in commands:
        build_parser().parse_args(command[1:])  # raises SystemExit on an unknown command or flag


def test_compose_settings_are_real_settings_fields():
    env = compose()["x-hardcase-env"]
    fields = {f"HARDCASE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields
    assert env["HARDCASE_DATABASE_URL"].startswith("postgresql://")


def test_the_production_shape_has_postgres_redis_api_and_both_worker_kinds():
    services = compose()["services"]
    assert {"postgres", "redis", "api", "worker-cpu", "worker-gpu"} <= set(services)
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "api"))
    gpu = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia"


def test_dockerfile_copies_existing_packages():
    copies = [
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY")
    ]
    for path in copies:
        assert (ROOT / path).exists(), path
