"""The `hardcase` command: run the product, manage the database, keys, users and projects."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable

from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker, session_scope

# Domains that add their own subcommands: each module has register(subparsers).
DOMAIN_CLIS = ["app.runner", "app.jobs.cli", "app.lsbackend.cli", "app.loop.cli"]


def _sessions():
    return make_sessionmaker(make_engine(get_settings().resolved_database_url))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from app.core.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, args.revision)
    print(f"database at {args.revision}: {settings.resolved_database_url.split('@')[-1]}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.auth.keys import create_api_key
    from app.projects.service import get_by_name

    with session_scope(_sessions()) as session:
        project_id = None
        if args.project:
            project = get_by_name(db_session=session, name=args.project)
            if project is None:
                raise SystemExit(f"error: unknown project {args.project!r}")
            project_id = project.id
        key, secret = create_api_key(
            db_session=session, name=args.name, scopes=args.scopes.split(","), project_id=project_id
        )
        print(json.dumps({"id": key.id, "name": key.name, "scopes": key.scopes, "key": secret}))
    print("Store the key now: only its hash is kept.", file=sys.stderr)
    return 0


def cmd_keys_list(_: argparse.Namespace) -> int:
    from app.auth.keys import list_keys

    with session_scope(_sessions()) as session:
        for key in list_keys(db_session=session):
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}\t{key.name}\t{key.prefix}…\t{','.join(key.scopes)}\t{state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from app.auth.keys import revoke

    with session_scope(_sessions()) as session:
        if revoke(db_session=session, key_id=args.id) is None:
            raise SystemExit(f"error: no key {args.id}")
    print(f"revoked key {args.id}")
    return 0


def cmd_projects_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.projects.schemas import ProjectCreate
    from app.projects.service import create, get_by_name

    try:
        project_in = ProjectCreate(
            name=args.name,
            kind=args.kind,
            classes=args.classes.split(","),
            box_classes=[c for c in args.box_classes.split(",") if c],
            threshold=args.threshold,
            overlap=args.overlap,
            question=args.question,
        )
    except ValidationError as exc:
        raise SystemExit(f"error: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    with session_scope(_sessions()) as session:
        if get_by_name(db_session=session, name=args.name):
            raise SystemExit(f"error: project {args.name!r} exists")
        project = create(db_session=session, project_in=project_in)
        print(f"created project {project.name} (id {project.id})")
    return 0


def cmd_projects_list(_: argparse.Namespace) -> int:
    from app.projects.service import list_projects

    with session_scope(_sessions()) as session:
        for p in list_projects(db_session=session):
            print(f"{p.id}\t{p.name}\t{p.kind}\tthreshold={p.threshold}\toverlap={p.overlap}\t{p.strategy}")
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    from app.auth.users import create_user

    password = args.password or os.environ.get("HARDCASE_NEW_PASSWORD")
    if not password:
        import getpass

        password = getpass.getpass("password: ")
    with session_scope(_sessions()) as session:
        try:
            user = create_user(db_session=session, username=args.username, password=password, role=args.role)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from exc
        print(f"created {user.role} {user.username}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    return run_simulate(list(args.rest))


def run_simulate(rest: list[str]) -> int:
    """Runs land in data_dir/simulate/<dataset>-<time> by default, where the dashboard's /simulate reads them."""
    import time

    from ml.simulate.cli import is_roadwork
    from ml.simulate.cli import main as simulate_main
    from ml.simulate.config import SimulationConfig

    dataset = rest[rest.index("--dataset") + 1] if "--dataset" in rest[:-1] else SimulationConfig().dataset
    out = get_settings().data_dir / "simulate" / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    if is_roadwork(rest):
        from ml.simulate.roadwork import RoadworkConfig
        from ml.simulate.roadwork import main as roadwork_main

        return roadwork_main(rest, defaults=RoadworkConfig(out=out))
    return simulate_main(rest, defaults=SimulationConfig(out=out))


def _add(
    sub, name: str, func: Callable[[argparse.Namespace], int], help_text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=func)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hardcase", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database migrations").add_subparsers(dest="db_command", required=True)
    _add(db, "upgrade", cmd_db_upgrade, "apply Alembic migrations").add_argument(
        "revision", nargs="?", default="head"
    )

    keys = sub.add_parser("keys", help="service API keys").add_subparsers(dest="keys_command", required=True)
    create = _add(keys, "create", cmd_keys_create, "create a key (printed once)")
    create.add_argument("name")
    create.add_argument("--scopes", default="ingest,read", help="comma list of ingest,read,models,metrics")
    create.add_argument("--project", help="restrict the key to one project")
    _add(keys, "list", cmd_keys_list, "list keys")
    _add(keys, "revoke", cmd_keys_revoke, "revoke a key").add_argument("id", type=int)

    projects = sub.add_parser("projects", help="projects").add_subparsers(
        dest="projects_command", required=True
    )
    pc = _add(projects, "create", cmd_projects_create, "create a labeling project")
    pc.add_argument("name")
    pc.add_argument("--kind", default="binary", choices=["binary", "multiclass", "detection"])
    pc.add_argument("--classes", default="negative,positive")
    pc.add_argument("--box-classes", default="")
    pc.add_argument("--threshold", type=float, default=0.5)
    pc.add_argument("--overlap", type=int, default=1)
    pc.add_argument(
        "--question", default="", help="asked on the label page (default: derived from the classes)"
    )
    _add(projects, "list", cmd_projects_list, "list projects")

    users = sub.add_parser("users", help="accounts").add_subparsers(dest="users_command", required=True)
    uc = _add(users, "create", cmd_users_create, "create an account")
    uc.add_argument("username")
    uc.add_argument("--role", default="annotator", choices=["annotator", "reviewer", "admin"])
    uc.add_argument("--password", help="or HARDCASE_NEW_PASSWORD, or asked interactively")

    sim = _add(sub, "simulate", cmd_simulate, "active-learning simulator (see `hardcase simulate --help`)")
    sim.add_argument("rest", nargs=argparse.REMAINDER)

    for module in DOMAIN_CLIS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:  # its options belong to the simulator's own parser
        return run_simulate(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
