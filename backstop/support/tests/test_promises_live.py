"""Promises kept and pages true, against `backstop serve` over real HTTP: staff signed in through the login form, the
customer through the signup API, providers misbehaving through the demo fault settings.

- Closing a case with a promise not kept is refused with the warning and the drafted message; "Close anyway" closes
  it; a case whose promises were kept closes at once.
- The draft says "we" for what automation did, and a two-tab click once.
- A resolved case's page says "Resolved", not the harm it had while open nor the incident it waited on.
- While the email provider hangs, `/api/setup` never names a next-try time already past: it says "now".
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from typing import Any

import httpx

from backstop.support.tests.test_crashed_checkout_support import _create_staff, _signed_in_desk
from backstop.support.tests.test_outage_recovery_servers import OUTAGE_ENV, _account, _incident
from backstop.support.tests.test_promises_server import _set_faults, _signed_up
from conftest import wait_for

CUSTOMERS = ("hal@example.com", "ida@example.com")


def _form_fields(page: str, marker: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's form whose opening tag holds ``marker``, as a browser would post
    them (whatever the version of the page names them)."""
    form = re.search(rf'<form [^>]*action="([^"]+)"[^>]*{marker}[^>]*>(.*?)</form>', page, re.DOTALL)
    assert form, f"no form {marker} on the page:\n{page}"
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    return html.unescape(form.group(1)), fields


def _post_form(desk: httpx.Client, page: str, marker: str, **typed: str) -> str:
    """Submit the form (the page it lands on, as text)."""
    action, fields = _form_fields(page, marker)
    landed = desk.post(action, data={**fields, **typed})
    assert landed.status_code == 200, landed.text
    return html.unescape(landed.text)


