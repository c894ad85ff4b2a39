"""The label page's image proxy for referenced images (allowlist, private addresses, size, project access, a
bounded cache) against a real S3-compatible server (moto) and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.ingest.images import NOT_AN_IMAGE
from app.ingest.proxy import ImageCache
from app.ingest.remote import FETCH_OFF, internal_address
from app.projects.models import Project
from tests.utils.accounts import item_ids
from tests.utils.factories import item, make_key, make_project, png_bytes
from tests.utils.labeled_data import client_as
from tests.utils.remote_sources import http_image_server, moto_s3_server, noisy_png

IMAGE = "/api/v1/projects/{project}/items/{item_id}/image"


@pytest.fixture(scope="module")
def s3():
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def web():
    with http_image_server() as server:
        yield server


def allow(app, web, s3, **extra) -> None:
    """The running app's settings now allowlist the test bucket and HTTP server (workers are not involved)."""
    app.state.settings = app.state.settings.model_copy(
        update={
            "remote_image_allowlist": f"s3://cams, {web.base}",
            "remote_allow_private": True,
            "remote_prefetch": False,
            **s3.settings(),
            **extra,
        }
    )


def ingest_references(app, db, project: str, refs: dict[str, str]) -> dict[str, int]:
    found = make_project(db, project)
    client = TestClient(app, headers={"X-API-Key": make_key(db)})
    batch = [item(name, image={"url": url}) for name, url in refs.items()]
    answer = client.post(f"/api/v1/projects/{project}/predictions", json={"items": batch})
    assert answer.status_code == 201, answer.text
    return item_ids(db, found)


def test_the_proxy_serves_s3_and_http_references_and_keeps_serving_them_from_its_cache(app, db, s3, web):
    """The browser gets referenced images from Hardcase; a second view is served from the on-disk cache."""
    allow(app, web, s3)
    photo, other = png_bytes(40, 30), noisy_png(1, 700)  # the 1.5 MB one comes over HTTP in many reads
    web.files["/a.png"] = other
    ids = ingest_references(
        app, db, "roadwork", {"s3": s3.put("cams", "p/1.png", photo), "web": web.url("a.png")}
    )
    labeler, _ = client_as(app, db, "annotator", "labeler", project=_project(db, "roadwork"))
    for name, data in (("s3", photo), ("web", other)):
        got = labeler.get(IMAGE.format(project="roadwork", item_id=ids[name]))
        assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "image/png"
    s3.client().delete_object(Bucket="cams", Key="p/1.png")
    del web.files["/a.png"]
    for name, data in (("s3", photo), ("web", other)):
        assert labeler.get(IMAGE.format(project="roadwork", item_id=ids[name])).content == data
    assert web.requests == ["/a.png"]


def test_the_proxy_refuses_what_settings_forbid_with_the_reason_never_a_500(app, db, s3, web):
    """Off the allowlist, a loopback address while private addresses are off, an oversized or missing image:
    each is a 4xx/502 naming why; with an empty allowlist nothing is fetched at all."""
    web.files["/ok.png"] = png_bytes()
    web.files["/big.png"] = png_bytes(600, 600)
    refs = {
        "ok": web.url("ok.png"),
        "off-list": s3.put("secret", "x.png", png_bytes()),
        "big": web.url("big.png"),
        "gone": web.url("gone.png"),
        "relative": "/data/upload/1/b.jpg",
    }
    ids = ingest_references(app, db, "roadwork", refs)
    admin, _ = client_as(app, db, "admin")

    def answer(name: str):
        response = admin.get(IMAGE.format(project="roadwork", item_id=ids[name]))
        return response.status_code, response.json()["errors"][0][
            "message"
        ] if response.status_code >= 400 else ""

    assert answer("ok") == (403, FETCH_OFF)
    allow(app, web, s3, remote_allow_private=False, max_image_bytes=1024)
    status, reason = answer("ok")
    assert status == 403 and "resolves to 127.0.0.1, a private, loopback or link-local address" in reason
    allow(app, web, s3, max_image_bytes=1024)
    assert answer("ok")[0] == 200
    status, reason = answer("off-list")
    assert status == 403 and "s3://secret/x.png is not on the allowlist" in reason
    status, reason = answer("big")
    assert status == 502 and "the limit is 1024" in reason
    status, reason = answer("gone")
    assert status == 502 and "was not found" in reason
    assert answer("relative")[0] == 404


