"""Conversations by email, both ways, in headless Chromium against `backstop serve`: staff reply to a case; in the
demo mailbox the customer presses "Reply as the customer" (a real MIME message, posted to the signed Mailgun inbound
webhook over HTTP); the reply threads into the case and reopens it; their out-of-office reply does not; a snoozed
case wakes on their next reply. Screenshots land in var/screenshots/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from playwright.sync_api import Browser, Page, expect

from backstop.support import messages
from backstop.support.tests.test_desk_browser import browser  # noqa: F401  (the module's Chromium, shared)
from backstop.support.tests.test_desk_working_browser import SAM, SEED, _signed_in, _write_in
from conftest import ROOT, wait_for

SCREENSHOTS = ROOT / "var" / "screenshots"
SUBJECT = "About your question"


SCREENSHOTS.mkdir(parents=True, exist_ok=True)


def _reply_and_see_it_resolve(page: Page, server: Any, case_id: int, text: str) -> None:
    """Staff answer; with nothing else open, the support cycle resolves the case by itself."""
    page.goto(f"/desk/cases/{case_id}")
    page.get_by_label("Subject").fill(SUBJECT)
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#desk-notice")).to_have_text("Reply sent; it is on the timeline below.")
    wait_for(lambda: server.database.scalar("SELECT state FROM support_case WHERE id = ?", (case_id,)) == "resolved",
        timeout=60, message="the answered case did not resolve")


def _answer_as_customer(customer: Page, *, text: str = "", out_of_office: bool = False) -> None:
    customer.goto("/demo/mailbox")
    item = customer.locator("article[data-channel=email]", has_text=SUBJECT).first
    if out_of_office:
        item.get_by_role("button", name="Out-of-office reply").click()
    else:
        item.locator("summary", has_text="Reply as the customer").click()
        item.get_by_label("Their reply").fill(text)
        item.get_by_role("button", name="Send as the customer").click()
    expect(customer.locator("#mailbox-answer")).to_have_text("The inbound webhook answered 200: stored")


def test_it_threads_the_customers_emailed_reply_into_the_case_and_reopens_and_wakes_it(
    browser: Browser, server_factory: Any  # noqa: F811
) -> None:
    server = server_factory(BACKSTOP_EMAIL="mailbox", BACKSTOP_MAILGUN_WEBHOOK_SIGNING_KEY="browser-test-key",
                            BACKSTOP_RATE_LIMIT_SCALE="20", BACKSTOP_SUPPORT_CYCLE_SECONDS="1")
    server.start(BACKSTOP_BASE_URL=server.url)
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", SEED], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    _write_in(server.url, "How do I invite my team?")
    wait_for(lambda: server.database.scalar("SELECT COUNT(*) FROM support_case WHERE state = 'open'") == 1,
             timeout=60)
    case_id = int(server.database.scalar("SELECT id FROM support_case"))
    staff = _signed_in(browser, server.url, SAM).new_page()
    customer = browser.new_context(base_url=server.url).new_page()
    customer.set_default_timeout(30_000)

    # Staff answer; the case resolves.
    _reply_and_see_it_resolve(staff, server, case_id, "Hello Bob,\n\nUse Settings, then Team, then Invite.\n\nSam")
    wait_for(lambda: server.database.scalar(
        "SELECT COUNT(*) FROM notify_localmailboxitem WHERE subject = ? AND text LIKE ?", (SUBJECT, "%Settings%")) == 1,
        timeout=60, message="the staff reply never reached the demo mailbox")

    # The customer answers from their mailbox: it threads into the case and reopens it.
    _answer_as_customer(customer, text="Thanks! Where is the Team page on mobile?")
    staff.goto(f"/desk/cases/{case_id}")
    expect(staff.locator("#case-state")).to_have_text("Open")
    inbound = staff.locator('#timeline [data-inbound-kind="reply"]').first
    expect(inbound.locator(".inbound-text")).to_have_text("Thanks! Where is the Team page on mobile?")
    inbound.locator("summary", has_text=messages.INBOUND_SHOW_FULL).click()
    expect(inbound.locator(".inbound-full")).to_contain_text("> Use Settings, then Team, then Invite.")
    staff.screenshot(path=str(SCREENSHOTS / "desk-inbound-reply.png"), full_page=True)

    # Answered and resolved again, their out-of-office answers: on the timeline, nothing reopened, nothing sent.
    _reply_and_see_it_resolve(staff, server, case_id, "Hello Bob,\n\nIt is under More, then Team.\n\nSam")
    sent_before = server.database.scalar("SELECT COUNT(*) FROM notify_message")
    wait_for(lambda: server.database.scalar(
        "SELECT COUNT(*) FROM notify_localmailboxitem WHERE text LIKE ?", ("%More, then Team%",)) == 1, timeout=60,
        message="the second staff reply never reached the demo mailbox")
    _answer_as_customer(customer, out_of_office=True)
    staff.goto(f"/desk/cases/{case_id}")
    expect(staff.locator('#timeline [data-inbound-kind="auto_reply"]')).to_have_count(1)
    expect(staff.locator("#case-state")).not_to_have_text("Open")
    assert server.database.scalar("SELECT COUNT(*) FROM notify_message") == sent_before

    # They write again (reopened), staff snooze the case, and their next reply wakes it.
    _answer_as_customer(customer, text="Found it, but one more question.")
    staff.goto(f"/desk/cases/{case_id}")
    expect(staff.locator("#case-state")).to_have_text("Open")
    staff.locator("#other-actions summary").click()
    snooze = staff.locator('form[data-action="snooze"]')
    snooze.locator('input[name="hours"]').fill("2")
    snooze.get_by_role("button", name=messages.ACTIONS["snooze"].label).click()
    expect(staff.locator("#working-state")).to_contain_text("Snoozed until")
    _answer_as_customer(customer, text="Also: can I change the owner?")
    staff.goto(f"/desk/cases/{case_id}")
    expect(staff.locator("#working-state", has_text="Snoozed")).to_have_count(0)
    expect(staff.locator('#timeline [data-inbound-kind="reply"]')).to_have_count(3)
    staff.goto("/desk")
    expect(staff.locator(f'#queue li[data-case="{case_id}"]')).to_have_count(1)
    staff.screenshot(path=str(SCREENSHOTS / "desk-inbound-woken.png"), full_page=True)
    assert server.database.scalar(
        "SELECT COUNT(*) FROM support_supportaction WHERE action = 'wake' AND staff_id IS NULL") == 1
    assert re.search(r"case\+\d+\.[0-9a-f]{12}@reply\.backstop\.localhost", str(server.database.scalar(
        "SELECT reply_to FROM notify_message WHERE kind = 'support_reply'")))
