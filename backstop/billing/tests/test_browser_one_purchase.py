"""One purchase per intent in headless Chromium, against `backstop serve` and a real fakepay: pressing Back after
paying and paying again, or paying in a second tab, charges once and says what the buyer already has.

Screenshots land in var/screenshots/ (checkout-once-*.png).
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Browser, Page, expect

from backstop.billing import messages
from backstop.billing.tests.test_browser_checkout import CARD, _open_page, _screenshot, browser  # noqa: F401

ALREADY = re.compile("|".join(re.escape(messages.ALREADY_TITLES[kind]) for kind in ("paid", "under_way")))


def _start(server_factory: Any, fakepay: Any) -> Any:
    server = server_factory()
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    return server.start(STRIPE_API_BASE=fakepay.url, BACKSTOP_BASE_URL=server.url)


def _fill(page: Page, *, email: str) -> None:
    expect(page.get_by_role("heading", name=re.compile("Buy Backstop annual plan"))).to_be_visible()
    page.get_by_label(messages.CHECKOUT_EMAIL_LABEL).fill(email)
    page.get_by_label(messages.CHECKOUT_CARD_LABEL).select_option(CARD["visa"])


def test_it_charges_once_when_the_buyer_goes_back_and_pays_again(
    browser: Browser, server_factory: Any, fakepay: Any, smtp_sink: Any  # noqa: F811
) -> None:
    server = _start(server_factory, fakepay)
    page = _open_page(browser, server.url)
    page.goto("/checkout")
    _fill(page, email="ann@example.com")
    page.get_by_role("button", name="Pay $249").click()
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID], timeout=30_000)
    reference = page.locator("#reference").inner_text()

    page.go_back()
    _fill(page, email="ann@example.com")
    page.get_by_role("button", name="Pay $249").click()

    expect(page.locator("#already-title")).to_have_text(messages.ALREADY_TITLES["paid"])
    expect(page.locator("#already-message")).to_contain_text("You already have Backstop annual plan until")
    expect(page.locator("#already-message")).to_contain_text("Nothing was charged this time")
    expect(page.locator("#already-link")).to_have_attribute("href", f"/checkout/{reference}")
    _screenshot(page, "once-01-back-and-pay-again.png")
    page.locator("#already-link").click()
    expect(page.locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID])

    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    assert server.database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt") == 1


def test_it_charges_once_when_two_tabs_pay(
    browser: Browser, server_factory: Any, fakepay: Any, smtp_sink: Any  # noqa: F811
) -> None:
    server = _start(server_factory, fakepay)
    context = browser.new_context(base_url=server.url, viewport={"width": 1000, "height": 800})
    context.set_default_timeout(20_000)
    tabs = [context.new_page(), context.new_page()]
    for tab in tabs:  # both forms are on screen, each with its own idempotency key, before either is sent
        tab.goto("/checkout")
        _fill(tab, email="bob@example.com")

    tabs[0].get_by_role("button", name="Pay $249").click()
    expect(tabs[0]).to_have_url(re.compile(r"/checkout/BK-[0-9A-Z]{5}-[0-9A-Z]{5}$"))
    tabs[1].get_by_role("button", name="Pay $249").click()

    expect(tabs[1].locator("#already-title")).to_have_text(ALREADY)
    reference = tabs[0].locator("#reference").inner_text()
    expect(tabs[1].locator("#already-link")).to_have_attribute("href", f"/checkout/{reference}")
    _screenshot(tabs[1], "once-02-second-tab.png")
    expect(tabs[0].locator("#outcome-title")).to_have_text(messages.TITLES[messages.PAID], timeout=30_000)

    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    assert server.database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt") == 1
    context.close()
