"""The `hardcase` command manages projects, keys and users against the configured database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.auth.keys import find_active_key
from app.auth.models import User
from app.cli import main
from app.core.config import get_settings
from app.projects.models import Project


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("HARDCASE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HARDCASE_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_projects_keys_and_users_are_created_from_the_command_line(cli_env, db, capsys):
    assert main(["projects", "create", "roadwork", "--threshold", "0.45", "--overlap", "2"]) == 0
    assert main(["keys", "create", "cascade", "--project", "roadwork", "--scopes", "ingest"]) == 0
    secret = json.loads(capsys.readouterr().out.splitlines()[-1])["key"]
    assert main(["users", "create", "ann", "--role", "reviewer", "--password", "s3cret!"]) == 0
    project = db.scalar(select(Project))
    key = find_active_key(db_session=db, secret=secret)
    assert (project.threshold, project.overlap) == (0.45, 2)
    assert key.scopes == ["ingest"] and key.project_id == project.id
    assert db.scalar(select(User.role).where(User.username == "ann")) == "reviewer"
    assert main(["keys", "revoke", str(key.id)]) == 0
    db.rollback()  # end the read snapshot: see what the app committed since
    assert find_active_key(db_session=db, secret=secret) is None


def test_a_cli_project_asks_about_its_own_classes_not_roadwork(cli_env, db):
    assert main(["projects", "create", "pets", "--kind", "multiclass", "--classes", "cat,dog,bird"]) == 0
    assert main(["projects", "create", "lanes", "--question", "Is a lane closed?"]) == 0
    questions = dict(db.execute(select(Project.name, Project.question)).tuples().all())
    assert questions == {
        "pets": "Which of these fits the image: cat, dog, bird?",
        "lanes": "Is a lane closed?",
    }


def test_bad_cli_input_exits_with_a_message_naming_the_problem(cli_env):
    with pytest.raises(SystemExit, match="unknown project"):
        main(["keys", "create", "k", "--project", "nope"])
    with pytest.raises(SystemExit, match="threshold"):
        main(["projects", "create", "p", "--threshold", "1.5"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_simulate_options_go_to_the_simulator_parser(cli_env, capsys):
    with pytest.raises(SystemExit) as done:
        main(["simulate", "--dataset", "mnist", "--help"])
    assert done.value.code == 0
    assert "--max-labels" in capsys.readouterr().out


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_simulate_roadwork_writes_its_report_where_the_dashboard_reads_it(cli_env):
    """`hardcase simulate --dataset roadwork` goes to the roadwork replay and lands in data_dir/simulate."""
    argv = ["--seeds", "1", "--limit", "8", "--max-labels", "6", "--image-size", "32", "--quiet"]
    assert main(["simulate", "--dataset", "roadwork", *argv]) == 0
    (report,) = (cli_env.data_dir / "simulate").glob("roadwork-*/curves.json")
    document = json.loads(report.read_text())
    assert document["config"]["project"] == "roadwork" and document["labels_saved"]["budget"] == 6


def test_serve_with_two_workers_answers_from_two_processes_on_one_port(cli_env):
    """`hardcase serve --workers 2` forks two API processes behind one socket, each serving the app."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, status = time.monotonic() + 90, None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.3)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        servers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert status == 200
        assert len(servers) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_a_worker_count_below_one(cli_env, capsys):
    """A zero or negative process count is an argument error, not a server that never starts."""
    with pytest.raises(SystemExit):
        main(["serve", "--workers", "0"])
    assert "expected 1 to 256" in capsys.readouterr().err
