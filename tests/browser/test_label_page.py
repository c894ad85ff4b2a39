"""The label page in real headless Chromium: log in, answer by keyboard, undo, draw a box, watch progress."""

from __future__ import annotations

import re
import statistics

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.ingest.models import Prediction
from app.labels.models import Annotation
from app.projects.service import get_by_name
from tests.browser.conftest import PASSWORD, next_item, shown_item

pytestmark = pytest.mark.browser
KEYS = ["2", "n", "y", "1", "2"]  # digits answer in class order: 1 no, 2 yes
KEY_LABELS = {"2": 1, "y": 1, "1": 0, "n": 0}
# Times each key press until the next item is on screen, inside the page (no test-driver latency).
MEASURE_SWAPS = """() => {
  window.swapMs = [];
  let pressed = null;
  document.addEventListener("keydown", () => { pressed = performance.now(); }, true);
  new MutationObserver(() => {
    if (pressed !== null) { window.swapMs.push(performance.now() - pressed); pressed = null; }
  }).observe(document.getElementById("labeler"), { attributes: true, attributeFilter: ["data-item-id"] });
}"""


def log_in(page: Page, site, path: str, username: str = "ann") -> None:
    page.goto(site.url + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(site.url + path)


def annotations_of(site, project_name: str) -> list[Annotation]:
    with site.sessions() as session:
        project = get_by_name(db_session=session, name=project_name)
        return list(
            session.scalars(
                select(Annotation).where(Annotation.project_id == project.id).order_by(Annotation.id)
            )
        )


def predictions_of(site, item_id: int) -> list[Prediction]:
    with site.sessions() as session:
        return list(session.scalars(select(Prediction).where(Prediction.item_id == item_id)))


def test_an_html_page_without_a_session_redirects_to_login(page: Page, live_site) -> None:
    response = page.goto(live_site.url + "/projects/roadwork/label")
    assert response is not None and response.ok
    expect(page).to_have_url(live_site.url + "/login?next=%2Fprojects%2Froadwork%2Flabel")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_wrong_password_shows_an_error_and_no_session(page: Page, live_site, screenshots) -> None:
    page.goto(live_site.url + "/login")
    page.get_by_label("Username").fill("ann")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value("ann")
    page.screenshot(path=screenshots / "login-error.png")
    page.goto(live_site.url + "/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_repeated_wrong_passwords_lock_the_login_form(page: Page, live_site) -> None:
    page.goto(live_site.url + "/login")
    for _ in range(5):
        page.get_by_label("Username").fill("mallory")
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")


def test_an_admin_creates_an_annotator_on_the_users_page(page: Page, live_site, screenshots) -> None:
    log_in(page, live_site, "/admin/users", username="root")
    form = page.locator("form.create-user")
    form.get_by_label("Username").fill("newbie")
    form.get_by_label("Password").fill("pass-1234")
    form.get_by_label("roadwork").check()
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("Created newbie")
    row = page.get_by_role("row").filter(has_text="newbie")
    expect(row.get_by_label("Role of newbie")).to_have_value("annotator")
    expect(row.get_by_label("roadwork")).to_be_checked()
    expect(row.get_by_label("cones")).not_to_be_checked()
    page.screenshot(path=screenshots / "admin-users.png", full_page=True)
    page.goto(live_site.url + "/")
    expect(page.get_by_role("link", name="Start labeling")).to_have_count(2)
    page.screenshot(path=screenshots / "projects.png")


def test_labeling_by_keyboard_with_undo_and_a_drawn_box(page: Page, live_site, screenshots) -> None:
    log_in(page, live_site, "/projects/roadwork/label")
    item = shown_item(page)
    expect(page.locator("#done-today")).to_have_text("0")
    expect(page.locator("#model-scores li")).to_have_count(3)
    expect(page.locator("#reasons li").first).not_to_be_empty()
    page.screenshot(path=screenshots / "label-first-item.png")

    page.evaluate(MEASURE_SWAPS)
    answers: dict[str, int] = {}
    for index in range(20):
        key = KEYS[index % len(KEYS)]
        # As a person would: look at the image while the next one loads behind it.
        expect(page.locator("#labeler")).to_have_attribute("data-prefetched", "1")
        page.keyboard.press(key)
        answers[item] = KEY_LABELS[key]
        item = next_item(page, item)
        if index == 0:
            expect(page.locator("#done-today")).to_have_text("1")
    swaps = page.evaluate("window.swapMs")
    assert len(swaps) == 20
    print(
        f"key press to next item on screen: median {statistics.median(swaps):.1f} ms, max {max(swaps):.1f} ms"
    )
    expect(page.locator("#done-today")).to_have_text("20")
    page.screenshot(path=screenshots / "label-after-20.png")

    last_item = list(answers)[-1]
    page.keyboard.press("u")
    expect(page.locator("#labeler")).to_have_attribute("data-item-id", last_item)
    expect(page.locator("#done-today")).to_have_text("19")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_visible()
    page.screenshot(path=screenshots / "label-help.png")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_hidden()
    page.keyboard.press("1" if answers[last_item] else "2")
    answers[last_item] = 1 - answers[last_item]
    next_item(page, last_item)
    expect(page.locator("#done-today")).to_have_text("20")

    rows = annotations_of(live_site, "roadwork")
    current = {str(a.item_id): a.label for a in rows if a.state == "current"}
    retracted = [a for a in rows if a.state == "retracted"]
    assert current == answers
    assert len(rows) == 21
    assert [str(a.item_id) for a in retracted] == [last_item]
    assert retracted[0].label == 1 - answers[last_item]
    assert all(a.boxes == [] and a.duration_ms is not None and a.duration_ms >= 0 for a in rows)

    page.goto(live_site.url + "/projects/cones/label")
    item = shown_item(page)
    expect(page.locator("#box-layer .suggestion").first).to_be_visible()
    page.screenshot(path=screenshots / "detect-suggestions.png")
    image = page.locator("#item-image").bounding_box()

    def drag(x1: float, y1: float, x2: float, y2: float) -> None:
        """Drags between two points given as fractions of the image."""
        at = (image["x"] + image["width"] * x1, image["y"] + image["height"] * y1)
        to = (image["x"] + image["width"] * x2, image["y"] + image["height"] * y2)
        page.mouse.move(*at)
        page.mouse.down()
        page.mouse.move((at[0] + to[0]) / 2, (at[1] + to[1]) / 2, steps=3)
        page.mouse.move(*to, steps=3)
        page.mouse.up()

    drag(0.2, 0.3, 0.45, 0.7)  # draw
    expect(page.locator("#box-layer .box.selected")).to_have_count(1)
    drag(0.45, 0.7, 0.5, 0.75)  # resize by the bottom-right handle: (0.2, 0.3, 0.5, 0.75)
    drag(0.35, 0.5, 0.45, 0.4)  # move by (+0.1, -0.1): (0.3, 0.2, 0.6, 0.65)
    drag(0.75, 0.1, 0.9, 0.25)  # a second box...
    expect(page.locator("#box-count")).to_have_text("2")
    page.keyboard.press("Delete")  # ...deleted again
    expect(page.locator("#box-count")).to_have_text("1")
    drag(0.45, 0.45, 0.45, 0.45)  # a click selects the remaining box
    page.keyboard.press("w")  # box classes take letters: q, w, e, ...
    expect(page.locator("#box-layer .box.selected text")).to_have_text(live_site.box_classes[1])
    page.screenshot(path=screenshots / "detect-drawn-box.png")
    page.keyboard.press("Enter")
    next_item(page, item)
    expect(page.locator("#done-today")).to_have_text("1")

    drawn_item, item = item, shown_item(page)
    suggestions = page.locator("#box-layer .suggestion")
    offered = suggestions.count()
    assert offered >= 2
    suggestions.first.click()
    expect(page.locator("#box-count")).to_have_text("1")
    page.keyboard.press("a")
    expect(page.locator("#box-count")).to_have_text(str(offered))
    expect(suggestions).to_have_count(0)
    page.screenshot(path=screenshots / "detect-accepted.png")
    page.keyboard.press("Enter")
    next_item(page, item)
    expect(page.locator("#done-today")).to_have_text("2")

    drawn, accepted = annotations_of(live_site, "cones")
    assert str(drawn.item_id) == drawn_item and drawn.label == 1 and drawn.state == "current"
    [[x1, y1, x2, y2, cls]] = drawn.boxes
    assert cls == 1
    assert [x1, y1, x2, y2] == pytest.approx([0.3, 0.2, 0.6, 0.65], abs=0.01)
    model_boxes = sorted(b[:5] for p in predictions_of(live_site, int(item)) for b in p.boxes)
    assert str(accepted.item_id) == item and len(accepted.boxes) == offered == len(model_boxes)
    for got, want in zip(sorted(accepted.boxes), model_boxes, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
