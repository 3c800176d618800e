"""The demo's tour in headless Chromium against `backstop serve` with the demo pages, in a browser set to Tokyo's
time zone: each scenario's button sets its faults and opens its page; the setup page's next try and the desk's times
are shown in the reader's zone or in words, never in UTC."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from backstop.demo.tour import SCENARIOS
from conftest import ROOT, wait_for

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STAFF = {"email": "tour-staff@backstop.localhost", "password": "a long staff passphrase"}
ANN = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 415 555 0100", "company": "Acme",
       "password": "correct horse battery"}
TOKYO = dt.timezone(dt.timedelta(hours=9))
# The next try is minutes away, so the setup page names it (in words) for the whole test.
SLOW_RETRIES = {"BACKSTOP_RETRY_BASE_SECONDS": "240", "BACKSTOP_RETRY_CAP_SECONDS": "480"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "browser tests drive the system's chromium: run `make browser` first"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _tokyo_page(browser: Browser, base_url: str, errors: list[str]) -> Page:
    context = browser.new_context(base_url=base_url, timezone_id="Asia/Tokyo", locale="en-GB",
                                  viewport={"width": 1200, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def _create_staff(server: Any) -> None:
    code = ("from backstop.accounts.staff import ensure_staff_account; "
            f"ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})")
    done = subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code],
                          env={**os.environ, **server.env}, cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]


def _faults(server: Any) -> dict[str, str]:
    return {provider: mode for provider, mode in server.database.query("SELECT provider, mode FROM demo_faultsetting")}


def _start(page: Page, key: str) -> None:
    page.goto("/")
    page.locator(f"#scenario-{key}").get_by_role("button", name=str(SCENARIOS[key].texts["button"])).click()


def _utc(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def test_it_tours_the_three_scenarios_with_times_in_the_readers_zone(browser: Browser, server_factory: Any) -> None:
    server = server_factory(**SLOW_RETRIES).start()
    _create_staff(server)
    errors: list[str] = []
    customer = _tokyo_page(browser, server.url, errors)

    # The home page is the tour: three scenarios, each with what to look for.
    customer.goto("/")
    expect(customer.locator("section.scenario")).to_have_count(3)
    expect(customer.locator("#scenario-half_failed_signup .look-for li").first).to_be_visible()

    # 1. The half-failed signup: email times out, workspaces fail, and the sign-up form opens.
    _start(customer, "half_failed_signup")
    expect(customer).to_have_url(re.compile(r"/signup$"))
    assert _faults(server) == {"email": "timeout", "sms": "ok", "workspace": "error", "payments": "ok"}
    expect(customer.locator("#demo-faults")).to_contain_text("email=timeout, workspace=error")
    customer.get_by_label("Your name").fill(ANN["name"])
    customer.get_by_label("Work email").fill(ANN["email"])
    customer.get_by_label("Mobile phone").fill(ANN["phone"])
    customer.get_by_label("Company").fill(ANN["company"])
    customer.get_by_label("Password").fill(ANN["password"])
    customer.get_by_role("button", name="Create account").click()
    expect(customer).to_have_url(re.compile(r"/setup$"))
    # The next try, in words ("in 4 minutes"), drawn again by the page from the API every two seconds.
    workspace = customer.locator("#steps li[data-step=workspace] .status-text")
    expect(workspace).to_contain_text(re.compile(r"We'll try again in \d+ minutes"), timeout=30_000)
    customer.wait_for_timeout(2_500)  # at least one redraw from the API's answer
    expect(workspace).to_contain_text(re.compile(r"We'll try again in \d+ minutes"))
    assert "UTC" not in (workspace.text_content() or "")
    next_try = _utc(server.database.scalar(
        "SELECT s.next_attempt_at FROM accounts_setupstep s JOIN accounts_account a ON a.id = s.account_id "
        "WHERE a.email = ? AND s.name = 'workspace'", (ANN["email"],)))
    assert workspace.locator("time").get_attribute("datetime") == f"{next_try:%Y-%m-%dT%H:%M:%S}Z"

    # 2. The paid-but-crashed checkout: the payments fault alone, and the checkout form opens.
    _start(customer, "paid_but_crashed_checkout")
    expect(customer).to_have_url(re.compile(r"/checkout$"))
    expect(customer.locator("#checkout-form")).to_be_visible()
    assert _faults(server) == {"email": "ok", "sms": "ok", "workspace": "ok", "payments": "crash_after_charge"}

    # Ann writes in, so the desk has a case for her.
    answer = httpx.post(f"{server.url}/api/support/contact", timeout=30,
                        json={"email": ANN["email"], "message": "Is my workspace coming?"})
    assert answer.status_code == 202, answer.text
    opened_at = _utc(wait_for(lambda: server.database.scalar(
        "SELECT opened_at FROM support_case WHERE email = ?", (ANN["email"],)), timeout=60,
        message="Ann's message never reached the desk"))
    customer.context.close()

    # 3. The outage seen from the desk, by staff (also in Tokyo): workspaces down, the desk opens.
    staff = _tokyo_page(browser, server.url, errors)
    staff.goto("/login")
    staff.get_by_label("Email").fill(STAFF["email"])
    staff.get_by_label("Password").fill(STAFF["password"])
    staff.get_by_role("button", name="Sign in").click()
    _start(staff, "outage_from_the_desk")
    expect(staff).to_have_url(re.compile(r"/desk$"))
    assert _faults(server) == {"email": "ok", "sms": "ok", "workspace": "error", "payments": "ok"}
    row = staff.locator("#queue li", has_text=ANN["email"])
    expect(row.locator(".opened time")).to_have_text(re.compile(r"^(now|\d+ seconds? ago|\d+ minutes? ago)$"))
    staff.locator("#queue li", has_text=ANN["email"]).get_by_role("link", name=ANN["email"]).click()
    case_opened = staff.locator("p:has(#case-summary) time").last
    expect(case_opened).to_contain_text(f"{opened_at.astimezone(TOKYO):%H:%M}")  # 9 hours ahead of UTC
    assert "UTC" not in (case_opened.text_content() or "")

    # Clearing: every provider works again, said on the tour.
    staff.goto("/")
    staff.get_by_role("button", name="Clear all faults").click()
    expect(staff.locator("#tour-notice")).to_be_visible()
    assert set(_faults(server).values()) == {"ok"}

    # A scenario's button is a form with its CSRF token: a bare POST from elsewhere changes nothing.
    refused = httpx.post(f"{server.url}/demo/tour/half_failed_signup", timeout=10)
    assert refused.status_code == 403
    assert set(_faults(server).values()) == {"ok"}
    assert errors == []
