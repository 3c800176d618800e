"""Buying the plan in headless Chromium against `backstop serve` and a real fakepay: healthy, and with the crash.

Screenshots of every stage land in var/screenshots/ (checkout-*.png) so a person can see what the buyer saw.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Error, Page, expect, sync_playwright

from backstop.billing import messages
from conftest import ROOT, wait_for

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CARD = {"visa": "pm_card_visa", "declined": "pm_card_chargeDeclined"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "browser tests drive the system's chromium: run `make browser` first"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"checkout-{name}"
    page.screenshot(path=str(path), full_page=True)
    return path


def _open_page(browser: Browser, base_url: str) -> Page:
    context = browser.new_context(base_url=base_url, viewport={"width": 1000, "height": 800})
    context.set_default_timeout(20_000)
    return context.new_page()


def _pay(page: Page, *, email: str, card: str) -> None:
    page.goto("/checkout")
    expect(page.get_by_role("heading", name=re.compile("Buy Backstop annual plan"))).to_be_visible()
    page.get_by_label(messages.CHECKOUT_EMAIL_LABEL).fill(email)
    page.get_by_label(messages.CHECKOUT_CARD_LABEL).select_option(card)
    page.get_by_role("button", name="Pay $249").click()


def test_it_sells_the_plan_in_the_browser_even_after_a_declined_card(
    browser: Browser, server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    server = server_factory()
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)
    page = _open_page(browser, server.url)

    _pay(page, email="ann@example.com", card=CARD["declined"])
    expect(page).to_have_url(re.compile(r"/checkout/BK-[0-9A-Z]{5}-[0-9A-Z]{5}$"))
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.DECLINED])
    expect(page.locator("#outcome-message")).to_contain_text("Nothing was charged")
    _screenshot(page, "01-declined.png")

    page.get_by_role("link", name=messages.TRY_AGAIN_LINK).click()
    page.get_by_label(messages.CHECKOUT_EMAIL_LABEL).fill("ann@example.com")
    page.get_by_label(messages.CHECKOUT_CARD_LABEL).select_option(CARD["visa"])
    _screenshot(page, "02-form.png")
    page.get_by_role("button", name="Pay $249").click()
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID], timeout=30_000)
    expect(page.locator("#outcome-message")).to_contain_text("is active until")
    reference = page.locator("#reference").inner_text()
    _screenshot(page, "03-paid.png")

    mails = wait_for(lambda: smtp_sink.to("ann@example.com"), timeout=30, message="no confirmation email")
    assert len(mails) == 1 and reference in str(mails[0]["Subject"])
    assert fakepay.query("SELECT status, COUNT(*) FROM payment_intents GROUP BY status ORDER BY status") == [
        ("requires_payment_method", 1), ("succeeded", 1)]


def test_it_keeps_the_buyer_informed_through_a_crash_after_the_charge(
    browser: Browser, server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The crash takes the whole server down: its workflows run inside it.
    env = {"BACKSTOP_CHECKOUT_SLOW_SECONDS": "2", "BACKSTOP_SERVE_WORKFLOWS": "inside"}
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge", **env)
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)
    page = _open_page(browser, server.url)

    _pay(page, email="bob@example.com", card=CARD["visa"])
    assert server.process is not None and server.process.wait(timeout=30) == 70
    # The form answered with the result page before the charge; it now finds the server gone, and says so.
    try:
        expect(page.locator("#offline")).to_be_visible(timeout=10_000)
        expect(page.locator("#offline")).to_have_text(messages.OFFLINE)
        _screenshot(page, "04-crash-server-away.png")
    except (AssertionError, Error):  # the browser never got the result page: the buyer reloads it later
        _screenshot(page, "04-crash-no-page.png")

    restarted = server_factory(executor_id="web-1", **env)
    restarted.port = server.port
    restarted.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)
    if not re.search(r"/checkout/BK-", page.url):
        [(reference,)] = server.database.query("SELECT reference FROM billing_purchaseattempt")
        page.goto(f"/checkout/{reference}")
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID], timeout=60_000)
    expect(page.locator("#offline")).to_be_hidden()
    _screenshot(page, "05-crash-recovered-paid.png")

    mails = wait_for(lambda: smtp_sink.to("bob@example.com"), timeout=30, message="no confirmation email")
    assert len(mails) == 1
    assert "You were charged once" in str(mails[0]["Subject"])
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]


def test_it_apologises_to_the_buyer_whose_page_lost_the_server_however_fast_it_came_back(
    browser: Browser, server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The apology threshold for slow checkouts stays at its default (30 s), far above this restart.
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge",
                            BACKSTOP_SERVE_WORKFLOWS="inside")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)
    page = _open_page(browser, server.url)

    _pay(page, email="cat@example.com", card=CARD["visa"])
    assert server.process is not None and server.process.wait(timeout=30) == 70
    try:
        expect(page.locator("#offline")).to_be_visible(timeout=10_000)
        saw_offline = True
    except (AssertionError, Error):  # the browser never got the result page: the buyer reloads it later
        saw_offline = False
    restarted = server_factory(executor_id="web-1", BACKSTOP_SERVE_WORKFLOWS="inside")
    restarted.port = server.port
    restarted.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)
    if not re.search(r"/checkout/BK-", page.url):
        [(reference,)] = server.database.query("SELECT reference FROM billing_purchaseattempt")
        page.goto(f"/checkout/{reference}")
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID], timeout=60_000)

    mails = wait_for(lambda: smtp_sink.to("cat@example.com"), timeout=30, message="no confirmation email")
    assert len(mails) == 1
    assert "You were charged once" in str(mails[0]["Subject"])
    if saw_offline:  # the page's first look after the banner told us, and the attempt keeps it
        assert server.database.scalar("SELECT buyer_saw FROM billing_purchaseattempt") == "offline"
