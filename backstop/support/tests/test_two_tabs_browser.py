"""Two tabs on one case, one click each on the same action: one effect, and the second tab is told what happened.

Headless Chromium against a real `backstop serve`: the agent opens Bob's case twice (as one does at 2 a.m.), sends
him a sign-in code from the first tab, then from the second, which still shows the page from before. Bob gets one
code, the audit has one entry, and the second tab says who sent it and when. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from playwright.sync_api import Browser, Page, expect

from backstop.support import messages
from backstop.support.tests.test_desk_browser import browser  # noqa: F401  (the module's Chromium, shared)
from conftest import ROOT

SCREENSHOTS = ROOT / "var" / "screenshots"
STAFF = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}
SEED = f"""
from backstop.accounts.staff import ensure_staff_account
from backstop.support.models import Case
from backstop.support.tests.helpers import stalled_account
ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})
stalled_account("bob@example.com")
print(Case.objects.get().pk)
"""


def _click_send_code(page: Page) -> None:
    form = page.locator('form[data-action="send_code_sms"]')
    if not form.is_visible():  # among the other actions, folded away
        page.locator("#other-actions summary").click()
    form.get_by_role("button", name=messages.ACTIONS["send_code_sms"].label).click()


def test_it_makes_one_effect_when_two_tabs_click_one_action_and_tells_the_second(
    browser: Browser, server_factory: Any  # noqa: F811
) -> None:
    server = server_factory(BACKSTOP_RATE_LIMIT_SCALE="20")
    server.start(BACKSTOP_BASE_URL=server.url)
    seeded = subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED],
                            env={**os.environ, **server.env}, cwd=ROOT, check=True, capture_output=True, timeout=120)
    case_id = int(seeded.stdout.decode().split()[-1])
    context = browser.new_context(base_url=server.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(30_000)
    sign_in = context.new_page()
    sign_in.goto("/login")
    sign_in.get_by_label("Email").fill(STAFF["email"])
    sign_in.get_by_label("Password").fill(STAFF["password"])
    sign_in.get_by_role("button", name="Sign in").click()
    expect(sign_in).not_to_have_url(re.compile(r"/login"))
    first, second = context.new_page(), context.new_page()
    for tab in (first, second):  # both drawn before either click
        tab.goto(f"/desk/cases/{case_id}")

    _click_send_code(first)
    expect(first.locator("#desk-notice")).to_have_text(messages.ACTIONS["send_code_sms"].done)
    _click_send_code(second)

    told = second.locator("#desk-notice")
    expect(told).to_contain_text(re.compile(
        r"^Already done by sam@backstop\.localhost at \d\d:\d\d:\d\d UTC: " + re.escape(
            messages.ACTIONS["send_code_sms"].done)))
    expect(second.locator("#desk-problem")).to_have_count(0)  # told, not an error
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    second.screenshot(path=str(SCREENSHOTS / "desk-two-tabs-second-told.png"), full_page=True)
    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM support_supportaction WHERE action = 'send_code_sms'") == 1
    assert database.scalar("SELECT COUNT(*) FROM notify_message WHERE channel = 'sms' AND kind = 'sign_in_code'") == 1
    assert database.scalar("SELECT COUNT(*) FROM accounts_verificationcode") == 1
    expect(second.locator('#support-actions li[data-action="send_code_sms"]')).to_have_count(1)
    context.close()
