"""A checkout that crashed after the charge, as the buyer and the desk meet it, over real HTTP against real processes.

The server dies right after fakepay takes the money; it comes back serving the web only (its workflow runner down), so
nothing resumes the purchase. The buyer, who has no account, writes in quoting their reference the way people type
it: support finds the purchase, finishes it from the payment already taken and says so. The desk shows the
processor's own status beside ours, from what was recorded, and staff can ask the processor again.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from conftest import ROOT, wait_for

BUY = {"product": "annual", "email": "ann@example.com", "payment_method": "pm_card_visa"}
STAFF = {"email": "sam@backstop.localhost", "password": "a long staff passphrase"}


def _create_staff(server: Any) -> None:
    code = ("from backstop.accounts.staff import ensure_staff_account; "
            f"ensure_staff_account(email={STAFF['email']!r}, password={STAFF['password']!r})")
    subprocess.run([sys.executable, "-m", "backstop.cli", "shell", "-c", code], env={**os.environ, **server.env},
                   cwd=ROOT, check=True, capture_output=True, timeout=60)


def _form_token(page: httpx.Response) -> str:
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    return token.group(1)


def _signed_in_desk(base_url: str) -> httpx.Client:
    desk = httpx.Client(base_url=base_url, timeout=30, follow_redirects=True)
    signed_in = desk.post("/login", data={**STAFF, "csrfmiddlewaretoken": _form_token(desk.get("/login"))})
    assert signed_in.status_code == 200, signed_in.text
    return desk


def _act(desk: httpx.Client, case_path: str, action: str, key: str) -> str:
    """Click an action's button on the case page; the page it lands on, as text."""
    page = desk.get(case_path)
    version = re.search(r'name="case_version" value="(\d+)"', page.text)
    assert version, page.text
    return html.unescape(desk.post(f"{case_path}/act", data={"action": action, "case_version": version.group(1),
                                                             "csrfmiddlewaretoken": _form_token(page)}).text)


def _payments_row(page: str, reference: str) -> str:
    row = re.search(rf"<tr[^>]*><td>{reference}</td>.*?</tr>", page, re.DOTALL)
    assert row, page
    return re.sub(r"\s+", " ", row.group(0))


def test_it_finds_a_crashed_checkout_by_its_quoted_reference_finishes_it_and_shows_the_processors_side(
    server_factory: Any, fakepay: Any
) -> None:
    crashing = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge",
                              BACKSTOP_SERVE_WORKFLOWS="inside")
    fakepay.start()  # no webhook: the processor tells nobody, as when its deliveries are delayed
    crashing.start(STRIPE_API_BASE=fakepay.url)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{crashing.url}/api/checkout", json=BUY, headers={"Idempotency-Key": "crash-1"}, timeout=30)
    assert crashing.process is not None and crashing.process.wait(timeout=30) == 70
    database = crashing.database
    reference = database.scalar("SELECT reference FROM billing_purchaseattempt")
    assert database.scalar("SELECT state FROM billing_purchaseattempt") == "charging"
    assert fakepay.query("SELECT COUNT(*), MIN(status) FROM payment_intents") == [(1, "succeeded")]

    # Back, serving the web only: the purchase waits for a workflow runner that is not there.
    web = server_factory(executor_id="web-2", BACKSTOP_SERVE_WORKFLOWS="none").start(STRIPE_API_BASE=fakepay.url)
    quoted = reference.lower().replace("-", " ").replace("0", "o")  # as typed: lower case, spaces, an O for a zero
    answer = httpx.post(f"{web.url}/api/support/contact", timeout=30, json={
        "email": BUY["email"],
        "message": f"Your page said it couldn't reach the server, but my card was charged $249. Ref {quoted}"})

    assert answer.status_code == 202, answer.text
    assert "$249" not in answer.json()["message"]  # a stranger typing the address learns nothing
    # The look-up runs in the contact's workflow, after the answer: a worker runs it, one that leaves the crashed
    # process's purchase alone (it never takes over an executor within the hour), so support is what finishes it.
    server_factory("worker", executor_id="worker-1", BACKSTOP_EXECUTOR_DEAD_AFTER_SECONDS="3600").start(
        STRIPE_API_BASE=fakepay.url)
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_contact WHERE answered_at IS NULL") == 0,
             timeout=60, message="the contact's workflow did not answer it")
    assert database.query("SELECT finding, needs_human FROM support_contact") == [("payment_fulfilled", 0)]
    acknowledgement = database.scalar("SELECT text FROM notify_message WHERE kind = 'support_ack'")
    assert "We don't have an account" not in acknowledgement
    assert "We see your $249 payment from" in acknowledgement and "Your access is active now." in acknowledgement
    assert database.query("SELECT reference, fulfilled_by, status FROM billing_order") == [
        (reference, "support", "paid")]
    assert database.scalar("SELECT state FROM billing_entitlement") == "active"
    assert database.scalar("SELECT kind FROM notify_message WHERE key = ?", (f"purchase-confirmation:{reference}",)) \
        == "purchase_recovered"
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]  # no second charge
    assert database.query("SELECT status, learnt_from FROM billing_processorstatus") == [("succeeded", "lookup")]

    _create_staff(web)
    desk = _signed_in_desk(web.url)
    case_id = database.scalar("SELECT id FROM support_case")
    case_path = f"/desk/cases/{case_id}"
    row = _payments_row(desk.get(case_path).text, reference)
    assert "processor: succeeded (as of " in row and "from a lookup at the processor)" in row
    assert f"order {reference}: paid (a support agent)" in row

    # The processor stops answering: the desk still shows what was recorded, without waiting on it.
    fakepay.stop()
    started = time.monotonic()
    page = desk.get(case_path)
    assert page.status_code == 200 and time.monotonic() - started < 2
    assert "processor: succeeded (as of " in _payments_row(page.text, reference)
    refused = _act(desk, case_path, "check_processor", "check-1")
    assert "That didn't work: could not reach the payment processor" in refused

    fakepay.start()
    checked = _act(desk, case_path, "check_processor", "check-2")
    assert f"Asked the processor just now: {reference}: succeeded." in checked
    assert database.query("SELECT status, learnt_from FROM billing_processorstatus") == [("succeeded", "lookup")]
    assert database.scalar("SELECT COUNT(*) FROM support_supportaction WHERE action = 'check_processor'") == 2
