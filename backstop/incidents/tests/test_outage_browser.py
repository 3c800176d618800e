"""The outage replayed end to end in headless Chromium against `backstop serve`.

The workspace provider fails while 50 customers wait on it: within a probe interval the status page and the banner on
a customer's page say so, and staff post the drafted update with one click (the banner shows it without a reload).
The provider recovers and the incident resolves by itself. The post-mortem draft carries the real counts and times
and no placeholder; amends go out with a credit for the paying customers, double-clicked and applied once, and each
customer gets exactly one message. Screenshots land in var/screenshots/ (incident-*.png).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from backstop.support.tests.test_desk_browser import (  # noqa: F401 (the browser fixture)
    STAFF,
    _create_staff,
    _screenshot,
    _set_faults,
    _strand_signups,
    browser,
)
from conftest import ROOT, wait_for

STRANDED = 50
PAYING = 3
PROBE_SECONDS = 1.0
ENV = {
    "BACKSTOP_BREAKER_PROBE_SECONDS": str(PROBE_SECONDS),
    "BACKSTOP_INCIDENT_BANNER_POLL_SECONDS": "1",
    "BACKSTOP_INCIDENT_RESOLVE_AFTER_SECONDS": "2",
    "BACKSTOP_SUPPORT_CYCLE_SECONDS": "1",
    "BACKSTOP_RATE_LIMIT_SCALE": "20",
}
AMENDS_SUBJECT = "What the Workspace creation outage cost you"


def _make_paying(server: Any, emails: list[str]) -> None:
    code = ("from backstop.accounts.models import Account\n"
            "from backstop.incidents.tests.helpers import make_paying\n"
            f"for email in {emails!r}: make_paying(Account.objects.get(email=email))")
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=120)


@pytest.mark.unmigrated_database  # `serve --migrate` applies every migration and records them as its deploy
def test_it_replays_an_outage_from_detection_to_amends(browser: Browser, server_factory: Any,  # noqa: F811
                                                        smtp_sink: Any) -> None:
    server = server_factory(**ENV)
    server.start(BACKSTOP_BASE_URL=server.url)
    database = server.database
    _create_staff(server)
    assert "All systems working" in httpx.get(f"{server.url}/status", timeout=10).text
    # `serve --migrate` recorded its deploy, naming the migrations it applied.
    deploy = database.query("SELECT source, text FROM incidents_incidentevent WHERE kind = 'deploy'")
    assert len(deploy) == 1 and deploy[0][0].startswith("serve@")
    assert re.match(r"Deploy: [1-9]\d* migrations applied: ", deploy[0][1])

    # A customer has the contact page open; the workspace provider goes down while 50 people sign up.
    customer = browser.new_context(base_url=server.url, viewport={"width": 1100, "height": 800}).new_page()
    customer.set_default_timeout(20_000)
    customer.goto("/support/contact")
    expect(customer.locator("#incident-banner")).to_have_count(0)
    _set_faults(server.url, workspace="error")
    customers = [f"waiting{i:02d}@example.com" for i in range(STRANDED)]
    _strand_signups(server, customers)
    _make_paying(server, customers[:PAYING])

    opened_at = wait_for(lambda: database.scalar("SELECT opened_at FROM runtime_circuitbreaker "
                                                 "WHERE provider = 'workspace' AND state != 'closed'"),
                         timeout=90, interval=0.2, message="the workspace breaker never opened")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM incidents_incident"), timeout=PROBE_SECONDS + 5,
             interval=0.1, message="no incident within a probe interval of the breaker opening")
    banner = customer.locator("#incident-banner")
    expect(banner).to_contain_text("Workspace creation: Detected.", timeout=5_000)  # no reload: polled
    assert opened_at is not None

    status = browser.new_context(base_url=server.url).new_page()
    status.goto("/status")
    expect(status.locator("#status-headline")).to_have_text("Some things are not working")
    expect(status.locator("body")).to_contain_text("Affected: Workspace creation")
    _screenshot(customer, "incident-01-banner.png")

    # Staff post the drafted "investigating" update with one click.
    desk = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900}).new_page()
    desk.set_default_timeout(20_000)
    desk.goto("/desk/incidents/")
    desk.get_by_label("Email").fill(STAFF["email"])
    desk.get_by_label("Password").fill(STAFF["password"])
    desk.get_by_role("button", name="Sign in").click()
    desk.goto("/desk/incidents/")
    desk.locator(".incident-card a").first.click()
    desk.get_by_role("button", name='Post "Investigating"').click()
    expect(desk.locator("#incident-state")).to_contain_text("Investigating")
    expect(banner).to_contain_text("We are investigating why Workspace creation is failing")
    status.reload()
    expect(status.locator("body")).to_contain_text("We are investigating why Workspace creation is failing")
    _screenshot(status, "incident-02-status-page.png")

    wait_for(lambda: database.scalar("SELECT customers_affected FROM incidents_incident") == STRANDED, timeout=60,
             interval=0.5, message="the incident never counted the 50 waiting customers")

    # The provider recovers: the incident is mitigated, then resolves by itself once nobody waits any more.
    _set_faults(server.url, workspace="ok")
    wait_for(lambda: database.scalar("SELECT state FROM incidents_incident") == "resolved", timeout=120,
             interval=0.5, message="the incident never resolved")
    expect(banner).to_have_count(0, timeout=5_000)  # gone without a reload
    row = database.query("SELECT started_at, resolved_at, severity FROM incidents_incident")[0]
    assert row[2] == 1  # SEV-1: 50 customers

    desk.goto("/desk/incidents/")
    desk.locator("table a").first.click()
    expect(desk.locator("#timeline")).to_contain_text("The workspace breaker opened")
    expect(desk.locator("#timeline")).to_contain_text("First call to workspace that succeeded again")
    expect(desk.locator(".affected-chart")).to_have_count(1)
    _screenshot(desk, "incident-03-timeline.png")

    desk.get_by_role("link", name="Post-mortem").click()
    draft = desk.locator("#postmortem-markdown").input_value()
    assert "[Insert" not in draft
    assert f"{STRANDED} customers were affected" in draft
    assert f"{STRANDED} customers could not finish: creating their workspace" in draft
    assert f"Money at risk: {PAYING} paying customers" in draft
    assert re.search(r"resolved at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", draft)
    _screenshot(desk, "incident-04-postmortem.png")

    # Amends: previewed, then the send button double-clicked: one action, one credit per paying customer.
    desk.get_by_role("link", name="Back to the incident").click()
    desk.get_by_role("link", name="Make amends").click()
    desk.goto(desk.url + "?credit_days=14")
    expect(desk.locator("#amends-preview-summary")).to_have_text(
        f"{STRANDED} customers get one message each; {PAYING} paying customers get 14 days.")
    desk.locator("#amends-send button").dblclick()
    expect(desk.locator("#amends-audit tr")).to_have_count(2)  # one action, written down by the click

    def amends_counted() -> bool:  # the workflow sends them after the answer
        desk.reload()
        return f"{STRANDED} messages sent, {PAYING} credits granted" in desk.locator("#amends-counts").inner_text()

    wait_for(amends_counted, timeout=90, interval=1, message="the amends were never counted")
    assert database.scalar("SELECT COUNT(*) FROM incidents_amendsaction") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_credit") == PAYING

    def each_told_once() -> bool:
        return all(len([m for m in smtp_sink.to(email) if str(m["Subject"]).startswith(AMENDS_SUBJECT)]) == 1
                   for email in customers)

    wait_for(each_told_once, timeout=90, message="not every customer got exactly one amends message")
    _screenshot(desk, "incident-05-amends.png")
