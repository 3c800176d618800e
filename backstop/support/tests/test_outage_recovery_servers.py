"""Incidents follow the provider, over real processes: a `backstop serve` whose provider fails and then recovers with
no customer traffic at all. The breaker's probe notices within its interval, every customer waiting on the provider
(the one whose setup spent its budget included) is retried, the incident ends, and the apology states the outage as
measured; a welcome email that spent its budget is sent once the email provider is back, and the banner said so."""

from __future__ import annotations

import datetime as dt
import html
import time
from typing import Any

import httpx

from conftest import wait_for

PASSWORD = "correct horse battery"
PROBE_SECONDS = 1.0
# One signup spends its whole budget (two attempts) and opens the breaker (two failures) on its own: nobody else is
# waiting on the provider, so only the probe can notice it recovering.
OUTAGE_ENV = {
    "BACKSTOP_BREAKER_THRESHOLD": "2",
    "BACKSTOP_SETUP_MAX_ATTEMPTS": "2",
    "BACKSTOP_BREAKER_PROBE_SECONDS": str(PROBE_SECONDS),
    "BACKSTOP_BREAKER_COOLDOWN_SECONDS": "1",
    "BACKSTOP_SUPPORT_CYCLE_SECONDS": "2",
}
# The probe runs on the supervisor's beat (BACKSTOP_HEARTBEAT_SECONDS=1 in the test servers), plus a loaded machine.
NOTICED_WITHIN = PROBE_SECONDS + 1.0 + 4.0