def test_slow_oversized_and_non_image_references_are_refused_with_their_reason(app, db, s3, web):
    """The time limit cuts a slow server, the size limit holds for S3 objects too, and bytes that are not an
    image are never served from Hardcase's origin."""
    web.files["/slow.png"] = png_bytes()
    web.delays["/slow.png"] = 3
    web.files["/page.html"] = b"<html><script>alert(1)</script></html>"
    refs = {
        "slow": web.url("slow.png"),
        "page": web.url("page.html"),
        "big-object": s3.put("cams", "big.png", png_bytes(600, 600)),
    }
    ids = ingest_references(app, db, "roadwork", refs)
    allow(app, web, s3, max_image_bytes=1024, remote_fetch_timeout_s=0.5)
    admin, _ = client_as(app, db, "admin")

    def answer(name: str) -> tuple[int, str]:
        response = admin.get(IMAGE.format(project="roadwork", item_id=ids[name]))
        return response.status_code, response.json()["errors"][0]["message"]

    status, reason = answer("slow")
    assert status == 502 and "took longer than 0.5 s" in reason
    status, reason = answer("page")
    assert status == 502 and reason == NOT_AN_IMAGE
    status, reason = answer("big-object")
    assert status == 502 and "the limit is 1024" in reason


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("169.254.169.254", True),  # cloud metadata
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.7", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fe80::1%eth0", True),
        ("::ffff:127.0.0.1", True),
        ("fd00::1", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
    ],
)
def test_private_loopback_link_local_and_mapped_addresses_count_as_internal(address, internal):
    """The address check refuses every internal range, IPv4-mapped IPv6 and zone ids included."""
    assert internal_address(address) is internal


def test_a_redirect_off_the_allowlist_is_refused(app, db, s3, web):
    """Every hop is checked: an allowlisted server cannot redirect the fetch somewhere else."""
    allow(app, web, s3)
    web.redirects["/moved.png"] = "http://127.0.0.2:9/elsewhere.png"
    ids = ingest_references(app, db, "roadwork", {"moved": web.url("moved.png")})
    admin, _ = client_as(app, db, "admin")
    response = admin.get(IMAGE.format(project="roadwork", item_id=ids["moved"]))
    assert response.status_code == 403
    assert "redirected to http://127.0.0.2:9/elsewhere.png" in response.json()["errors"][0]["message"]


def test_the_proxy_follows_project_access(app, db, s3, web):
    """A member sees the referenced image; a non-member gets the same 404 as for a missing item."""
    allow(app, web, s3)
    web.files["/a.png"] = png_bytes()
    ids = ingest_references(app, db, "roadwork", {"a": web.url("a.png")})
    other = make_project(db, "other")
    outsider, _ = client_as(app, db, "annotator", "outsider", project=other)
    path = IMAGE.format(project="roadwork", item_id=ids["a"])
    assert outsider.get(path).status_code == 404
    assert TestClient(app).get(path).status_code == 401
    assert web.requests == []  # refused before anything is fetched


def test_the_cache_stays_within_its_size_and_drops_the_least_recently_served(tmp_path):
    """Past its bound the cache evicts by last use; a file served again survives."""
    cache = ImageCache(tmp_path / "cache", max_bytes=2500)
    for name in ("a", "b"):
        cache.put(name, b"x" * 1000)
    os.utime(cache.path_for("a"), (1, 1))
    os.utime(cache.path_for("b"), (2, 2))
    assert cache.get("a") is not None  # served again: now the most recent
    cache.put("c", b"y" * 1000)
    assert cache.size() <= 2500
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    assert cache.put("huge", b"z" * 3000) is None  # larger than the whole cache: served, never stored


def _project(db, name: str) -> Project:
    return db.scalar(select(Project).where(Project.name == name))
