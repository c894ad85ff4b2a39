"""`hardcase policy show|set|pause|resume|run|runs|approve|reject PROJECT`: retraining policies from a terminal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.core.errors import ApiError
from app.loop import flows, service
from app.loop.schemas import PolicyWrite
from app.projects.service import get_by_name


def _project(session, name: str):
    project = get_by_name(db_session=session, name=name)
    if project is None:
        raise SystemExit(f"error: unknown project {name!r}")
    return project


def _run_command(args: argparse.Namespace) -> int:
    settings = get_settings()
    sessions = make_sessionmaker(make_engine(settings.resolved_database_url))
    try:
        with session_scope(sessions) as session:
            project = _project(session, args.project)
            out = ACTIONS[args.policy_command](session, project, args, settings)
            session.commit()
    except ApiError as exc:
        raise SystemExit(f"error: {exc.field}: {exc.message}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SystemExit(f"error: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    if args.policy_command == "run":
        flows.send_advance(settings, out["id"])
    print(json.dumps(out, indent=2, default=str))
    return 0


def _show(session, project, args, settings) -> dict:
    policy = service.require_policy(db_session=session, project=project)
    return service.policy_read(
        db_session=session, project=project, policy=policy, settings=settings
    ).model_dump()


def _set(session, project, args, settings) -> dict:
    body = PolicyWrite.model_validate_json(Path(args.file).read_text())
    service.save_policy(db_session=session, project=project, policy_in=body, user_id=None, settings=settings)
    return _show(session, project, args, settings)


def _pause(session, project, args, settings) -> dict:
    service.set_paused(
        db_session=session, project=project, paused=args.policy_command == "pause", user_id=None
    )
    return _show(session, project, args, settings)


def _start(session, project, args, settings) -> dict:
    run = service.start_run(db_session=session, project=project, trigger="manual", detail={"note": args.note})
    return service.run_reads(db_session=session, project=project, runs=[run])[0].model_dump()


def _runs(session, project, args, settings) -> list:
    runs = service.list_runs(db_session=session, project=project, limit=args.limit)
    return [r.model_dump() for r in service.run_reads(db_session=session, project=project, runs=runs)]


def _decide(session, project, args, settings) -> dict:
    run = service.get_run(db_session=session, project=project, run_id=args.run_id)
    run = flows.lock_run(session, run.id)
    if args.policy_command == "approve":
        flows.approve(db_session=session, project=project, run=run, user_id=None, note_text=args.note)
    else:
        flows.reject(db_session=session, run=run, user_id=None, note_text=args.note)
    return service.run_reads(db_session=session, project=project, runs=[run])[0].model_dump()


ACTIONS = {
    "show": _show,
    "set": _set,
    "pause": _pause,
    "resume": _pause,
    "run": _start,
    "runs": _runs,
    "approve": _decide,
    "reject": _decide,
}


def register(sub) -> None:
    policy = sub.add_parser("policy", help="retraining policies and loop runs")
    commands = policy.add_subparsers(dest="policy_command", required=True)
    helps = {
        "show": "the project's policy and what is pending",
        "set": "save a policy from a JSON file (the body of PUT /api/v1/projects/{p}/policy)",
        "pause": "start no run until resumed",
        "resume": "let triggers start runs again",
        "run": "start a loop run now",
        "runs": "loop runs, newest first",
        "approve": "promote a held run's candidate",
        "reject": "close a held run without promoting",
    }
    for name, text in helps.items():
        parser = commands.add_parser(name, help=text)
        parser.add_argument("project")
        if name == "set":
            parser.add_argument("--file", required=True, help="policy JSON")
        if name in ("approve", "reject"):
            parser.add_argument("run_id", type=int)
        if name in ("run", "approve", "reject"):
            parser.add_argument("--note", default="")
        if name == "runs":
            parser.add_argument("--limit", type=int, default=20)
        parser.set_defaults(func=_run_command)
