"""The annotator's tools in real Chromium, driven by the keyboard as a user would: a yes with boxes on a binary
project, a failed answer that keeps the work and the lease, leases given back when the page closes, zoom and
pan, Tab/arrow box editing, the flag key, the daily goal, instructions, and the reason above the fold."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update

from app.auth.users import get_by_username
from app.core.blobs import BlobStore
from app.core.db import session_scope, utcnow
from app.ingest.models import Prediction
from app.ingest.service import ingest_batch
from app.labels.models import Annotation, Flag
from app.projects.schemas import ProjectCreate
from app.projects.service import create as create_project
from app.projects.service import get_by_name, key_scheme
from app.queue.models import Hardness
from app.queue.service import as_utc
from app.users.service import create_account
from ml.sample_data import roadwork_pool
from tests.browser.conftest import PASSWORD, log_in, next_item, shown_item, small_jpeg

pytestmark = pytest.mark.browser
PROJECT = "works"
SHOTS = Path("/tmp/shots")
INSTRUCTIONS = (
    "Answer **yes** for roadwork.\n\n- take the *boxes* with `A`\n- <script>alert(1)</script> stays text"
)
USERS = ("yes", "fails", "closes", "beats", "zooms", "edits", "flags", "goals", "counts", "reads")


@pytest.fixture(scope="module")
def works(live_site) -> dict:
    """A binary project whose yes carries boxes: every item has a detector that names its boxes' classes."""
    pool, box_classes = roadwork_pool(live_site.settings.sample_data)
    entries = [e for e in pool if e["source"] == "tracon" and 2 <= len(e["boxes"]) <= 8][:24]
    items, files = [], {}
    for index, entry in enumerate(entries):
        name = f"works-{entry['image'].stem}"
        files[name] = small_jpeg(entry["image"])
        boxes = [[*b[:4], box_classes[b[4]], 0.8] for b in entry["boxes"]]
        items.append(
            {
                "external_id": name,
                "image": {"file": name},
                "metadata": {"camera_id": f"cam-{index % 3}", "is_night": False},
                "predictions": [
                    {"model": "yolo-cones", "score": 0.9, "boxes": boxes},
                    {"model": "vit-roadwork", "score": 0.1 + 0.02 * index},
                ],
            }
        )
    with session_scope(live_site.sessions) as session:
        project = create_project(
            db_session=session,
            project_in=ProjectCreate(
                name=PROJECT,
                classes=["no_roadwork", "roadwork"],
                box_classes=box_classes,
                instructions=INSTRUCTIONS,
                daily_goal=5,
            ),
        )
        summary = ingest_batch(
            db_session=session,
            project=project,
            raw_items=items,
            files=files,
            blobs=BlobStore(live_site.settings.resolved_blob_dir),
            settings=live_site.settings,
        )
        assert not summary.errors, summary.errors
        for username in USERS:
            create_account(
                db_session=session,
                username=username,
                password=PASSWORD,
                role="annotator",
                project_ids=[project.id],
            )
        scheme = key_scheme(project)
        _seed_unknown_class_project(session, live_site, box_classes, items[0], files)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {"box_classes": box_classes, "keys": {c["name"]: c["key"] for c in scheme["box_classes"]}}


def _seed_unknown_class_project(session, site, box_classes: list[str], item: dict, files: dict) -> None:
    """One item whose detector names a class the project does not have."""
    project = create_project(
        db_session=session, project_in=ProjectCreate(name="unknowns", box_classes=box_classes)
    )
    stray = {
        **item,
        "predictions": [
            {"model": "yolo-old", "score": 0.9, "boxes": [[0.1, 0.1, 0.4, 0.5, "traffic_cone", 0.9]]}
        ],
    }
    summary = ingest_batch(
        db_session=session,
        project=project,
        raw_items=[stray],
        files={item["image"]["file"]: files[item["image"]["file"]]},
        blobs=BlobStore(site.settings.resolved_blob_dir),
        settings=site.settings,
    )
    assert not summary.errors, summary.errors
    create_account(
        db_session=session, username="strays", password=PASSWORD, role="annotator", project_ids=[project.id]
    )


def open_label_page(page: Page, site, username: str, project: str = PROJECT) -> str:
    log_in(page, site, f"/projects/{project}/label", username)
    return shown_item(page)


def annotations_by(site, username: str) -> list[Annotation]:
    with site.sessions() as session:
        user = get_by_username(db_session=session, username=username)
        return list(
            session.scalars(
                select(Annotation).where(Annotation.annotator_id == user.id).order_by(Annotation.id)
            )
        )


