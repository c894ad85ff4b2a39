"""Images by reference reach dataset versions, exports and training data: a real Celery worker fetches them
from a real S3-compatible server (moto) and a real HTTP server, both on 127.0.0.1."""

from __future__ import annotations

import io
import zipfile

import pytest
import redis
from sqlalchemy import select

from app.core.blobs import BlobStore
from app.datasets import service as datasets
from app.ingest.models import Item
from app.labels.models import Annotation
from app.projects.models import Project
from tests.utils.factories import item, make_key, make_project, png_bytes
from tests.utils.labeled_data import client_as
from tests.utils.remote_sources import http_image_server, moto_s3_server, noisy_png
from tests.utils.worker import celery_worker, wait_until

N = 16  # half on S3, half on the HTTP server; labels alternate
MAX_BYTES = 200_000


def remote_env(settings) -> dict[str, str]:
    fields = ("remote_image_allowlist", "remote_allow_private", "remote_prefetch", "max_image_bytes") + tuple(
        f for f in type(settings).model_fields if f.startswith("s3_")
    )
    return {f"HARDCASE_{f.upper()}": str(getattr(settings, f)) for f in fields}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_referenced_images_enter_a_version_its_export_and_the_trainers_files(app, db, settings, redis_url):
    """s3:// and http:// items ingested by reference are fetched by a worker (never by the ingest request),
    frozen into a version, exported with their bytes and materialised where training reads them; a bucket off the
    allowlist and an oversized image are left out of the freeze, counted, with their reasons."""
    project = make_project(db)
    key = make_key(db)
    reviewer_client, reviewer = client_as(app, db, "reviewer", project=project)
    redis.Redis.from_url(redis_url).delete("cpu")
    with moto_s3_server() as s3, http_image_server() as web:
        settings = settings.model_copy(
            update={
                "remote_image_allowlist": f"s3://cams, {web.base}",
                "remote_allow_private": True,
                "max_image_bytes": MAX_BYTES,
                **s3.settings(),
            }
        )
        app.state.settings = settings
        originals, batch = {}, []
        for i in range(N):
            data = png_bytes(32 + i, 24, (10 * i, 120, 0))
            if i % 2:
                url = s3.put("cams", f"day/{i}.png", data)
            else:
                web.files[f"/img/{i}.png"] = data
                url = web.url(f"/img/{i}.png")
            originals[f"ref-{i}"] = data
            batch.append(item(f"ref-{i}", image={"url": url}))
        batch.append(item("off-list", image={"url": s3.put("secret", "x.png", png_bytes())}))
        web.files["/huge.png"] = noisy_png(0, 400)
        assert len(web.files["/huge.png"]) > MAX_BYTES
        batch.append(item("huge", image={"url": web.url("/huge.png")}))

        answer = app_client(app, key).post("/api/v1/projects/roadwork/predictions", json={"items": batch})
        assert answer.status_code == 201, answer.text
        assert (
            answer.json()["images_stored"] == 0 and web.requests == []
        )  # the request only stored references
        items = {i.external_id: i for i in db.scalars(select(Item).where(Item.project_id == project.id))}
        for index, name in enumerate([*originals, "off-list", "huge"]):
            db.add(
                Annotation(
                    item_id=items[name].id, project_id=project.id, annotator_id=reviewer.id, label=index % 2
                )
            )
        db.commit()

        with celery_worker(settings, queues="cpu", pool="solo", extra_env=remote_env(settings)):
            wait_until(
                lambda: fetched(db, project) >= N + 1, timeout_s=90, message="worker fetched references"
            )

        status = reviewer_client.get("/api/v1/projects/roadwork/images/references").json()
        assert (status["references"], status["stored"], status["failed"], status["pending"]) == (
            N + 2,
            N,
            2,
            0,
        )
        assert sorted(e for f in status["failures"] for e in f["examples"]) == ["huge", "off-list"]

        version = reviewer_client.post("/api/v1/projects/roadwork/datasets", json={}).json()
        assert version["item_count"] == N, version
        reasons = {r["reason"]: r for r in version["stats"]["excluded"]["url_reasons"]}
        assert (
            version["stats"]["excluded"]["url_only"] + version["stats"]["excluded"]["holdout_url_only"] == 2
        )
        off_list = next(
            r for text, r in reasons.items() if "s3://secret/x.png is not on the allowlist" in text
        )
        too_big = next(r for text, r in reasons.items() if f"the limit is {MAX_BYTES}" in text)
        assert off_list["examples"] == ["off-list"] and too_big["examples"] == ["huge"]
        warning = next(w for w in version["stats"]["warnings"] if w["code"] == "url_only")
        assert warning["items"] == 2 and "not on the allowlist" in warning["message"]

        export = reviewer_client.get(
            "/api/v1/projects/roadwork/datasets/1/export", params={"format": "imagefolder"}
        )
        assert export.status_code == 200
        with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
            images = sorted(archive.read(n) for n in archive.namelist() if n.endswith(".png"))
        assert images == sorted(originals.values())

        db.expire_all()
        frozen = datasets.get_version(db_session=db, project=project, version=1)
        root = datasets.dataset_dir(settings, project, frozen)
        trainer_view = datasets.materialise_dataset(
            db_session=db,
            project=project,
            version=frozen,
            root=root,
            blobs=BlobStore(settings.resolved_blob_dir),
        )
        by_id = {i.id: name for name, i in items.items()}
        read = {by_id[r.item_id]: trainer_view.image_path(r).read_bytes() for r in trainer_view.records()}
        assert read == originals


