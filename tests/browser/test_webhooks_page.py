"""The webhooks page in Chromium: add an endpoint (its secret shown once), press "Send test event", see the log."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def test_an_admin_adds_a_webhook_and_sends_a_test_event_from_the_page(
    page: Page, live_site, screenshots
) -> None:
    log_in(page, live_site, f"/projects/{live_site.binary_project}/webhooks")

    page.get_by_label("URL (http:// or https://)").fill("ftp://hooks.example/nope")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#webhook-create [data-errors]")).to_contain_text("http")

    page.get_by_label("URL (http:// or https://)").fill("https://hooks.example/hardcase")
    page.get_by_label("drift.alarm").uncheck()
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#webhook-secret")).to_contain_text("whsec_")

    page.reload()
    row = page.locator("#webhook-endpoints tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("model.promoted, model.rolled_back, job.finished")
    row.get_by_role("button", name="Send test event").click()
    expect(page.locator("#webhook-status")).to_contain_text("Test event queued as delivery")

    page.reload()
    expect(page.locator("#webhook-deliveries tbody tr")).to_have_count(1)
    expect(page.locator("#webhook-deliveries")).to_contain_text("webhook.test")
    page.screenshot(path=str(screenshots / "webhooks.png"), full_page=True)
