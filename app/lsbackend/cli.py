"""`hardcase import-ls PROJECT EXPORT.json`: a Label Studio JSON export into a Hardcase project."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.core.blobs import BlobStore
from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.core.errors import ApiError
from app.lsbackend.importer import import_label_studio_tasks
from app.lsbackend.regions import parse_labeling_config
from app.projects.service import get_by_name


def cmd_import_ls(args: argparse.Namespace) -> int:
    try:
        tasks = json.loads(Path(args.export).read_text())
        xml = Path(args.label_config).read_text() if args.label_config else None
        config = parse_labeling_config(xml)
    except (OSError, ValueError) as exc:  # unreadable file, bad JSON, bad labeling config
        raise SystemExit(f"error: {exc}") from exc
    if not isinstance(tasks, list):
        raise SystemExit("error: a Label Studio JSON export is a list of tasks")
    settings = get_settings()
    with session_scope(make_sessionmaker(make_engine(settings.resolved_database_url))) as session:
        project = get_by_name(db_session=session, name=args.project)
        if project is None:
            raise SystemExit(f"error: unknown project {args.project!r}")
        try:
            summary = import_label_studio_tasks(
                db_session=session,
                project=project,
                tasks=tasks,
                blobs=BlobStore(settings.resolved_blob_dir),
                settings=settings,
                config=config,
                images_root=Path(args.images_root) if args.images_root else None,
            )
        except ApiError as exc:
            raise SystemExit(f"error: {exc.field}: {exc.message}") from exc
    print(
        f"{summary.tasks} tasks: {summary.items_created} items created, {summary.predictions_created} "
        f"predictions, {summary.images_stored} images stored, annotations {summary.annotations or 'none'}"
    )
    for error in summary.errors:
        print(f"  skipped {error}")
    return 0


def register(sub) -> None:
    parser = sub.add_parser(
        "import-ls",
        help="import a Label Studio JSON export (tasks, predictions, annotations)",
        description="Import a Label Studio JSON export into a project: items keyed by data.external_id (else "
        "the image URL), predictions per model_version, annotations attributed to 'ls:<user id>'.",
    )
    parser.add_argument("project")
    parser.add_argument("export", help="the JSON export (Export -> JSON in Label Studio)")
    parser.add_argument(
        "--images-root",
        help="read images named by local-files or upload URLs from files under this folder (else kept as URLs)",
    )
    parser.add_argument("--label-config", help="the project's labeling config XML (default: image/label/box)")
    parser.set_defaults(func=cmd_import_ls)