def fetched(db, project: Project) -> int:
    db.expire_all()
    query = select(Item).where(Item.project_id == project.id)
    return sum(1 for i in db.scalars(query) if i.sha256 is not None or i.image_error is not None)


def app_client(app, key: str):
    from fastapi.testclient import TestClient

    return TestClient(app, headers={"X-API-Key": key})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_without_prefetch_a_freeze_queues_the_fetch_and_the_next_freeze_takes_the_images(
    app, db, settings, redis_url
):
    """With HARDCASE_REMOTE_PREFETCH off nothing is fetched at ingest; a freeze that finds only references says
    so (422 with the reason) and queues them for a worker, and the next freeze contains them."""
    project = make_project(db)
    reviewer_client, reviewer = client_as(app, db, "reviewer", project=project)
    redis.Redis.from_url(redis_url).delete("cpu")
    with http_image_server() as web:
        settings = settings.model_copy(
            update={
                "remote_image_allowlist": web.base,
                "remote_allow_private": True,
                "remote_prefetch": False,
            }
        )
        app.state.settings = settings
        batch = []
        for i in range(12):
            web.files[f"/{i}.png"] = png_bytes(30 + i, 20)
            batch.append(item(f"ref-{i}", image={"url": web.url(f"{i}.png")}))
        answer = app_client(app, make_key(db)).post(
            "/api/v1/projects/roadwork/predictions", json={"items": batch}
        )
        assert answer.status_code == 201, answer.text
        for index, found in enumerate(db.scalars(select(Item).where(Item.project_id == project.id))):
            db.add(
                Annotation(item_id=found.id, project_id=project.id, annotator_id=reviewer.id, label=index % 2)
            )
        db.commit()

        with celery_worker(settings, queues="cpu", pool="solo", extra_env=remote_env(settings)):
            first = reviewer_client.post("/api/v1/projects/roadwork/datasets", json={})
            assert first.status_code == 422 and "not fetched yet" in first.json()["errors"][0]["message"]
            wait_until(lambda: fetched(db, project) >= 12, timeout_s=90, message="the freeze's fetches")
        assert sorted(web.requests) == sorted(f"/{i}.png" for i in range(12))  # once each, by the worker
        second = reviewer_client.post("/api/v1/projects/roadwork/datasets", json={}).json()
        assert second["item_count"] == 12 and second["stats"]["excluded"]["url_reasons"] == []
