"""Four paths fulfil one payment at the same moment: one order, one entitlement, one email. Threads and processes."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.core import mail

from backstop.billing import charging, checkout, fulfilment, webhooks
from backstop.billing.models import AttemptState, AuditEntry, Entitlement, FulfilledBy, Order, PurchaseAttempt
from backstop.billing.providers import ProcessorPayment
from backstop.billing.reconcile import reconcile_payments
from backstop.billing.tests.conftest import all_at_once, annual_plan, events_for, signed
from backstop.notify.models import Message
from conftest import ROOT, wait_for

PAYMENTS = 4


def _charged_but_unrecorded(email: str) -> tuple[PurchaseAttempt, ProcessorPayment]:
    """The production charge step ran (the processor took the money) and nothing after it did."""
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"race-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa",
    )
    charge = charging.charge_attempt(attempt_id=attempt.pk, try_number=1)
    assert charge["outcome"] == "succeeded" and charge["payment"] is not None
    return attempt, charge["payment"]


def test_it_makes_one_order_when_checkout_webhook_reconciliation_and_support_race(
    engine_db: str, processor: Any
) -> None:
    charged = [_charged_but_unrecorded(f"buyer{n}@example.com") for n in range(PAYMENTS)]
    attempts = [attempt for attempt, _ in charged]
    actions: list[Callable[[], Any]] = [lambda: reconcile_payments(actor="test:reconciler")]
    for attempt, payment in charged:
        event = events_for(processor, payment.id, "payment_intent.succeeded")[0]
        body, signature = signed(event)
        actions += [
            functools.partial(checkout.enqueue_purchase, attempt.pk),
            functools.partial(webhooks.handle_payment_event, payload=body, signature=signature),
            functools.partial(fulfilment.fulfil_payment, payment=payment, source=FulfilledBy.SUPPORT,
                              actor="staff:support@example.com"),
        ]

    errors = all_at_once(actions)

    assert not errors, errors
    for attempt in attempts:
        settled = wait_for(lambda attempt=attempt: PurchaseAttempt.objects.filter(
            pk=attempt.pk, state=AttemptState.FULFILLED).first(), message="an attempt was not fulfilled")
        assert Order.objects.filter(attempt=attempt).count() == 1
        assert Entitlement.objects.filter(order__attempt=attempt).count() == 1
        assert Message.objects.filter(key=fulfilment.confirmation_key(settled.reference)).count() == 1
        assert AuditEntry.objects.filter(reference=settled.reference, action="order_fulfilled").count() == 1
    wait_for(lambda: len(mail.outbox) >= PAYMENTS, message="not every buyer got a confirmation")
    time.sleep(0.5)  # a duplicate would arrive right behind the first
    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.email for a in attempts)
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(PAYMENTS,)]


SUPPORT_FULFILS = """
import os, time
from backstop.billing import charging, checkout, fulfilment
from backstop.billing.models import PurchaseAttempt
from backstop.billing.providers import payment_processor
time.sleep(max(0.0, float(os.environ["RACE_AT"]) - time.time()))
payment = payment_processor().retrieve(os.environ["RACE_PAYMENT"])
fulfilment.fulfil_payment(payment=payment, source="support", actor="staff:support@example.com")
print("support fulfilled")
"""


def test_it_makes_one_order_when_processes_race_after_a_crash(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The crash takes the whole server down: its workflows run inside it.
    env = {"BACKSTOP_CHECKOUT_SLOW_SECONDS": "2", "BACKSTOP_RECONCILE_SETTLE_SECONDS": "0",
           "BACKSTOP_RECONCILE_STUCK_AFTER_SECONDS": "0", "BACKSTOP_SERVE_WORKFLOWS": "inside"}
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge", **env)
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/api/checkout", json={"product": "annual", "email": "ann@example.com"},
                   headers={"Idempotency-Key": "race-1"}, timeout=30)
    assert server.process is not None and server.process.wait(timeout=30) == 70
    [(payment_id,)] = fakepay.query("SELECT id FROM payment_intents")
    [(event_id,)] = fakepay.query("SELECT id FROM events WHERE type = 'payment_intent.succeeded'")

    # All at once: the restarted server resumes the workflow (and takes webhooks), the reconcile command
    # and a support agent's fulfilment run in their own processes, and the processor redelivers its event.
    race_at = time.time() + 6
    child_env = {**os.environ, **server.env, "STRIPE_API_BASE": fakepay.url, "RACE_AT": str(race_at),
                 "RACE_PAYMENT": payment_id}
    restarted = server_factory(executor_id="web-1", **env)
    restarted.port = server.port
    restarted.start(wait=False, STRIPE_API_BASE=fakepay.url)
    children = [
        subprocess.Popen([sys.executable, "-m", "backstop.cli", "shell", "-c", SUPPORT_FULFILS], env=child_env,
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(max(0, {race_at} - time.time())); "
                          "from backstop.cli import main; main(['reconcile', '--no-progress'])"],
                         env=child_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
    ]
    restarted.wait_until_up()
    time.sleep(max(0.0, race_at - time.time()))
    httpx.post(f"{fakepay.url}/_fakepay/events/{event_id}/redeliver", timeout=10).raise_for_status()
    outputs = [child.communicate(timeout=120)[0].decode(errors="replace") for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs

    database = server.database
    wait_for(lambda: database.scalar("SELECT state FROM billing_purchaseattempt") == "fulfilled", timeout=60)
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_entitlement") == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_auditentry WHERE action = 'order_fulfilled'") == 1
    assert database.scalar("SELECT COUNT(*) FROM notify_message WHERE key LIKE ?", ("purchase-confirmation:%",)) == 1
    wait_for(lambda: smtp_sink.to("ann@example.com"), timeout=30, message="no confirmation email")
    time.sleep(1)  # a duplicate would be right behind
    assert len(smtp_sink.to("ann@example.com")) == 1
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
