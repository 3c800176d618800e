"""Two staff members (and one of them in two tabs) on one case see each other live; a snoozed case leaves the queue
and wakes when the customer writes in. Headless Chromium against `backstop serve`, whose workflows answer the
contact; screenshots land in var/screenshots/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, expect

from backstop.support import messages
from backstop.support.tests.test_desk_browser import browser  # noqa: F401  (the module's Chromium, shared)
from conftest import ROOT, wait_for

SCREENSHOTS = ROOT / "var" / "screenshots"
SAM = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}
KIM = {"email": "kim@backstop.localhost", "password": "another staff passphrase"}
SEED = f"""
from backstop.accounts.staff import ensure_staff_account
ensure_staff_account(email={SAM['email']!r}, password={SAM['password']!r})
ensure_staff_account(email={KIM['email']!r}, password={KIM['password']!r})
"""


def _write_in(url: str, message: str) -> None:
    answer = httpx.post(f"{url}/api/support/contact", json={"email": "bob@example.com", "message": message},
                        timeout=30)
    assert answer.status_code == 202, answer.text


def _signed_in(browser: Browser, url: str, staff: dict[str, str]) -> BrowserContext:  # noqa: F811
    context = browser.new_context(base_url=url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(staff["email"])
    page.get_by_label("Password").fill(staff["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login"))
    page.close()
    return context


def test_it_shows_two_staff_and_two_tabs_on_one_case_and_wakes_a_snoozed_case_when_the_customer_writes(
    browser: Browser, server_factory: Any  # noqa: F811
) -> None:
    server = server_factory(BACKSTOP_RATE_LIMIT_SCALE="20", BACKSTOP_SUPPORT_CYCLE_SECONDS="1")
    server.start(BACKSTOP_BASE_URL=server.url)
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    # Bob (no account) asks a question: nothing for automation to fix, so the case waits for a person.
    _write_in(server.url, "How do I invite my team?")
    wait_for(lambda: server.database.scalar("SELECT COUNT(*) FROM support_case WHERE state = 'open'") == 1,
             timeout=60)
    case_id = int(server.database.scalar("SELECT id FROM support_case"))
    sam, kim = _signed_in(browser, server.url, SAM), _signed_in(browser, server.url, KIM)
    sam_tab, sam_other_tab, kim_tab = sam.new_page(), sam.new_page(), kim.new_page()
    for tab in (sam_tab, sam_other_tab, kim_tab):
        tab.goto(f"/desk/cases/{case_id}")

    expect(kim_tab.locator("#presence-others")).to_have_text(messages.PRESENCE_COLLEAGUE.format(who=SAM["email"]))
    expect(sam_tab.locator("#presence-others")).to_have_text(
        messages.PRESENCE_COLLEAGUE.format(who=KIM["email"]) + " " + messages.PRESENCE_OWN_TAB)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sam_tab.screenshot(path=str(SCREENSHOTS / "desk-presence.png"))
    sam_other_tab.close()  # its goodbye: Sam's first tab stops mentioning it
    expect(sam_tab.locator("#presence-others")).to_have_text(messages.PRESENCE_COLLEAGUE.format(who=KIM["email"]))

    # Kim snoozes the case for two hours: out of the queue, under "Put aside".
    kim_tab.locator("#other-actions summary").click()
    snooze = kim_tab.locator('form[data-action="snooze"]')
    snooze.locator('input[name="hours"]').fill("2")
    snooze.get_by_role("button", name=messages.ACTIONS["snooze"].label).click()
    expect(kim_tab.locator("#desk-notice")).to_contain_text("Snoozed until")
    expect(kim_tab.locator("#working-state")).to_contain_text("Snoozed until")
    kim_tab.goto("/desk")
    expect(kim_tab.locator(f'#sleeping li[data-case="{case_id}"]')).to_have_count(1)
    expect(kim_tab.locator(f'#queue li[data-case="{case_id}"]')).to_have_count(0)
    # Sam's open page hears of nothing written: the snooze is not a message.
    expect(sam_tab.locator("#presence-newer")).to_have_text("")

    # Bob writes in: his contact's workflow joins the case, which wakes.
    _write_in(server.url, "Any news? I have a demo at 3.")
    expect(sam_tab.locator("#presence-newer")).to_contain_text("bob@example.com wrote at", timeout=60_000)
    for _ in range(60):
        kim_tab.goto("/desk")
        if kim_tab.locator(f'#queue li[data-case="{case_id}"]').count():
            break
        kim_tab.wait_for_timeout(500)
    expect(kim_tab.locator(f'#queue li[data-case="{case_id}"]')).to_have_count(1)
    expect(kim_tab.locator(f'#sleeping li[data-case="{case_id}"]')).to_have_count(0)
    kim_tab.screenshot(path=str(SCREENSHOTS / "desk-woken-by-customer.png"), full_page=True)
    assert server.database.scalar(
        "SELECT COUNT(*) FROM support_supportaction WHERE action = 'wake' AND staff_id IS NULL") == 1, server.log()
    sam.close()
    kim.close()
