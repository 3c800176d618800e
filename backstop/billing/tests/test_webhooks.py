"""The processor's webhook: signed, replay-proof, order-proof, and it finishes what the checkout could not."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from django.conf import settings
from django.core import mail
from django.test import Client

from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.billing import charging
from backstop.billing.models import (
    AttemptState,
    Entitlement,
    KnownRefund,
    Order,
    ProcessedWebhookEvent,
    PurchaseAttempt,
)
from backstop.billing.tests.conftest import annual_plan, buy, events_for, mailbox, settled, signed, stripe_client
from conftest import wait_for


def _deliver(client: Client, event: dict[str, Any], **signing: Any) -> Any:
    body, signature = signed(event, **signing)
    return client.post("/api/webhooks/payments", body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=signature)


def _charged_but_unrecorded(email: str) -> tuple[PurchaseAttempt, str]:
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"hook-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa",
    )
    charge = charging.charge_attempt(attempt_id=attempt.pk, try_number=1)
    assert charge["payment"] is not None
    return attempt, charge["payment"].id


def test_it_fulfils_a_payment_the_request_path_never_recorded(engine_db: str, processor: Any) -> None:
    attempt, payment_id = _charged_but_unrecorded("ann@example.com")
    [event] = events_for(processor, payment_id, "payment_intent.succeeded")

    answer = _deliver(Client(), event)

    assert answer.status_code == 200, answer.content
    assert answer.json()["outcome"] == "order fulfilled"
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.FULFILLED
    assert Order.objects.get(attempt=attempt).fulfilled_by == "webhook"
    wait_for(lambda: mail.outbox, message="no confirmation email")


def test_it_handles_a_replayed_event_once(engine_db: str, processor: Any) -> None:
    _, payment_id = _charged_but_unrecorded("bob@example.com")
    [event] = events_for(processor, payment_id, "payment_intent.succeeded")
    client = Client()

    outcomes = [_deliver(client, event).json()["outcome"] for _ in range(3)]

    assert outcomes == ["order fulfilled", "duplicate: already handled", "duplicate: already handled"]
    assert ProcessedWebhookEvent.objects.filter(event_id=event["id"]).count() == 1
    assert Order.objects.count() == 1
    wait_for(lambda: mail.outbox, message="no confirmation email")
    time.sleep(0.5)
    assert len(mail.outbox) == 1


def test_it_ignores_a_late_failure_event_for_a_paid_order(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("cat@example.com"))
    [event] = events_for(processor, attempt.payment_id, "payment_intent.succeeded")
    # Delivered out of order: an old "payment_failed" for this payment arrives after it succeeded.
    stale = {**event, "id": "evt_stale_failure", "type": "payment_intent.payment_failed",
             "data": {"object": {**event["data"]["object"], "status": "requires_payment_method"}}}

    answer = _deliver(Client(), stale)

    assert answer.status_code == 200
    assert answer.json()["outcome"] == "nothing to change"
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.FULFILLED
    assert Order.objects.filter(attempt=attempt, status="paid").count() == 1


def _refund_events(processor: Any, payment_id: str) -> list[dict[str, Any]]:
    """The processor's charge.refunded events of a payment (their object is the charge, naming its payment)."""
    bodies = processor.query("SELECT body FROM events WHERE type = 'charge.refunded' ORDER BY seq")
    events = [json.loads(body) for (body,) in bodies]
    return [event for event in events if event["data"]["object"]["payment_intent"] == payment_id]


def test_it_keeps_a_refund_event_that_arrives_before_the_payment_event(engine_db: str, processor: Any) -> None:
    attempt, payment_id = _charged_but_unrecorded("fay@example.com")
    stripe_client().refund(payment_id=payment_id, amount=24900, idempotency_key="dashboard-early")
    [succeeded] = events_for(processor, payment_id, "payment_intent.succeeded")
    [refunded] = _refund_events(processor, payment_id)
    client = Client()

    # Delivered out of order: the refund first, while no order exists yet; then the payment.
    first = _deliver(client, refunded).json()["outcome"]
    assert first == "refund kept until the order exists"
    assert KnownRefund.objects.get(payment_id=payment_id).amount_refunded == 24900
    second = _deliver(client, succeeded).json()["outcome"]

    assert second == "order recorded refunded: the payment was refunded before it"
    order = Order.objects.get(attempt=attempt)
    assert (order.status, order.refunded_cents) == ("refunded", 24900)
    assert stripe_client().retrieve(payment_id).amount_refunded == order.refunded_cents
    assert not Entitlement.objects.filter(order=order).exists()
    [email] = wait_for(lambda: mailbox("fay@example.com"), message="the buyer was not told")
    assert "refunded in full" in email.subject
    # The refund's own delivery again, late: nothing more to change.
    assert _deliver(client, {**refunded, "id": "evt_again"}).json()["outcome"] == "nothing to change"


