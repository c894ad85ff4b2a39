"""Browser tests: Debian's Chromium driven by Playwright against a real uvicorn server on PostgreSQL.

One server per module (seeding real photos costs a second); each test gets a fresh browser context.
"""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import Page, expect

from app.core.config import Settings
from app.core.db import session_scope
from app.demo import simulated_cascade
from app.ingest.service import ingest_batch
from app.main import create_app
from app.projects.schemas import ProjectCreate
from app.projects.service import create as create_project
from app.users.service import create_account
from ml.sample_data import roadwork_pool
from tests.conftest import _empty_all_tables

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "label-me-1"
BINARY_ITEMS = 25
DETECTION_ITEMS = 3


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_chromium.sh")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@dataclass(frozen=True)
class LiveSite:
    url: str
    settings: Settings
    sessions: object  # sessionmaker of the server's database
    binary_project: str
    detection_project: str
    box_classes: list[str]


def small_jpeg(path: Path, max_side: int = 480) -> bytes:
    """Real photos, shrunk so ingesting and serving them stays fast."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _raw_items(entries: list[dict], prefix: str, rng: np.random.Generator) -> tuple[list[dict], dict]:
    items, files = [], {}
    for index, entry in enumerate(entries):
        name = f"{prefix}-{entry['source']}-{entry['image'].stem}"
        files[name] = small_jpeg(entry["image"])
        items.append(
            {
                "external_id": name,
                "image": {"file": name},
                "metadata": {
                    "captured_at": f"2026-11-0{1 + index % 9}T{7 + index % 12:02d}:15:00+00:00",
                    "camera_id": f"{entry['source']}-cam-{index % 4}",
                    "is_night": entry["is_night"],
                },
                "predictions": simulated_cascade(entry["label"], entry["boxes"], entry["is_night"], rng),
            }
        )
    return items, files


def _pick_binary(pool: list[dict]) -> list[dict]:
    positives = [e for e in pool if e["source"] == "tracon" and e["label"] == 1][:10]
    negatives = [e for e in pool if e["source"] == "tracon" and e["label"] == 0][:9]
    night = [e for e in pool if e["is_night"]][:2]
    others = [e for e in pool if e["source"] == "negatives"][:4]
    return (positives + negatives + night + others)[:BINARY_ITEMS]


def seed(settings: Settings, sessions, blobs) -> tuple[str, str, list[str]]:
    pool, box_classes = roadwork_pool(settings.sample_data)
    rng = np.random.default_rng(3)
    with session_scope(sessions) as session:
        binary = create_project(
            db_session=session,
            project_in=ProjectCreate(name="roadwork", kind="binary", classes=["no_roadwork", "roadwork"]),
        )
        detection = create_project(
            db_session=session,
            project_in=ProjectCreate(
                name="cones",
                kind="detection",
                box_classes=box_classes,
                question="Is there roadwork? Box every cone, drum and barrier.",
            ),
        )
        for project, entries in (
            (binary, _pick_binary(pool)),
            (detection, [e for e in pool if e["source"] == "vtti" and e["boxes"]][:DETECTION_ITEMS]),
        ):
            items, files = _raw_items(entries, project.name, rng)
            summary = ingest_batch(
                db_session=session,
                project=project,
                raw_items=items,
                files=files,
                blobs=blobs,
                settings=settings,
            )
            assert not summary.errors, summary.errors
        create_account(
            db_session=session,
            username="ann",
            password=PASSWORD,
            role="annotator",
            project_ids=[binary.id, detection.id],
        )
        create_account(db_session=session, username="root", password=PASSWORD, role="admin")
    return "roadwork", "cones", box_classes


def log_in(page: Page, site, path: str, username: str = "root") -> None:
    """Opens `path`, logs in on the form it sends an anonymous visitor to, and waits to be back on `path`."""
    page.goto(site.url + path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(site.url + path)


def shown_item(page: Page) -> str:
    """Waits for an item on the label page and returns its id."""
    expect(page.locator("#labeler")).to_have_attribute("data-item-id", re.compile(r"\d+"))
    expect(page.locator("#image-wrap")).to_be_visible()
    return page.locator("#labeler").get_attribute("data-item-id")


def next_item(page: Page, previous: str) -> str:
    expect(page.locator("#labeler")).not_to_have_attribute("data-item-id", previous)
    return shown_item(page)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def live_site(
    migrated_urls: dict, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[LiveSite]:
    """A real uvicorn server on a free port, backed by a freshly emptied PostgreSQL database."""
    database_url = migrated_urls["get"]("postgresql")
    _empty_all_tables(database_url)
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("site"),
        database_url=database_url,
        broker_url=redis_url,
        secret_key="browser-test-secret",
    )
    app = create_app(settings)
    binary, detection, box_classes = seed(settings, app.state.sessionmaker, app.state.blobs)
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    host, port = sock.getsockname()
    yield LiveSite(
        url=f"http://{host}:{port}",
        settings=settings,
        sessions=app.state.sessionmaker,
        binary_project=binary,
        detection_project=detection,
        box_classes=box_classes,
    )
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()
    app.state.engine.dispose()