def _moment(value: Any) -> dt.datetime:
    """A timestamp as SQLite (text, UTC) or PostgreSQL (aware) hands it back."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _set_faults(server: Any, **modes: str) -> None:
    httpx.post(f"{server.url}/demo/api/faults", json=modes, timeout=30).raise_for_status()


def _sign_up(server: Any, email: str) -> httpx.Client:
    customer = httpx.Client(base_url=server.url, timeout=30)
    response = customer.post("/api/signup", json={
        "name": "Ann Lee", "email": email, "phone": "+1 415 555 0100", "company": "Acme", "password": PASSWORD})
    assert response.status_code == 201, response.text
    return customer


def _account(server: Any, email: str) -> tuple[int, str]:
    pk, state = server.database.query("SELECT id, state FROM accounts_account WHERE email_key = ?", (email,))[0]
    return int(pk), str(state)


def _breaker(server: Any, provider: str) -> dict[str, Any]:
    rows = server.database.query(
        "SELECT state, failing_since, recovered_at FROM runtime_circuitbreaker WHERE provider = ?", (provider,))
    if not rows:
        return {}
    state, failing_since, recovered_at = rows[0]
    return {"state": state, "failing_since": failing_since and _moment(failing_since),
            "recovered_at": recovered_at and _moment(recovered_at)}


def _incident(server: Any, provider: str) -> dict[str, Any]:
    rows = server.database.query(
        "SELECT id, state, started_at, cleared_at FROM support_incident WHERE provider = ? ORDER BY id", (provider,))
    if not rows:
        return {}
    pk, state, started_at, cleared_at = rows[-1]
    return {"id": pk, "state": state, "started_at": _moment(started_at),
            "cleared_at": cleared_at and _moment(cleared_at)}


def _page(customer: httpx.Client, path: str) -> str:
    response = customer.get(path, follow_redirects=True)
    assert response.status_code == 200, response.text
    return html.unescape(response.text)


def test_it_ends_a_workspace_outage_within_a_probe_interval_and_lets_the_locked_out_customer_in(
        server_factory: Any, smtp_sink: Any) -> None:
    server = server_factory(**OUTAGE_ENV).start()
    _set_faults(server, workspace="error")
    failing_from = dt.datetime.now(dt.UTC)
    customer = _sign_up(server, "ann@example.com")
    account_id = _account(server, "ann@example.com")[0]

    wait_for(lambda: _account(server, "ann@example.com")[1] == "needs_attention", timeout=60,
             message=f"the setup never spent its budget:\n{server.log()}")
    assert server.database.scalar("SELECT state FROM runtime_circuitbreaker WHERE provider = 'workspace'") != "closed"
    wait_for(lambda: server.database.scalar(
        "SELECT incident_id FROM support_case WHERE account_id = ? AND state = 'open'", (account_id,)), timeout=30,
        message=f"the locked-out customer never joined the incident:\n{server.log()}")
    # The desk shows them waiting on the incident ("automation retrying, no action needed"); so does their page.
    page = _page(customer, "/setup")
    assert "Our support team has it" not in page and "Our support team already has" not in page
    assert "we'll try again by ourselves as soon as it works again" in page

    # The provider recovers, and nobody signs up, signs in or presses anything.
    recovered_from = dt.datetime.now(dt.UTC)
    _set_faults(server, workspace="ok")

    wait_for(lambda: (_breaker(server, "workspace").get("recovered_at")), timeout=30,
             message=f"no probe noticed the provider working again:\n{server.log()}")
    breaker = _breaker(server, "workspace")
    assert breaker["state"] == "closed"
    assert recovered_from <= breaker["recovered_at"] <= recovered_from + dt.timedelta(seconds=NOTICED_WITHIN)
    wait_for(lambda: _incident(server, "workspace")["state"] != "open", timeout=NOTICED_WITHIN,
             message="the incident card still said the provider was failing")
    wait_for(lambda: _account(server, "ann@example.com")[1] == "active", timeout=60,
             message=f"the locked-out customer was never retried:\n{server.log()}")
    wait_for(lambda: _incident(server, "workspace")["state"] == "resolved", timeout=30,
             message=f"the incident never resolved:\n{server.log()}")

    incident = _incident(server, "workspace")
    assert incident["started_at"] == breaker["failing_since"]
    assert failing_from <= incident["started_at"] <= recovered_from
    assert incident["cleared_at"] == breaker["recovered_at"]
    apology = wait_for(lambda: [m for m in smtp_sink.to("ann@example.com") if "It's fixed" in str(m["Subject"])],
                       timeout=30, message="the customer was never told it is fixed")
    assert len(apology) == 1
    text = apology[0].get_payload()[0].get_payload(decode=True).decode() if apology[0].is_multipart() \
        else apology[0].get_payload(decode=True).decode()
    window = f"failed from {incident['started_at']:%H:%M} to {incident['cleared_at']:%H:%M} UTC"
    assert window in text, text


def test_it_sends_a_welcome_email_that_spent_its_budget_once_the_email_provider_is_back(
        server_factory: Any, smtp_sink: Any) -> None:
    server = server_factory(**OUTAGE_ENV).start()
    _set_faults(server, email="error")
    customer = _sign_up(server, "bea@example.com")
    account_id = _account(server, "bea@example.com")[0]

    def welcome_given_up() -> bool:
        return server.database.scalar(
            "SELECT status FROM accounts_setupstep WHERE account_id = ? AND name = 'welcome_email'",
            (account_id,)) == "failed"

    wait_for(welcome_given_up, timeout=60, message=f"the welcome email never spent its budget:\n{server.log()}")
    wait_for(lambda: _account(server, "bea@example.com")[1] == "active", timeout=30)
    assert server.database.scalar("SELECT state FROM runtime_circuitbreaker WHERE provider = 'email'") != "closed"
    page = _page(customer, "/app")
    assert "the link in our welcome email" not in page
    assert "We couldn't send your welcome email to bea@example.com yet; we'll send it when our email provider is " \
           "back." in page
    assert 'id="resend-welcome"' in page
    assert not smtp_sink.to("bea@example.com")

    _set_faults(server, email="ok")  # and no traffic at all

    def welcome_sent() -> list[Any]:
        return [m for m in smtp_sink.to("bea@example.com") if str(m["Message-ID"]).startswith("<welcome.")]

    wait_for(welcome_sent, timeout=30, message=f"the welcome email was never sent:\n{server.log()}")
    time.sleep(1)
    assert len(welcome_sent()) == 1
    page = _page(customer, "/app")
    assert "the link in our welcome email" in page
    assert 'id="resend-welcome"' not in page
