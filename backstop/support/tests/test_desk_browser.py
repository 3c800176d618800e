"""The desk as the one person on support sees it: real pages in headless Chromium against `backstop serve`.

A provider outage strands 50 signups: one incident card, not 50 rows. The outage clears: every case resolves
itself and each customer gets one message. The one case that needs a person is fixed with one click and answered
from the pre-filled template. Screenshots land in var/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import ROOT, wait_for

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STAFF = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}
STRANDED = 50
PASSWORD = "correct horse battery"
ENV = {
    "BACKSTOP_SUPPORT_CYCLE_SECONDS": "1",
    # Small enough that Bob's welcome email gives up (a case for a person); the outage accounts mostly wait.
    "BACKSTOP_SETUP_MAX_ATTEMPTS": "3",
    "BACKSTOP_RATE_LIMIT_SCALE": "20",
}


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
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _create_staff(server: Any) -> None:
    code = ("from backstop.accounts.staff import ensure_staff_account; "
            f"ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})")
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=60)


def _strand_signups(server: Any, emails: list[str]) -> None:
    """50 signups written exactly as the signup service writes them (minus 50 Argon2 hashes, which would take most
    of a minute on a small CI machine), from another process: the server's safety net picks up their setups."""
    code = ("from backstop.support.tests.helpers import new_account\n"
            f"for email in {emails!r}: new_account(email, name='Customer')")
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)


def _signup(base_url: str, email: str, name: str) -> None:
    response = httpx.post(f"{base_url}/api/signup", timeout=30, json={
        "name": name, "email": email, "phone": "+1 415 555 0100", "company": f"{name} Ltd", "password": PASSWORD})
    assert response.status_code == 201, response.text


def _set_faults(base_url: str, **modes: str) -> None:
    httpx.post(f"{base_url}/demo/api/faults", json=modes, timeout=10).raise_for_status()