def _stalled_and_written_in(server: Any, email: str) -> int:
    """A customer whose setup gave up writes in; automation's retry (when the message arrived) gives up too. The
    case's id."""
    database = server.database
    wait_for(lambda: database.scalar("SELECT state FROM accounts_account WHERE email = ?", (email,))
             == "needs_attention", timeout=60, message=f"the setup of {email} never gave up")
    answer = httpx.post(f"{server.url}/api/support/contact", timeout=30,
                        json={"email": email, "message": "My workspace never appeared"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: database.scalar("SELECT finding FROM support_contact WHERE email = ? AND answered_at IS NOT NULL",
                                     (email,)), timeout=60, message=f"the contact from {email} was not answered")
    assert database.scalar("SELECT finding FROM support_contact WHERE email = ?", (email,)) == "setup_needs_human"
    wait_for(lambda: database.scalar(
        "SELECT COUNT(*) FROM support_supportaction a JOIN support_case c ON a.case_id = c.id "
        "WHERE c.email = ? AND a.action = 'retry_setup' AND a.staff_id IS NULL", (email,)), timeout=30)
    wait_for(lambda: database.scalar("SELECT state FROM accounts_account WHERE email = ?", (email,))
             == "needs_attention" and not database.scalar(
                 "SELECT COUNT(*) FROM accounts_setupstep s JOIN accounts_account a ON s.account_id = a.id "
                 "WHERE a.email = ? AND s.status NOT IN ('done', 'failed')", (email,)),
             timeout=60, message="automation's retry never ended")
    case_id = database.scalar("SELECT id FROM support_case WHERE email = ?", (email,))
    promised = {kind for (kind,) in database.query("SELECT kind FROM support_commitment WHERE case_id = ?",
                                                   (case_id,))}
    assert promised == {"person_finishes", "email_when_done"}
    return int(case_id)


def _active(server: Any, email: str) -> bool:
    return bool(server.database.scalar("SELECT state FROM accounts_account WHERE email = ?", (email,)) == "active")


def test_it_refuses_over_http_to_close_a_case_with_a_promise_unkept_drafts_it_and_closes_it_when_confirmed(
    server_factory: Any,
) -> None:
    # Setup gives up after two tries; no breaker opens (no incident); the support cycle runs every second.
    server = server_factory(BACKSTOP_SETUP_MAX_ATTEMPTS="2", BACKSTOP_BREAKER_THRESHOLD="1000",
                            BACKSTOP_SUPPORT_CYCLE_SECONDS="1").start()
    _set_faults(server, workspace="error")
    for email in CUSTOMERS:
        _signed_up(server, email)
    unkept_case, kept_case = (_stalled_and_written_in(server, email) for email in CUSTOMERS)
    _create_staff(server)
    desk = _signed_in_desk(server.url)

    # Two tabs of one case page, each clicking "Restart set-up"; the provider still fails, so it is not done: the
    # promises stay unkept (a setup that finishes keeps "we'll email you when it's done" by itself).
    unkept_path = f"/desk/cases/{unkept_case}"
    tabs = [desk.get(unkept_path).text, desk.get(unkept_path).text]
    for tab in tabs:
        _post_form(desk, tab, 'data-action="retry_setup"')
    wait_for(lambda: server.database.scalar(
        "SELECT COUNT(*) FROM support_supportaction WHERE case_id = ? AND action = 'retry_setup' AND staff_id IS NOT "
        "NULL AND outcome = 'done'", (unkept_case,)) == 1, timeout=30, message="the staff's retry did not run once")
    assert not _active(server, CUSTOMERS[0])

    refused = _post_form(desk, desk.get(unkept_path).text, 'data-action="close"')

    assert server.database.scalar("SELECT state FROM support_case WHERE id = ?", (unkept_case,)) == "open"
    assert "Not closed: we promised this customer 2 things not done yet:" in refused
    assert "“we'll email you when it's done”" in refused
    assert 'id="close-anyway"' in refused
    # The drafted reply that keeps it: automation's retry said as "we", the two tabs' one click said once.
    assert "What we did: We automatically restarted your account set-up at" in refused
    assert refused.count("I restarted your account set-up at") == 1
    assert not server.database.scalar("SELECT COUNT(*) FROM notify_message WHERE kind = 'support_reply'")

    closed = _post_form(desk, refused, 'id="close-anyway"')

    assert server.database.scalar("SELECT state FROM support_case WHERE id = ?", (unkept_case,)) == "resolved"
    assert "Not closed" not in closed
    assert '<span class="badge resolved">Resolved</span>' in closed
    assert "Locked out" not in closed and "Waiting on" not in closed
    assert server.database.scalar("SELECT COUNT(*) FROM support_commitment WHERE case_id = ? AND kept_at IS NULL",
                                  (unkept_case,)) == 2  # closed anyway: the record still says what was not kept
    _set_faults(server, workspace="ok")

    # The other customer: the setup finished and a person wrote to say so; every promise kept, the case closes at once.
    kept_path = f"/desk/cases/{kept_case}"
    _post_form(desk, desk.get(kept_path).text, 'data-action="retry_setup"')
    wait_for(lambda: _active(server, CUSTOMERS[1]), timeout=60, message="the staff's retry did not finish the setup")
    _post_form(desk, desk.get(kept_path).text, 'id="reply-form"', subject="Your workspace is ready",
               body="It's ready now. Sorry!")

    closed_at_once = desk.get(kept_path).text
    # The support cycle (every second here) may close it first, crediting the staff's action: every promise is kept,
    # so that is the same end, and the close form is gone. Otherwise staff close it, at once.
    if 'data-action="close"' in closed_at_once:
        closed_at_once = _post_form(desk, closed_at_once, 'data-action="close"')

    assert "Not closed" not in closed_at_once and 'id="close-anyway"' not in closed_at_once
    assert '<span class="badge resolved">Resolved</span>' in closed_at_once and "Locked out" not in closed_at_once
    assert server.database.scalar("SELECT state FROM support_case WHERE id = ?", (kept_case,)) == "resolved"
    assert not server.database.scalar("SELECT COUNT(*) FROM support_commitment WHERE case_id = ? AND kept_at IS NULL",
                                      (kept_case,))


def test_it_shows_a_case_resolved_after_an_incident_as_resolved_not_locked_out_or_waiting_on_it(
    server_factory: Any,
) -> None:
    # One signup spends its budget and opens the breaker: the customer is locked out, waiting on the incident.
    server = server_factory(**OUTAGE_ENV).start()
    _set_faults(server, workspace="error")
    _signed_up(server, "kim@example.com")
    account_id = _account(server, "kim@example.com")[0]
    case_id = wait_for(lambda: server.database.scalar(
        "SELECT id FROM support_case WHERE account_id = ? AND state = 'open' AND incident_id IS NOT NULL",
        (account_id,)), timeout=60, message=f"the locked-out customer never joined the incident:\n{server.log()}")
    _create_staff(server)
    desk = _signed_in_desk(server.url)
    waiting = html.unescape(desk.get(f"/desk/cases/{case_id}").text)
    assert "Locked out" in waiting and "Waiting on <a" in waiting  # as it is while open

    _set_faults(server, workspace="ok")  # the probe notices, the customer is retried, automation resolves the case
    wait_for(lambda: _incident(server, "workspace")["state"] == "resolved"
             and server.database.scalar("SELECT state FROM support_case WHERE id = ?", (case_id,)) == "resolved",
             timeout=60, message=f"the case was not resolved after the incident:\n{server.log()}")

    page = html.unescape(desk.get(f"/desk/cases/{case_id}").text)

    assert '<span class="badge resolved">Resolved</span>' in page
    assert "Locked out" not in page and "Waiting on" not in page


def test_it_never_names_a_next_try_time_already_past_while_the_email_provider_hangs(server_factory: Any) -> None:
    # Each try of the welcome email hangs for 3 s; between tries the step's recorded next-try time is behind us.
    server = server_factory(BACKSTOP_EMAIL_TIMEOUT="3", BACKSTOP_BREAKER_THRESHOLD="1000").start()
    _set_faults(server, email="timeout")
    browser = _signed_up(server, "joe@example.com")

    def welcome_email() -> dict[str, Any]:
        steps = browser.get("/api/setup").json()["steps"]
        return next(step for step in steps if step["name"] == "welcome_email")

    wait_for(lambda: welcome_email()["attempts"] >= 1, timeout=30, message="the welcome email was never tried")
    said_now = 0
    deadline = time.monotonic() + 8  # two more hanging tries, and the waits between them
    while time.monotonic() < deadline:
        asked_at = dt.datetime.now(dt.UTC)
        step = welcome_email()
        if step["next_attempt_at"] is not None:
            named = dt.datetime.fromisoformat(step["next_attempt_at"].replace("Z", "+00:00"))
            assert named > asked_at, f"a next-try time already past: {step}"
            assert "We'll try again at" in step["status_text"], step
        elif step["status"] == "retrying":
            assert step["status_text"].endswith("We'll try again now."), step
            said_now += 1
        time.sleep(0.2)
    assert said_now, "the page never said it was trying again now while the provider hung"
