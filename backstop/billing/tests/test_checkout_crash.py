"""The paid-but-crashed checkout, for real: a process dies right after the processor confirms the charge."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from backstop.billing import messages
from conftest import wait_for

BUY = {"product": "annual", "email": "ann@example.com", "payment_method": "pm_card_visa"}
KEY = {"Idempotency-Key": "checkout-ann-1"}


def _workflow_status(database: Any, workflow_id: str) -> str | None:
    """The engine's record of a workflow: in the `dbos` schema on PostgreSQL, its own file on SQLite."""
    sql = "SELECT status FROM {table} WHERE workflow_uuid = ?"
    if database.url:
        return database.scalar(sql.format(table="dbos.workflow_status"), (workflow_id,))
    with sqlite3.connect(database.data_dir / "workflows.sqlite3", timeout=30) as conn:
        row = conn.execute(sql.format(table="workflow_status"), (workflow_id,)).fetchone()
    return row[0] if row else None


def _order(base_url: str, reference: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/orders/{reference}", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_it_finishes_a_paid_checkout_exactly_once_after_the_server_dies_mid_purchase(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The apology threshold is below any restart time, so the email is the "recovered" one whichever path
    # (the resumed workflow or the processor's webhook) finishes the order.
    # The crash takes the whole server down: its workflows run inside it.
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge",
                            BACKSTOP_CHECKOUT_SLOW_SECONDS="2", BACKSTOP_SERVE_WORKFLOWS="inside")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)

    with pytest.raises(httpx.TransportError):  # the process exits while the buyer waits for the answer
        httpx.post(f"{server.url}/api/checkout", json=BUY, headers=KEY, timeout=30)
    assert server.process is not None
    assert server.process.wait(timeout=30) == 70, server.log()
    assert fakepay.query("SELECT COUNT(*), MIN(status) FROM payment_intents") == [(1, "succeeded")]
    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 0
    assert database.scalar("SELECT state FROM billing_purchaseattempt") == "charging"

    # Same executor id, same port, the fault still on: the workflow resumes where it stopped.
    restarted = server_factory(executor_id="web-1", BACKSTOP_CHECKOUT_SLOW_SECONDS="2",
                               BACKSTOP_SERVE_WORKFLOWS="inside")
    restarted.port = server.port
    restarted.start(STRIPE_API_BASE=fakepay.url)
    # The buyer presses "Pay" again: the same key is the same purchase, not a second charge.
    retried = httpx.post(f"{restarted.url}/api/checkout", json=BUY, headers=KEY, timeout=30)
    assert retried.status_code in (200, 202), retried.text
    assert retried.headers.get("Idempotent-Replayed") == "true"
    reference = retried.json()["reference"]

    wait_for(lambda: _order(restarted.url, reference)["outcome"] == messages.PAID, timeout=60,
             message=f"the order was not finished after the restart:\n{restarted.log()}")
    outcome = _order(restarted.url, reference)
    assert outcome["final"] is True
    assert outcome["active_until"]

    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_entitlement WHERE state = 'active'") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_purchaseattempt") == 1
    wait_for(lambda: _workflow_status(database, "purchase:1") == "SUCCESS", timeout=30,
             message="the resumed purchase workflow never ended")
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    mails = wait_for(lambda: smtp_sink.to(BUY["email"]), timeout=30, message="no confirmation email")
    assert len(mails) == 1
    assert "You were charged once" in str(mails[0]["Subject"])
    body = mails[0].get_payload(0).get_payload(decode=True).decode()
    assert "We're sorry" in body and "not charged twice" in body and reference in body
    actions = [row[0] for row in database.query("SELECT action FROM billing_auditentry ORDER BY id")]
    assert actions[0] == "checkout_recorded"
    assert actions.count("order_fulfilled") == 1


def test_it_finishes_a_paid_checkout_once_when_only_the_worker_process_dies_after_the_charge(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge",
                            BACKSTOP_CHECKOUT_SLOW_SECONDS="2", BACKSTOP_SERVE_WORKFLOWS="process")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)
    database = server.database
    worker = wait_for(lambda: database.scalar("SELECT pid FROM runtime_executor WHERE id = 'web-1-workflows'"),
                      timeout=60, message="the worker never reported in")

    # The web process stays up: the buyer gets an answer, not a dropped connection.
    answer = httpx.post(f"{server.url}/api/checkout", json=BUY, headers=KEY, timeout=30)
    assert answer.status_code in (200, 202), answer.text
    reference = answer.json()["reference"]

    # The worker died right after the charge. The processor's webhook to the web process, or the worker that serve
    # starts again and that resumes the purchase it owned, finishes the order: once.
    wait_for(lambda: _order(server.url, reference)["outcome"] == messages.PAID, timeout=60,
             message=f"the order was not finished by the restarted worker:\n{server.log()}")
    # The webhook can finish the order before serve has noticed its worker's death: wait for serve to say so.
    wait_for(lambda: "exited with status 70" in server.log(), timeout=30,
             message=f"serve never reported its worker's crash:\n{server.log()}")
    wait_for(lambda: database.scalar("SELECT pid FROM runtime_executor WHERE id = 'web-1-workflows'") != worker,
             timeout=30, message="the restarted worker never reported in")
    assert server.process is not None and server.process.poll() is None
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    wait_for(lambda: _workflow_status(database, "purchase:1") == "SUCCESS", timeout=30,
             message="the resumed purchase workflow never ended")
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    mails = wait_for(lambda: smtp_sink.to(BUY["email"]), timeout=30, message="no confirmation email")
    assert len(mails) == 1
