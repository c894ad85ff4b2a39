"""`hardcase demo`: a 'roadwork' project with the real sample photos and three simulated cascade models that
behave differently (a cone detector, an image classifier, a VLM), so a newcomer can label at once."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select

from app.auth.keys import create_api_key
from app.auth.users import create_user, get_by_username
from app.core.blobs import BlobStore
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker, session_scope
from app.ingest.models import Item
from app.ingest.service import ingest_batch
from app.loop import service as loop_service
from app.loop.schemas import PolicyJob, PolicyWrite
from app.projects.schemas import ProjectCreate
from app.projects.service import get_or_create
from app.users.service import add_member
from ml.sample_data import has_sample_data, roadwork_pool, simulated_cascade, synthetic_roadwork_images

DEMO_PROJECT = "roadwork"
DEMO_USERS = {"admin": "admin", "reviewer": "reviewer", "annotator": "annotator"}
# The loop closes itself on the demo: 100 new labels train a classifier and promote it if the gate passes.
DEMO_POLICY = PolicyWrite(
    new_labels=100, jobs=[PolicyJob(kind="classifier_lora")], min_holdout_items=15, auto_promote=True
)
DEMO_INSTRUCTIONS = """\
Answer **yes** when the road is being worked on: cones, drums, barricades, barriers or work signs on or
beside the carriageway. Answer **no** for normal traffic and for pictures without a road.

- A yes keeps its boxes: take the detector's dashed suggestions with `A` or draw the missing ones.
- Fix a box's class with its letter key; `?` shows every key.
- Unsure, or the picture is broken? Press `F` to flag it for a reviewer.
"""


def _demo_images(limit: int) -> tuple[list[dict], list[str]]:
    if has_sample_data():
        pool, box_classes = roadwork_pool()
        for entry in pool:
            entry["name"] = f"{entry['source']}/{entry['image'].stem}"
            entry["image_bytes"] = entry["image"].read_bytes()
    else:
        pool, box_classes = synthetic_roadwork_images(120), ["cone"]
    return (pool[:limit] if limit else pool), box_classes


def _raw_items(
    pool: list[dict], box_classes: list[str], rng: np.random.Generator
) -> tuple[list[dict], dict[str, bytes]]:
    start = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    items, files = [], {}
    for index, entry in enumerate(pool):
        files[entry["name"]] = entry["image_bytes"]
        camera = "vtti-dashcam" if entry["source"] == "vtti" else f"{entry['source']}-cam-{index % 5}"
        items.append(
            {
                "external_id": entry["name"],
                "image": {"file": entry["name"]},
                "metadata": {
                    "captured_at": (start + timedelta(minutes=7 * index)).isoformat(),
                    "camera_id": camera,
                    "is_night": entry["is_night"],
                    "tags": [entry["source"]],
                },
                "predictions": simulated_cascade(
                    entry["label"], entry["boxes"], entry["is_night"], rng, class_names=box_classes
                ),
            }
        )
    return items, files


def seed_demo(settings: Settings, limit: int = 0) -> None:
    sessions = make_sessionmaker(make_engine(settings.resolved_database_url))
    pool, box_classes = _demo_images(limit)
    with session_scope(sessions) as session:
        project = get_or_create(
            db_session=session,
            project_in=ProjectCreate(
                name=DEMO_PROJECT,
                kind="binary",
                classes=["no_roadwork", "roadwork"],
                box_classes=box_classes,
                threshold=0.5,
                instructions=DEMO_INSTRUCTIONS,
                daily_goal=50,
            ),
        )
        for username, role in (("admin", "admin"), ("reviewer", "reviewer"), ("annotator", "annotator")):
            user = get_by_username(db_session=session, username=username)
            if user is None:
                user = create_user(
                    db_session=session,
                    username=username,
                    password=os.environ.get("HARDCASE_DEMO_PASSWORD", DEMO_USERS[username]),
                    role=role,
                )
            add_member(db_session=session, project_id=project.id, user_id=user.id)
        if loop_service.get_policy(db_session=session, project=project) is None:
            loop_service.save_policy(
                db_session=session, project=project, policy_in=DEMO_POLICY, user_id=None, settings=settings
            )
        existing = session.scalar(select(func.count()).select_from(Item).where(Item.project_id == project.id))
        key_secret = None
        if not existing:
            _, key_secret = create_api_key(
                db_session=session, name="demo-cascade", scopes=["ingest", "read", "models"]
            )
        items, files = _raw_items(pool, list(project.box_classes), np.random.default_rng(7))
        blobs = BlobStore(settings.resolved_blob_dir)
        summary = None
        for start in range(0, len(items), 100):
            summary = ingest_batch(
                db_session=session,
                project=project,
                raw_items=items[start : start + 100],
                files=files,
                blobs=blobs,
                settings=settings,
            )
            for error in summary.errors:
                print(f"  skipped {error.external_id}: {error.field}: {error.message}")
    print(
        f"demo project '{DEMO_PROJECT}': {len(items)} images with 3 simulated cascade models"
        f"{'' if has_sample_data() else ' (synthetic images: shared/data not found)'}"
    )
    print(
        "log in as admin/admin, reviewer/reviewer or annotator/annotator (set HARDCASE_DEMO_PASSWORD to change)"
    )
    if key_secret:
        print(f"cascade API key (ingest, read, models; shown once): {key_secret}")
