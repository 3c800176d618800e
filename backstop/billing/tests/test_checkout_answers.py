"""A healthy checkout answers "paid" in the response to its POST, wherever the workflows run, over real HTTP."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from dbos import DBOS

from backstop.billing import checkout, messages
from backstop.billing.models import AttemptState, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan, buy, processor, settled  # noqa: F401
from backstop.runtime import wakeup
from conftest import wait_for


def _workflow_queues(database: Any) -> dict[str, str | None]:
    """Each purchase workflow's queue (None: started directly), from the engine's own tables."""
    sql = "SELECT workflow_uuid, queue_name FROM {table} WHERE workflow_uuid LIKE ?"
    if database.url:
        return dict(database.query(sql.format(table="dbos.workflow_status"), ("purchase:%",)))
    with sqlite3.connect(database.data_dir / "workflows.sqlite3", timeout=30) as conn:
        return dict(conn.execute(sql.format(table="workflow_status"), ("purchase:%",)).fetchall())


@pytest.mark.parametrize("workflows", ["inside", "process"])
def test_it_answers_paid_in_one_response_while_the_processor_is_healthy(
    workflows: str, server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The server waits for the buyer's answer as it does in production (with room for a loaded test machine: how fast
    # is bench/checkout_latency.py's to say; an answer that stopped at "charged" would be a 202 however long the
    # wait); the processor's webhook races the workflow, as Stripe's does.
    server = server_factory(BACKSTOP_SERVE_WORKFLOWS=workflows, BACKSTOP_CHECKOUT_WAIT_SECONDS="15")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)
    if workflows == "process":  # serve answers before its worker child is up: the first buyers would wait for it
        wait_for(lambda: server.database.scalar("SELECT COUNT(*) FROM runtime_executor WHERE id LIKE ?",
                                                ("%-workflows",)), timeout=60, message="the worker never reported in")

    def buy_one(number: int) -> httpx.Response:
        return httpx.post(f"{server.url}/api/checkout", timeout=30,
                          json={"product": "annual", "email": f"buyer{number}@example.com"},
                          headers={"Idempotency-Key": f"answers-{number}"})

    answers = [buy_one(number) for number in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers += list(pool.map(buy_one, range(8, 24)))

    assert [(answer.status_code, answer.json()["outcome"]) for answer in answers] == [(200, messages.PAID)] * 24
    assert all(answer.json()["active_until"] for answer in answers)
    database = server.database
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 24
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(24,)]
    # Handed straight to the engine, not left for a queue's next look: by the web process itself, or through
    # PostgreSQL to its worker. (Only a web process without the engine on SQLite, which has no channel between
    # processes, uses the purchase queue.)
    queued = "purchase" if workflows == "process" and not database.url else None
    assert set(_workflow_queues(database).values()) == {queued}
    wait_for(lambda: len(smtp_sink.messages) >= 24, timeout=60, message="not every buyer got a confirmation")


def test_it_starts_the_purchase_workflow_when_the_attempt_commits(engine_db: str, processor: Any) -> None:  # noqa: F811
    attempt = buy("ann@example.com")

    status = DBOS.get_workflow_status(attempt.workflow_id)

    assert status is not None and status.queue_name is None  # started, not enqueued
    settled(attempt)


def test_it_starts_a_purchase_handed_over_while_no_one_listened(engine_db: str, processor: Any) -> None:  # noqa: F811
    # Written down with no hand-over, as a web process beside a worker leaves it when no worker heard its wake-up.
    attempt = PurchaseAttempt.objects.create(
        idempotency_key="unheard-1", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email="bo@example.com", payment_method="pm_card_visa",
    )
    assert DBOS.get_workflow_status(attempt.workflow_id) is None

    wakeup._connected()  # this process's listening connection is back: what was sent meanwhile went unheard

    assert settled(attempt).state == AttemptState.FULFILLED


def test_it_waits_for_the_order_not_only_the_charge(engine_db: str, processor: Any) -> None:  # noqa: F811
    attempt = buy("cy@example.com")

    checkout.wait_for_charge(attempt=attempt, seconds=10)

    assert attempt.state == AttemptState.FULFILLED
    assert attempt.order is not None