def leases_of(site, username: str) -> list[int]:
    with site.sessions() as session:
        user = get_by_username(db_session=session, username=username)
        return list(
            session.scalars(
                select(Hardness.item_id).where(Hardness.status == "leased", Hardness.lease_owner == user.id)
            )
        )


def suggestion_classes(page: Page) -> list[str]:
    return page.locator("#box-layer .box").evaluate_all("els => els.map(e => e.dataset.class)")


def test_a_yes_keeps_the_detectors_boxes_with_their_class_names(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "yes")
    offered = page.locator("#box-layer .suggestion").count()
    assert offered >= 2
    page.keyboard.press("a")
    expect(page.locator("#box-count")).to_have_text(str(offered))
    taken = suggestion_classes(page)
    page.keyboard.press("Tab")  # the first box
    page.keyboard.press(works["keys"]["barrier"])
    expect(page.locator("#box-layer .box.selected text")).to_have_text("barrier")
    page.screenshot(path=SHOTS / "yes-with-boxes.png")
    page.keyboard.press("y")
    next_item(page, item)
    expect(page.locator("#status")).to_have_text(f"Saved: yes with {offered} boxes")
    [saved] = annotations_by(live_site, "yes")
    assert saved.label == 1 and str(saved.item_id) == item
    assert [works["box_classes"][b[4]] for b in saved.boxes] == ["barrier", *taken[1:]]


def test_a_refused_answer_keeps_the_boxes_once_and_the_lease(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "fails")
    page.keyboard.press("a")
    offered = int(page.locator("#box-count").inner_text())
    page.keyboard.press("n")  # a "no" cannot carry boxes: the server refuses it
    expect(page.locator("#status")).to_contain_text("cannot carry boxes")
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    expect(page.locator("#labeler")).to_have_attribute("data-item-id", item)
    expect(page.locator("#box-count")).to_have_text(str(offered))
    page.keyboard.press("a")  # nothing left to take: the boxes are there once
    expect(page.locator("#box-layer .box")).to_have_count(offered)
    assert int(item) in leases_of(live_site, "fails")
    page.screenshot(path=SHOTS / "refused-no-with-boxes.png")
    page.keyboard.press("y")
    next_item(page, item)
    expect(page.locator("#status")).to_have_text(f"Saved: yes with {offered} boxes")
    [saved] = annotations_by(live_site, "fails")
    assert (str(saved.item_id), saved.label, len(saved.boxes)) == (item, 1, offered)


def test_closing_the_page_gives_its_leases_back(browser: Browser, live_site, works) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    open_label_page(page, live_site, "closes")
    expect(page.locator("#labeler")).to_have_attribute("data-prefetched", "1")
    assert len(leases_of(live_site, "closes")) == 2  # the item on screen and the one behind it
    page.close()
    deadline = time.monotonic() + 10
    while leases_of(live_site, "closes") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leases_of(live_site, "closes") == []
    context.close()


def test_an_open_page_renews_its_leases_every_half_minute(page: Page, live_site, works) -> None:
    page.clock.install()
    open_label_page(page, live_site, "beats")
    expect(page.locator("#labeler")).to_have_attribute("data-prefetched", "1")
    held = leases_of(live_site, "beats")
    almost_gone = utcnow() + timedelta(seconds=20)
    with session_scope(live_site.sessions) as session:
        session.execute(
            update(Hardness).where(Hardness.item_id.in_(held)).values(lease_expires_at=almost_gone)
        )
    page.clock.fast_forward("00:31")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and min(expiries(live_site, held)) <= almost_gone:
        time.sleep(0.1)
    assert min(expiries(live_site, held)) > almost_gone + timedelta(seconds=60)
    assert sorted(leases_of(live_site, "beats")) == sorted(held)


def expiries(site, item_ids: list[int]) -> list:
    with site.sessions() as session:
        rows = session.scalars(select(Hardness.lease_expires_at).where(Hardness.item_id.in_(item_ids)))
        return [as_utc(r) for r in rows]