def test_it_applies_an_early_partial_refund_when_the_order_appears(engine_db: str, processor: Any) -> None:
    attempt, payment_id = _charged_but_unrecorded("gil@example.com")
    stripe_client().refund(payment_id=payment_id, amount=4900, idempotency_key="dashboard-early-part")
    [succeeded] = events_for(processor, payment_id, "payment_intent.succeeded")
    [refunded] = _refund_events(processor, payment_id)
    client = Client()

    assert _deliver(client, refunded).json()["outcome"] == "refund kept until the order exists"
    assert _deliver(client, succeeded).json()["outcome"] == "order fulfilled"

    order = Order.objects.get(attempt=attempt)
    assert (order.status, order.refunded_cents) == ("paid", 4900)
    assert stripe_client().retrieve(payment_id).amount_refunded == order.refunded_cents
    assert Entitlement.objects.get(order=order).state == "active"  # a person decides what access it keeps
    assert AttentionRecord.objects.get(kind=AttentionKind.REFUND_PARTIAL).detail["refunded_cents"] == 4900
    [email] = wait_for(lambda: mailbox("gil@example.com"), message="no confirmation")
    assert "Already refunded to your card: $49." in email.body


def test_it_refuses_unsigned_forged_and_stale_events(engine_db: str, processor: Any) -> None:
    _, payment_id = _charged_but_unrecorded("dan@example.com")
    [event] = events_for(processor, payment_id, "payment_intent.succeeded")
    client = Client()

    unsigned = client.post("/api/webhooks/payments", event, content_type="application/json")
    forged = _deliver(client, event, secret="whsec_someone_else")
    stale = _deliver(client, event, at=int(time.time()) - 3600)

    assert [r.status_code for r in (unsigned, forged, stale)] == [400, 400, 400]
    assert unsigned.json()["code"] == "bad_signature"
    assert not ProcessedWebhookEvent.objects.exists()
    assert not Order.objects.exists()


def test_it_receives_the_processors_own_signed_deliveries(server_factory: Any, fakepay: Any) -> None:
    server = server_factory(BACKSTOP_CHECKOUT_WAIT_SECONDS="0")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)
    paid = httpx.post(f"{server.url}/api/checkout", json={"product": "annual", "email": "eve@example.com"},
                      headers={"Idempotency-Key": "hooks-1"}, timeout=30)
    assert paid.status_code in (200, 202)
    database = server.database
    [(event_id,)] = wait_for(lambda: fakepay.query("SELECT id FROM events WHERE type = 'payment_intent.succeeded'"),
                             timeout=30, message="never charged")
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM billing_processedwebhookevent WHERE event_id = ?",
                                     (event_id,)) == 1, timeout=30, message=f"fakepay's delivery never landed:\n"
                                                                            f"{fakepay.log()}")
    for _ in range(3):  # the processor redelivers (as Stripe does on a timeout)
        httpx.post(f"{fakepay.url}/_fakepay/events/{event_id}/redeliver", timeout=10).raise_for_status()
    wait_for(lambda: fakepay.query("SELECT COUNT(*) FROM webhook_deliveries WHERE event_id = ? AND state = "
                                   "'delivered'", (event_id,)) == [(4,)], timeout=30)

    assert database.scalar("SELECT COUNT(*) FROM billing_processedwebhookevent WHERE event_id = ?", (event_id,)) == 1
    assert database.scalar("SELECT COUNT(*) FROM billing_order") == 1
    assert database.scalar("SELECT COUNT(*) FROM notify_message WHERE key LIKE ?", ("purchase-confirmation:%",)) == 1


def test_it_refuses_over_http_an_event_signed_with_a_timestamp_beyond_the_tolerance_in_the_future(
    server_factory: Any,
) -> None:
    server = server_factory(STRIPE_WEBHOOK_TOLERANCE_SECONDS="300").start()
    event = {"id": "evt_from_the_future", "object": "event", "type": "customer.created", "created": int(time.time()),
             "data": {"object": {"id": "cus_1", "object": "customer"}}}

    def deliver(at: int) -> httpx.Response:
        body, signature = signed(event, at=at)
        return httpx.post(f"{server.url}/api/webhooks/payments", content=body, timeout=10,
                          headers={"Content-Type": "application/json", "Stripe-Signature": signature})

    a_day_ahead = deliver(int(time.time()) + 86400)
    just_beyond = deliver(int(time.time()) + 330)
    # A processor whose clock runs a little ahead of ours is still heard.
    slightly_ahead = deliver(int(time.time()) + 30)

    assert (a_day_ahead.status_code, a_day_ahead.json()["code"]) == (400, "bad_signature")
    assert just_beyond.status_code == 400
    assert slightly_ahead.status_code == 200, slightly_ahead.text
    assert slightly_ahead.json()["outcome"] == "ignored customer.created"
    assert server.database.query("SELECT event_id FROM billing_processedwebhookevent") == [("evt_from_the_future",)]


def test_it_answers_a_signed_body_that_is_no_event_with_a_clear_400(engine_db: str, processor: Any) -> None:
    client = Client()
    key = settings.STRIPE_WEBHOOK_SECRET.encode()

    def post_signed(body: bytes) -> Any:
        timestamp = int(time.time())
        digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return client.post("/api/webhooks/payments", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={digest}")

    answers = [post_signed(body) for body in (b"[]", b'{"type": "x"}', b"not json", b'{"id": "evt_1", "type": '
                                              b'"payment_intent.succeeded", "data": {"object": 7}}')]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
    assert {answer.json()["code"] for answer in answers} == {"malformed_event"}
    assert not ProcessedWebhookEvent.objects.exists()
