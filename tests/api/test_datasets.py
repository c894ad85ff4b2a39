"""Dataset versions: deterministic, immutable freezes; a fixed holdout that never enters training; exports."""

from __future__ import annotations

import io
import json
import zipfile

from app.core.blobs import BlobStore, stored_sha
from app.datasets.splits import content_hash, val_split
from app.ingest.remote import FETCH_OFF
from app.labels.models import Annotation
from tests.utils.factories import make_project
from tests.utils.labeled_data import client_as, seed_labeled_items

BASE = "/api/v1/projects/roadwork/datasets"


def setup_project(app, db, n: int = 30, **seed_kwargs):
    project = make_project(db, "roadwork")
    reviewer_client, reviewer = client_as(app, db, "reviewer", project=project)
    items = seed_labeled_items(
        db, BlobStore(app.state.settings.resolved_blob_dir), project, reviewer, n, **seed_kwargs
    )
    return project, reviewer_client, reviewer, items


def splits_of(client, version: int) -> dict[int, str]:
    body = client.get(f"{BASE}/{version}").json()
    return {row["item_id"]: row["split"] for row in body["items"]}


def test_freezing_twice_without_new_labels_gives_the_same_content_and_splits(app, db):
    _, client, _, _ = setup_project(app, db)
    first = client.post(BASE, json={}).json()
    second = client.post(BASE, json={}).json()
    assert (first["version"], second["version"]) == (1, 2)
    assert first["content_hash"] == second["content_hash"]
    assert splits_of(client, 1) == splits_of(client, 2)
    assert first["stats"]["items"] == 30 == first["item_count"]
    assert set(first["stats"]["splits"]) == {"train", "val", "holdout"}
    assert sum(first["stats"]["classes"].values()) == 30
    assert set(first["stats"]["slices"]) == {"is_night", "camera_id"}
    assert sum(first["stats"]["slices"]["camera_id"]["cam-a"].values()) == 10


def test_a_frozen_version_never_changes_when_labels_and_items_change(app, db):
    project, client, reviewer, items = setup_project(app, db)
    v1 = client.post(BASE, json={}).json()
    v1_rows = client.get(f"{BASE}/1").json()["items"]
    db.add(Annotation(item_id=items[0].id, project_id=project.id, annotator_id=reviewer.id, label=0))
    db.commit()
    seed_labeled_items(db, app.state.blobs, project, reviewer, 6, start_index=100, seed=7)
    v2 = client.post(BASE, json={}).json()
    again = client.get(f"{BASE}/1").json()
    assert again["items"] == v1_rows and again["content_hash"] == v1["content_hash"]
    assert v2["item_count"] > v1["item_count"]
    assert v2["content_hash"] != v1["content_hash"]


def test_holdout_items_never_enter_train_or_val_and_stay_fixed(app, db):
    project, client, reviewer, _ = setup_project(app, db)
    client.post(BASE, json={"holdout_fraction": 0.2})
    holdout = {i for i, s in splits_of(client, 1).items() if s == "holdout"}
    assert 4 <= len(holdout) <= 8
    seed_labeled_items(db, app.state.blobs, project, reviewer, 10, start_index=200, seed=3)
    client.post(BASE, json={"holdout_fraction": 0.5})  # only the first freeze picks the holdout
    v2 = splits_of(client, 2)
    assert {i for i, s in v2.items() if s == "holdout"} == holdout
    trained = {i for i, s in v2.items() if s in ("train", "val")} | {
        i for i, s in splits_of(client, 1).items() if s in ("train", "val")
    }
    assert not trained & holdout


def test_growing_the_holdout_takes_only_items_no_version_has_used(app, db):
    project, client, reviewer, _ = setup_project(app, db)
    client.post(BASE, json={})
    used = set(splits_of(client, 1))
    admin, _ = client_as(app, db, "admin")
    fresh = seed_labeled_items(db, app.state.blobs, project, reviewer, 12, start_index=300, seed=5)
    before = client.get("/api/v1/projects/roadwork/holdout").json()["size"]
    grown = admin.post("/api/v1/projects/roadwork/holdout/grow", json={"fraction": 0.5})
    assert grown.status_code == 200, grown.text
    assert grown.json()["added"] == 6 and grown.json()["size"] == before + 6
    v2 = splits_of(client, client.post(BASE, json={}).json()["version"])
    new_holdout = {i for i, s in v2.items() if s == "holdout"} - {
        i for i, s in splits_of(client, 1).items() if s == "holdout"
    }
    assert len(new_holdout) == 6
    assert new_holdout <= {item.id for item in fresh} and not new_holdout & used
    assert client.post("/api/v1/projects/roadwork/holdout/grow", json={"fraction": 0.5}).status_code == 403


