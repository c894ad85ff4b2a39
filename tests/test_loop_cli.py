"""`hardcase policy ...`: a policy saved from a JSON file is validated like the API's, shown, paused, and runs
are started, listed and closed from the terminal."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.cli import main
from app.core.config import get_settings
from app.loop.models import LoopRun
from tests.utils.factories import make_project
from tests.utils.loop import policy_body


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("HARDCASE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HARDCASE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARDCASE_BROKER_URL", settings.broker_url)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_a_policy_is_set_shown_paused_and_runs_are_started_and_rejected_from_the_command_line(
    cli_env, db, tmp_path, capsys
):
    make_project(db, "roadwork")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(policy_body(jobs=[{"kind": "nope"}])))
    with pytest.raises(SystemExit, match="jobs.0.kind"):
        main(["policy", "set", "roadwork", "--file", str(bad)])
    good = tmp_path / "policy.json"
    good.write_text(json.dumps(policy_body(new_labels=25)))
    assert main(["policy", "set", "roadwork", "--file", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["new_labels"] == 25
    assert main(["policy", "pause", "roadwork"]) == 0
    assert json.loads(capsys.readouterr().out)["paused"] is True
    with pytest.raises(SystemExit, match="paused"):
        main(["policy", "run", "roadwork"])
    assert main(["policy", "resume", "roadwork"]) == 0
    capsys.readouterr()
    assert main(["policy", "run", "roadwork", "--note", "from the shell"]) == 0
    run_id = json.loads(capsys.readouterr().out)["id"]
    db.execute(LoopRun.__table__.update().values(state="held"))
    db.commit()
    assert main(["policy", "reject", "roadwork", str(run_id), "--note", "no"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "rejected"
    assert main(["policy", "runs", "roadwork"]) == 0
    assert [r["trigger"] for r in json.loads(capsys.readouterr().out)] == ["manual"]
    db.rollback()
    assert db.scalar(select(LoopRun.reason)).startswith("rejected by an admin: no")
    with pytest.raises(SystemExit, match="unknown project"):
        main(["policy", "show", "nope"])


def test_the_demo_project_retrains_itself_after_100_new_labels(settings, db):
    from app.demo import seed_demo
    from app.loop.models import RetrainingPolicy

    seed_demo(settings, limit=2)
    seed_demo(settings, limit=2)  # idempotent: one policy
    [policy] = db.scalars(select(RetrainingPolicy)).all()
    assert (policy.new_labels, policy.auto_promote, policy.jobs[0]["kind"]) == (100, True, "classifier_lora")