def test_zoom_by_keys_and_wheel_and_pan_by_space_drag(page: Page, live_site, works) -> None:
    open_label_page(page, live_site, "zooms")
    stage = page.locator("#stage")
    before = page.locator("#item-image").bounding_box()
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(stage).to_have_attribute("data-zoom", "1.563")
    expect(page.locator("#zoom-level")).to_have_text("156%")
    zoomed = page.locator("#item-image").bounding_box()
    assert zoomed["width"] == pytest.approx(before["width"] * 1.5625, rel=0.01)
    centre = (before["x"] + before["width"] / 2, before["y"] + before["height"] / 2)
    page.mouse.move(*centre)
    page.keyboard.down(" ")
    page.mouse.down()
    page.mouse.move(centre[0] + 80, centre[1] + 40, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    panned = page.locator("#item-image").bounding_box()
    assert (panned["x"] - zoomed["x"], panned["y"] - zoomed["y"]) == pytest.approx((80, 40), abs=2)
    expect(page.locator("#box-count")).to_have_text("0")  # panning drew no box
    page.screenshot(path=SHOTS / "zoomed-and-panned.png")
    page.keyboard.press("0")
    expect(stage).to_have_attribute("data-zoom", "1.000")
    page.mouse.move(*centre)
    page.mouse.wheel(0, -200)
    expect(stage).to_have_attribute("data-zoom", "1.250")
    page.mouse.wheel(0, 200)
    expect(stage).to_have_attribute("data-zoom", "1.000")
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(stage).to_have_attribute("data-zoom", "1.563")  # read the box only once the zoom is applied
    zoomed = page.locator("#item-image").bounding_box()

    def at(fx: float, fy: float) -> tuple[float, float]:
        return zoomed["x"] + zoomed["width"] * fx, zoomed["y"] + zoomed["height"] * fy

    # Pressing on a model's dashed suggestion takes it, so the drag starts where no suggestion lies.
    suggestions = [r.bounding_box() for r in page.locator("#box-layer .suggestion rect").all()]

    def on_a_suggestion(x: float, y: float) -> bool:
        return any(
            b["x"] <= x <= b["x"] + b["width"] and b["y"] <= y <= b["y"] + b["height"] for b in suggestions
        )

    seen = stage.bounding_box()  # the zoomed photo overflows the stage: draw where it is visible

    def visible(x: float, y: float) -> bool:
        return seen["x"] < x < seen["x"] + seen["width"] and seen["y"] < y < seen["y"] + seen["height"]

    starts = sorted(
        ((round(0.05 * i, 2), round(0.05 * j, 2)) for i in range(2, 15) for j in range(2, 15)),
        key=lambda p: abs(p[0] - 0.4) + abs(p[1] - 0.4),
    )
    fx, fy = next(
        (fx, fy)
        for fx, fy in starts
        if visible(*at(fx, fy)) and visible(*at(fx + 0.2, fy + 0.2)) and not on_a_suggestion(*at(fx, fy))
    )
    page.mouse.move(*at(fx, fy))
    page.mouse.down()
    page.mouse.move(*at(fx + 0.2, fy + 0.2), steps=4)
    page.mouse.up()  # a box drawn on the zoomed image lands where it was drawn on the photo
    expect(page.locator("#box-count")).to_have_text("1")
    page.keyboard.press("y")
    expect(page.locator("#status")).to_have_text("Saved: yes with 1 box")
    [saved] = annotations_by(live_site, "zooms")
    assert saved.boxes[0][:4] == pytest.approx([fx, fy, fx + 0.2, fy + 0.2], abs=0.01)


def test_tab_selects_boxes_arrows_move_and_shift_arrows_resize(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "edits")
    page.keyboard.press("a")
    count = int(page.locator("#box-count").inner_text())
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # the second box
    expect(page.locator("#box-layer")).to_have_attribute("data-selected", "1")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#box-layer")).to_have_attribute("data-selected", "0")
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    for _ in range(2):
        page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.press("Delete")  # the second box goes
    expect(page.locator("#box-count")).to_have_text(str(count - 1))
    page.screenshot(path=SHOTS / "keyboard-box-editing.png")
    page.keyboard.press("Enter")
    next_item(page, item)
    expect(page.locator("#status")).to_contain_text("Saved: yes")
    with live_site.sessions() as session:
        offered = session.scalar(
            select(Prediction.boxes).where(Prediction.item_id == int(item), Prediction.model == "yolo-cones")
        )
    [saved] = annotations_by(live_site, "edits")
    assert saved.label == 1 and len(saved.boxes) == count - 1
    x1, y1, x2, y2 = offered[0][:4]
    dx = min(0.02, 1 - x2)  # a box at the edge stops there
    assert saved.boxes[0][:4] == pytest.approx([x1 + dx, y1, x2 + dx, min(1.0, y2 + 0.01)], abs=1e-4)
    kept = [box[:4] for box in saved.boxes[1:]]
    assert kept == [pytest.approx(box[:4], abs=1e-4) for box in offered[2:]]


def test_the_flag_key_asks_a_reviewer_and_moves_on(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "flags")
    page.keyboard.press("f")
    dialog = page.get_by_role("dialog", name="Flag this item for a reviewer")
    expect(dialog).to_be_visible()
    page.keyboard.type("two answers possible")
    page.screenshot(path=SHOTS / "flag-dialog.png")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    next_item(page, item)
    expect(page.locator("#status")).to_have_text("Flagged for a reviewer")
    with live_site.sessions() as session:
        flag = session.scalar(select(Flag).where(Flag.item_id == int(item)))
        status = session.get(Hardness, int(item)).status
    assert flag is not None and flag.reason == "two answers possible" and status == "review"


def test_the_progress_bar_counts_toward_the_daily_goal(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "goals")
    bar = page.get_by_role("progressbar")
    expect(page.locator("#goal-text")).to_have_text("0 of 5 today")
    for _ in range(2):
        page.keyboard.press("2")  # "2" is yes by class order (1 = no)
        item = next_item(page, item)
    expect(page.locator("#goal-text")).to_have_text("2 of 5 today")
    expect(bar).to_have_attribute("value", "2")
    assert [a.label for a in annotations_by(live_site, "goals")] == [1, 1]


def test_answers_count_at_once_and_the_pool_counts_are_read_at_most_every_15_s(
    page: Page, live_site, works
) -> None:
    """/progress counts the whole pool (0.2 s at a million items): the page read it after every answer, which cost
    more than the answer itself. Now the user's own answers and undos move the goal at once, and the pool's
    counts are read when the page opens and then at most every 15 s."""
    reads: list[str] = []
    page.on(
        "request", lambda request: reads.append(request.url) if request.url.endswith("/progress") else None
    )
    item = open_label_page(page, live_site, "counts")
    expect(page.locator("#goal-text")).to_have_text("0 of 5 today")
    for _ in range(3):
        page.keyboard.press("2")
        item = next_item(page, item)
    expect(page.locator("#goal-text")).to_have_text("3 of 5 today")
    page.keyboard.press("u")
    expect(page.locator("#goal-text")).to_have_text("2 of 5 today")
    assert [a.state for a in annotations_by(live_site, "counts")] == ["current", "current", "retracted"]
    assert len(reads) == 1, reads  # the page's first read; the next is due 15 s after it


def test_instructions_render_safely_and_the_reason_is_visible_at_1366x768(
    browser: Browser, live_site, works
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    open_label_page(page, live_site, "reads")
    body = page.locator("#instructions .instructions-body")
    expect(body.locator("strong")).to_have_text("yes")
    expect(body.locator("li em")).to_have_text("boxes")
    expect(body.locator("li code")).to_have_text("A")
    expect(body).to_contain_text("<script>alert(1)</script> stays text")
    expect(body.locator("script")).to_have_count(0)
    expect(page.locator("#reasons li").first).to_be_in_viewport()
    expect(page.get_by_role("heading", name=re.compile("Why it is hard"))).to_be_in_viewport()
    page.screenshot(path=SHOTS / "label-1366x768.png")
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard")
    expect(help_dialog).to_contain_text("set the selected box's class")
    class_keys = help_dialog.locator(".key-list kbd").all_inner_texts()
    assert len(class_keys) == len(works["box_classes"]) and all(k.isalpha() for k in class_keys)
    expect(help_dialog.locator(".key-list span", has_text="barrier").locator("kbd")).to_have_text(
        works["keys"]["barrier"].upper()
    )
    page.screenshot(path=SHOTS / "label-help-scheme.png")
    context.close()


def test_a_binary_project_without_box_classes_offers_no_box_editor(page: Page, live_site, works) -> None:
    page.goto(f"{live_site.url}/login?next=/projects/roadwork/label")
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    shown_item(page)
    expect(page.locator("#box-layer")).to_have_count(0)
    expect(page.locator("#accept-all")).to_have_count(0)
    with live_site.sessions() as session:
        assert get_by_name(db_session=session, name="roadwork").box_classes == []


def test_a_box_of_an_unknown_class_is_named_and_fixed_with_a_letter(page: Page, live_site, works) -> None:
    item = open_label_page(page, live_site, "strays", project="unknowns")
    page.keyboard.press("a")
    expect(page.locator("#box-layer .box text")).to_have_text("? traffic_cone")
    page.keyboard.press("y")
    expect(page.locator("#status")).to_contain_text("unknown box class 'traffic_cone'")
    expect(page.locator("#labeler")).to_have_attribute("data-item-id", item)
    page.screenshot(path=SHOTS / "unknown-box-class.png")
    page.keyboard.press("Tab")
    page.keyboard.press(works["keys"]["cone"])
    expect(page.locator("#box-layer .box text")).to_have_text("cone")
    page.keyboard.press("y")
    expect(page.locator("#status")).to_have_text("Saved: yes with 1 box")
    [saved] = annotations_by(live_site, "strays")
    assert [works["box_classes"][b[4]] for b in saved.boxes] == ["cone"]