def test_filters_restrict_training_items_but_keep_the_whole_holdout(app, db):
    _, client, _, _ = setup_project(app, db)
    client.post(BASE, json={})
    holdout = {i for i, s in splits_of(client, 1).items() if s == "holdout"}
    body = client.post(BASE, json={"camera_ids": ["cam-a"]}).json()
    rows = client.get(f"{BASE}/{body['version']}").json()["items"]
    assert {r["item_id"] for r in rows if r["split"] == "holdout"} == holdout
    assert body["filters"]["camera_ids"] == ["cam-a"]
    assert set(body["stats"]["slices"]["camera_id"]) >= {"cam-a"}
    trained = [r for r in rows if r["split"] != "holdout"]
    assert trained and all(r["external_id"] in {f"photo-{i}" for i in range(0, 30, 3)} for r in trained)


def test_url_only_items_are_left_out_and_counted(app, db):
    """Without an allowlist, referenced images are never fetched: the freeze counts them and says why."""
    _, client, _, _ = setup_project(app, db, n=20, url_only=3)
    body = client.post(BASE, json={}).json()
    assert body["stats"]["excluded"]["url_only"] == 3
    assert body["item_count"] == 20
    warning = next(w for w in body["stats"]["warnings"] if w["code"] == "url_only")
    assert warning["items"] == 3 and FETCH_OFF in warning["message"]
    assert [(r["reason"], r["items"]) for r in warning["reasons"]] == [(FETCH_OFF, 3)]
    assert 'data-freeze-warning="url_only"' in client.get("/projects/roadwork/datasets").text


def test_a_holdout_too_small_to_separate_models_is_warned_with_the_size_that_would(app, db):
    _, client, _, _ = setup_project(app, db, n=20)
    body = client.post(BASE, json={}).json()
    warning = next(w for w in body["stats"]["warnings"] if w["code"] == "small_holdout")
    assert warning["items"] == body["stats"]["splits"]["holdout"] and warning["needed"] > warning["items"]
    assert f"about {warning['needed']} items" in warning["message"]


def test_label_source_filter_keeps_only_reviewed_labels(app, db):
    project, client, reviewer, _ = setup_project(app, db, n=20)
    reviewed = seed_labeled_items(
        db, app.state.blobs, project, reviewer, 10, start_index=50, seed=9, reviewer=reviewer
    )
    client.post(BASE, json={})
    holdout = {i for i, s in splits_of(client, 1).items() if s == "holdout"}
    body = client.post(BASE, json={"label_sources": ["review"]}).json()
    rows = client.get(f"{BASE}/{body['version']}").json()["items"]
    assert {r["item_id"] for r in rows if r["split"] != "holdout"} <= {i.id for i in reviewed}
    assert {
        r["item_id"] for r in rows if r["split"] == "holdout"
    } == holdout  # filters never shrink the holdout


def test_version_items_page_by_split(app, db):
    _, client, _, _ = setup_project(app, db, n=20)
    stats = client.post(BASE, json={}).json()["stats"]
    page = client.get(f"{BASE}/1", params={"split": "train", "limit": 5}).json()
    assert len(page["items"]) == 5 and {r["split"] for r in page["items"]} == {"train"}
    rest = client.get(f"{BASE}/1", params={"split": "train", "offset": 5}).json()["items"]
    assert len(rest) == stats["splits"]["train"] - 5
    assert not {r["item_id"] for r in rest} & {r["item_id"] for r in page["items"]}


def test_freezing_needs_a_reviewer_and_labeled_items(app, db):
    project = make_project(db, "roadwork")
    annotator, _ = client_as(app, db, "annotator", project=project)
    assert annotator.post(BASE, json={}).status_code == 403
    outsider, _ = client_as(app, db, "reviewer", "outsider")
    assert outsider.post(BASE, json={}).status_code == 404  # a reviewer of other projects cannot see this one
    reviewer, _ = client_as(app, db, "reviewer", "rev", project=project)
    empty = reviewer.post(BASE, json={})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "filters"
    bad = reviewer.post(BASE, json={"val_fraction": 0.9})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "val_fraction"
    assert reviewer.get(f"{BASE}/7").status_code == 404


