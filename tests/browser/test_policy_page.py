"""The retraining policy page in Chromium: a refused policy names the field, a saved one comes back filled in,
pause and resume switch it, and "Run now" puts a run on the timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


def test_an_admin_saves_a_policy_pauses_it_and_starts_a_run_from_the_page(
    page: Page, live_site, screenshots
) -> None:
    log_in(page, live_site, f"/projects/{live_site.binary_project}/policy")
    expect(page.locator("#loop-policy")).to_contain_text("No policy yet")

    page.locator("#policy-schedule").fill("61 * * * *")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#policy-form [data-errors]")).to_contain_text("schedule")

    page.locator("#policy-schedule").fill("0 3 * * 1")
    page.locator("#policy-new-labels").fill("150")
    page.locator("#policy-jobs").fill('[{"kind": "classifier_lora", "config": {"max_steps": 2}}]')
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator("#policy-state")).to_contain_text("active")
    expect(page.locator("#policy-new-labels")).to_have_value("150")
    expect(page.locator("#policy-schedule")).to_have_value("0 3 * * 1")

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#policy-state")).to_contain_text("paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#policy-state")).to_contain_text("active")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#loop-runs .timeline > li")).to_have_count(1)
    expect(page.locator("#loop-runs")).to_contain_text("started by hand")
    page.screenshot(path=str(screenshots / "policy.png"), full_page=True)
