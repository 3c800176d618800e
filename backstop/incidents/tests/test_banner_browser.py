"""The banner for whom it concerns, in headless Chromium against `backstop serve`: the email provider fails for one
customer's welcome email; that customer sees the banner on an ordinary page, another customer does not, staff do; the
provider recovers, the customer's email goes out, and their banner goes without a reload."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from backstop.support.tests.test_desk_browser import (  # noqa: F401 (the browser fixture)
    PASSWORD,
    STAFF,
    _create_staff,
    _screenshot,
    _set_faults,
    _signup,
    browser,
)
from conftest import wait_for

ENV = {
    "BACKSTOP_BREAKER_THRESHOLD": "1",  # the first failed welcome email opens the breaker
    "BACKSTOP_BREAKER_PROBE_SECONDS": "1",
    "BACKSTOP_BREAKER_COOLDOWN_SECONDS": "1",
    "BACKSTOP_INCIDENT_BANNER_POLL_SECONDS": "1",
    "BACKSTOP_RATE_LIMIT_SCALE": "20",
}
ORDINARY_PAGE = "/account/details"  # a page of no capability: the banner there is by the visitor's token alone


def _signed_in(chromium: Browser, base_url: str, email: str, password: str) -> Page:
    page = chromium.new_context(base_url=base_url, viewport={"width": 1100, "height": 800}).new_page()
    page.set_default_timeout(20_000)
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto(ORDINARY_PAGE)
    return page


def test_it_shows_the_banner_to_the_customer_it_hurts_and_takes_it_away_when_they_recover(
        browser: Browser, server_factory: Any, smtp_sink: Any) -> None:  # noqa: F811
    server = server_factory(**ENV)
    server.start(BACKSTOP_BASE_URL=server.url)
    database = server.database
    _create_staff(server)
    _signup(server.url, "fine@example.com", "Fine Customer")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM accounts_setupstep WHERE name = 'welcome_email' "
                                     "AND status = 'done'") == 1, timeout=60, message="the first welcome never went")

    _set_faults(server.url, email="error")
    _signup(server.url, "hurt@example.com", "Hurt Customer")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM incidents_affectedcustomer "
                                     "WHERE recovered_at IS NULL") == 1,
             timeout=60, interval=0.2, message="no incident counted the customer whose welcome email failed")

    hurt = _signed_in(browser, server.url, "hurt@example.com", PASSWORD)
    fine = _signed_in(browser, server.url, "fine@example.com", PASSWORD)
    desk = _signed_in(browser, server.url, STAFF["email"], STAFF["password"])
    expect(hurt.locator("#incident-banner")).to_contain_text("Email delivery", timeout=5_000)
    expect(desk.locator("#incident-banner")).to_contain_text("Email delivery", timeout=5_000)
    fine.wait_for_timeout(2_500)  # two polls of the banner
    expect(fine.locator("#incident-banner")).to_have_count(0)
    _screenshot(hurt, "incident-banner-affected.png")

    _set_faults(server.url, email="ok")  # the probe succeeds, the welcome email goes, the customer recovers
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM incidents_affectedcustomer "
                                     "WHERE recovered_at IS NOT NULL") == 1,
             timeout=60, interval=0.2, message="the customer never recovered")
    expect(hurt.locator("#incident-banner")).to_have_count(0, timeout=5_000)  # gone without a reload
    if database.scalar("SELECT COUNT(*) FROM incidents_incident WHERE state != 'resolved'"):
        expect(desk.locator("#incident-banner")).to_contain_text("Email delivery")  # staff: until it resolves