def test_export_returns_a_zip_with_the_format_files(app, db):
    _, client, _, _ = setup_project(app, db, n=20)
    client.post(BASE, json={})
    jsonl = client.get(f"{BASE}/1/export", params={"format": "jsonl"})
    assert jsonl.status_code == 200 and jsonl.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(jsonl.content)).namelist()
    assert {n.split("/", 1)[1] for n in names} == {"train.jsonl", "val.jsonl", "holdout.jsonl"}
    lines = zipfile.ZipFile(io.BytesIO(jsonl.content)).read(names[0]).decode().splitlines()
    assert lines and all('"label"' in line for line in lines)
    folder = zipfile.ZipFile(io.BytesIO(client.get(f"{BASE}/1/export?format=imagefolder").content)).namelist()
    assert any("/train/positive/" in n for n in folder) and any("/train/negative/" in n for n in folder)
    assert sum("/test/" in n for n in folder) == client.get(f"{BASE}/1").json()["stats"]["splits"]["holdout"]
    dpo = client.get(f"{BASE}/1/export?format=dpo")
    assert dpo.status_code == 200 and zipfile.ZipFile(io.BytesIO(dpo.content)).namelist()
    unknown = client.get(f"{BASE}/1/export?format=csv")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "format"


def test_val_split_is_stratified_deterministic_and_stable_as_the_pool_grows():
    labels = {i: int(i % 5 == 0) for i in range(1, 401)}
    first = val_split(7, labels, 0.2)
    assert first == val_split(7, labels, 0.2)
    positives_in_val = sum(1 for i, s in first.items() if s == "val" and labels[i] == 1)
    assert 8 <= positives_in_val <= 24  # about 20% of the 80 positives
    grown = val_split(7, {**labels, **{i: 0 for i in range(401, 600)}}, 0.2)
    assert all(grown[i] == first[i] for i in first)
    assert val_split(7, {1: 1, 2: 1}, 0.01)[1] == "val" or val_split(7, {1: 1, 2: 1}, 0.01)[2] == "val"


def test_content_hash_ignores_row_order_but_not_labels():
    rows = [(1, 0, [], "train"), (2, 1, [[0.1, 0.1, 0.5, 0.5, 0]], "val")]
    assert content_hash(rows) == content_hash(list(reversed(rows)))
    assert content_hash(rows) != content_hash([(1, 1, [], "train"), rows[1]])


def test_jsonl_export_rows_carry_each_items_own_metadata_and_image(app, db):
    """The export reads items as row tuples: every column must land under its own name for its own item."""
    from datetime import UTC, datetime

    from app.datasets.service import item_metadata

    _, client, _, items = setup_project(app, db, n=12)
    for n, item in enumerate(items):
        item.camera_id, item.is_night, item.lat, item.lon = f"cam-{n}", n % 2 == 0, 50.0 + n, 4.0 - n
        item.captured_at, item.width, item.height = datetime(2026, 5, 1 + n, tzinfo=UTC), 640 + n, 480 - n
    db.commit()
    client.post(BASE, json={})
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"{BASE}/1/export", params={"format": "jsonl"}).content))
    rows = [json.loads(line) for name in archive.namelist() for line in archive.read(name).splitlines()]
    db.expire_all()  # compare with the items as the database gives them back (SQLite keeps no time zone)
    by_id = {item.id: item for item in items}
    assert len(rows) == 12
    for row in rows:
        item = by_id[row["item_id"]]
        assert json.loads(row["metadata"]) == item_metadata(item)
        assert row["external_id"] == item.external_id and row["image"].endswith(
            stored_sha(item.image_uri, item.sha256)
        )


