"""The desk's search box in headless Chromium against `backstop serve`: the agent types a fragment of an address, then
of an order reference, sees the customer as they type, and opens the case with the keyboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from playwright.sync_api import Browser, Page, expect

from backstop.support.tests.test_desk_browser import browser  # noqa: F401  (the module's Chromium, shared)
from conftest import ROOT

SCREENSHOTS = ROOT / "var" / "screenshots"
STAFF = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}
SEED = f"""
from django.utils import timezone
from backstop.accounts.staff import ensure_staff_account
from backstop.billing.models import FulfilledBy, Order, Product, PurchaseAttempt
from backstop.support.models import Case
from backstop.support.tests.helpers import stalled_account
ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})
stalled_account("zoe.quinn@example.com")
stalled_account("zack.quint@example.org")
plan = Product.objects.get(code="annual")
attempt = PurchaseAttempt.objects.create(idempotency_key="seed", request_fingerprint="x", product=plan,
    amount_cents=24900, currency="usd", email="zoe.quinn@example.com", payment_method="pm_card_visa")
Order.objects.create(reference="BK-4TQ7MX", attempt=attempt, product=plan, email="zoe.quinn@example.com",
    amount_cents=24900, currency="usd", payment_id="pi_seed_zoe", payment_created_at=timezone.now(),
    fulfilled_by=FulfilledBy.CHECKOUT)
print(Case.objects.get(customer_key="zoe.quinn@example.com").pk)
"""


def _type_into_search(page: Page, text: str) -> None:
    box = page.locator("#desk-search-q")
    box.fill("")
    box.press_sequentially(text, delay=30)  # as a person types: the results follow each pause


def test_it_finds_a_customer_by_a_fragment_of_their_email_and_by_an_order_reference(
    browser: Browser, server_factory: Any  # noqa: F811
) -> None:
    server = server_factory(BACKSTOP_RATE_LIMIT_SCALE="20")
    server.start(BACKSTOP_BASE_URL=server.url)
    seeded = subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED],
                            env={**os.environ, **server.env}, cwd=ROOT, check=True, capture_output=True, timeout=120)
    case_id = int(seeded.stdout.decode().split()[-1])
    context = browser.new_context(base_url=server.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(STAFF["email"])
    page.get_by_label("Password").fill(STAFF["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.goto("/desk")

    _type_into_search(page, "quinn@exa")
    results = page.locator("#desk-search-results .search-hits li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("zoe.quinn@example.com")
    _type_into_search(page, "qui")  # both customers, while the word is half typed
    expect(results).to_have_count(2)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "desk-search-as-you-type.png"))

    _type_into_search(page, "4tq7")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("bk-4tq7mx")
    page.locator("#desk-search-q").press("ArrowDown")
    page.locator("#desk-search-q").press("Enter")
    expect(page).to_have_url(re.compile(rf"/desk/cases/{case_id}$"))

    # On the case page too, and "/" reaches the box from anywhere on it.
    page.keyboard.press("/")
    expect(page.locator("#desk-search-q")).to_be_focused()
    page.keyboard.type("pi_seed")
    expect(results).to_have_count(1)
    context.close()