def _text(message: Any) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return str(part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8"))
    return ""


def test_it_shows_an_outage_as_one_incident_resolves_it_and_fixes_the_last_case_with_one_click(
    browser: Browser, server_factory: Any, smtp_sink: Any
) -> None:
    server = server_factory(BACKSTOP_FAULTS="email=error", **ENV)
    server.start(BACKSTOP_BASE_URL=server.url)
    database = server.database
    _create_staff(server)

    # Before the outage: Bob's welcome email could not be delivered, and automation gave up on it.
    _signup(server.url, "bob@example.com", "Bob Stone")
    wait_for(lambda: database.scalar(
        "SELECT COUNT(*) FROM support_case WHERE email = ? AND state = 'open' AND harm = 10",
        ("bob@example.com",)) == 1, timeout=60, message="Bob's undelivered welcome email never reached the desk")

    # The workspace provider goes down while 50 people sign up.
    _set_faults(server.url, email="ok", workspace="error")
    customers = [f"customer{i:02d}@example.com" for i in range(STRANDED)]
    _strand_signups(server, customers)

    page = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(20_000)
    page.goto("/desk")
    expect(page).to_have_url(re.compile(r"/login\?next=/desk$"))
    page.get_by_label("Email").fill(STAFF["email"])
    page.get_by_label("Password").fill(STAFF["password"])
    page.get_by_role("button", name="Sign in").click()
    page.goto("/desk")

    def card_shows_everyone() -> bool:
        page.reload()
        return f"{STRANDED} customers waiting" in (page.locator(".incident-card").all_inner_texts() or [""])[0]

    def only_bob_needs_a_person() -> bool:
        # A signup made while the email breaker was still closing has an email signal too, and stays in the
        # queue until its welcome email goes out (a cycle or two later); then it joins the incident.
        page.reload()
        return page.locator("#queue li").count() == 1

    wait_for(card_shows_everyone, timeout=90, interval=1, message="the desk never showed one card for the outage")
    wait_for(only_bob_needs_a_person, timeout=60, interval=1, message="outage cases stayed in the queue")
    cards = page.locator(".incident-card")
    expect(cards).to_have_count(1)
    expect(cards).to_contain_text(re.compile(
        rf"Workspace provider answering with errors since \d\d:\d\d UTC, {STRANDED} customers waiting, "
        r"automation retrying, no action needed"))
    queue = page.locator("#queue li")
    expect(queue).to_have_count(1)  # only Bob needs a person
    expect(queue).to_contain_text("bob@example.com")
    expect(queue).to_contain_text("Retry setup now")
    _screenshot(page, "desk-01-outage-one-incident.png")

    # The provider recovers: automation finishes every setup and every case resolves itself.
    _set_faults(server.url, workspace="ok")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM accounts_account WHERE state = 'active' "
                                     "AND email LIKE ?", ("customer%",)) == STRANDED, timeout=120,
             message="the stranded accounts never became active")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_case WHERE state = 'open'") == 1, timeout=60,
             message="the outage's cases did not resolve themselves")
    assert database.scalar("SELECT COUNT(*) FROM support_case WHERE resolution = 'automation'") == STRANDED
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_incident WHERE state = 'resolved'") == 1,
             timeout=30, message="the incident never resolved")

    def everyone_told_once() -> bool:
        return all(len([m for m in smtp_sink.to(email) if str(m["Subject"]).startswith("It's fixed")]) == 1
                   for email in customers)

    wait_for(everyone_told_once, timeout=60, message="not every customer got the one message owning the failure")
    apology = next(m for m in smtp_sink.to(customers[0]) if str(m["Subject"]).startswith("It's fixed"))
    assert "Our workspace provider failed from" in _text(apology)
    page.goto("/desk")
    expect(page.locator(".incident-card")).to_have_count(0)
    expect(page.locator("#week-summary")).to_contain_text(f"{STRANDED} fixed by automation without a person")
    _screenshot(page, "desk-02-outage-resolved.png")

    # Bob's case needs a person: one click on the suggested action fixes it.
    page.get_by_role("link", name="bob@example.com").click()
    expect(page.locator("#suggested")).to_contain_text("Retry setup now")
    expect(page.locator("#messages")).to_contain_text("Could not be delivered")
    _screenshot(page, "desk-03-case-before.png")
    page.locator("#suggested").get_by_role("button", name="Retry setup now").click()
    expect(page.locator("#desk-notice")).to_have_text("Setup started again; its steps update below.")
    wait_for(lambda: any(str(m["Subject"]).startswith("Welcome") for m in smtp_sink.to("bob@example.com")),
             timeout=60, message="Bob's welcome email was never delivered after the retry")

    # ...and the reply is written from the template: what happened, what we did, what it cost him.
    page.reload()
    body = page.get_by_label("Message")
    expect(body).to_have_value(re.compile(r"^Hello Bob Stone,"))
    expect(body).to_have_value(re.compile(r"What we did: I restarted your account set-up at \d\d:\d\d UTC"))
    expect(body).to_have_value(re.compile(r"What it cost you: .+ without our emails"))
    expect(body).to_have_value(re.compile(r"for that\.\n\nBackstop support$"))  # the team account signs as the team
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#desk-notice")).to_have_text("Reply sent; it is on the timeline below.")
    _screenshot(page, "desk-04-case-fixed-and-answered.png")

    reply = wait_for(lambda: [m for m in smtp_sink.to("bob@example.com")
                              if m["Subject"] == "About your Backstop account"],
                     timeout=30, message="the reply never reached Bob")
    assert "What happened: our emails to you weren't getting through" in _text(reply[0])
    assert database.scalar("SELECT COUNT(*) FROM support_supportaction WHERE staff_id IS NOT NULL") == 2
    wait_for(lambda: database.scalar("SELECT state FROM support_case WHERE email = ?", ("bob@example.com",))
             == "resolved", timeout=30, message="Bob's case did not close once everything was fixed")