def test_zip_directory_keeps_every_file_in_path_order_stores_images_and_streams_large_ones(
    tmp_path, monkeypatch
):
    """Names are relative to the folder's parent, in pathlib's part-by-part order ("a/b/x" before "a/b-c");
    images and files too small to gain from it are stored, not deflated; an image above the one-read limit is
    streamed with the same bytes."""
    from app.datasets import service

    folder = tmp_path / "export"
    files = {
        "a/b/x.json": b'{"x": 1}' * 100,
        "a/b-c/small.jpg": b"\xff\xd8\xff" + bytes(range(256)),
        "a/large.png": b"\x89PNG\r\n\x1a\n" + bytes(5000),
        "top.txt": b"hello",
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    monkeypatch.setattr(service, "STORE_IN_ONE_READ_MAX", 1000)  # large.png streams

    service.zip_directory(folder, tmp_path / "out.zip")

    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        entries = archive.infolist()
        assert [e.filename for e in entries] == [
            "export/a/b/x.json",
            "export/a/b-c/small.jpg",
            "export/a/large.png",
            "export/top.txt",
        ]
        assert {e.filename: archive.read(e) for e in entries} == {f"export/{n}": d for n, d in files.items()}
        kinds = {e.filename.rsplit(".", 1)[1]: e.compress_type for e in entries}
        assert kinds == {"json": zipfile.ZIP_DEFLATED, "jpg": zipfile.ZIP_STORED, "png": zipfile.ZIP_STORED,
                         "txt": zipfile.ZIP_STORED}  # fmt: skip


def test_archive_files_go_straight_into_the_zip_named_like_the_folders_files(tmp_path, monkeypatch):
    """An archive export's images and small files go into the zip without a file made for them: images from
    the blob's bytes (named by them; one above the one-read limit streamed), stored; small files stored,
    larger ones deflated; named relative to the export's parent like the files the exporter wrote to its
    folder, which follow them."""
    from app.datasets import service

    folder = tmp_path / "export"
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "instances_train.json").write_bytes(b'{"images": []}')
    jpeg, png = tmp_path / "blobs" / "ab" / "abcdef", tmp_path / "blobs" / "cd" / "cdef01"
    for blob, data in ((jpeg, b"\xff\xd8\xff" + bytes(300)), (png, b"\x89PNG\r\n\x1a\n" + bytes(5000))):
        blob.parent.mkdir(parents=True)
        blob.write_bytes(data)
    monkeypatch.setattr(service, "STORE_IN_ONE_READ_MAX", 1000)  # the PNG streams
    label_line = b"0 0.500000 0.500000 0.100000 0.200000\n"

    with zipfile.ZipFile(tmp_path / "out.zip", "w") as zf:
        files = service.ZipFiles(zf, base=tmp_path)
        names = [files.add_image(str(blob), str(folder / "images" / "train"), stem) for blob, stem in
                 ((jpeg, "7"), (png, "8"))]  # fmt: skip
        named = tmp_path / "photo.jpeg"  # a file with its own suffix keeps it, as a folder export names it
        named.write_bytes(jpeg.read_bytes())
        names.append(files.add_image(str(named), str(folder / "images" / "val"), "9"))
        files.write(str(folder / "labels" / "train" / "7.txt"), label_line)
        files.write(str(folder / "labels" / "train" / "8.txt"), label_line * 40)
        service.zip_folder(zf, folder)

    assert names == ["7.jpg", "8.png", "9.jpeg"]
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.namelist() == ["export/images/train/7.jpg", "export/images/train/8.png",
                                      "export/images/val/9.jpeg", "export/labels/train/7.txt",
                                      "export/labels/train/8.txt",
                                      "export/annotations/instances_train.json"]  # fmt: skip
        assert archive.read("export/images/train/7.jpg") == jpeg.read_bytes()
        assert archive.read("export/images/train/8.png") == png.read_bytes()
        assert archive.read("export/labels/train/8.txt") == label_line * 40
        kinds = [entry.compress_type for entry in archive.infolist()[:5]]
        assert kinds == [zipfile.ZIP_STORED] * 4 + [zipfile.ZIP_DEFLATED]
    assert not (folder / "images").exists() and not (folder / "labels").exists()  # nothing made on disk


def test_image_archives_hold_the_same_files_as_a_folder_export(app, db, settings, tmp_path):
    """An archive export zips each image from the blob store instead of linking it into a folder first: the
    zip holds exactly the files, with the same bytes, that the folder export (links) holds."""
    from app.datasets.service import dataset_dir, get_version
    from app.projects.service import get_by_name
    from ml.dataset import DatasetVersionDir
    from ml.exports import IMAGE_FORMATS, export_dataset

    _, client, _, _ = setup_project(app, db, n=20)
    assert client.post(BASE, json={}).status_code == 201
    for fmt in sorted(IMAGE_FORMATS):
        response = client.get(f"{BASE}/1/export", params={"format": fmt})
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            zipped = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
        project = get_by_name(db_session=db, name="roadwork")
        version_dir = dataset_dir(settings, project, get_version(db_session=db, project=project, version=1))
        folder = tmp_path / fmt
        export_dataset(DatasetVersionDir(version_dir), fmt, folder)
        linked = {
            str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()
        }
        assert zipped == linked and any(name.endswith(".jpg") for name in zipped), fmt
