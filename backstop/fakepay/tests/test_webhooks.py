"""Webhook delivery: Stripe-compatible signatures, retries, redelivery, and an outbox that survives a crash."""

from __future__ import annotations

from pathlib import Path

import stripe

from backstop.fakepay.tests.support import (
    API_KEY,
    FAIL_ONCE,
    WEBHOOK_SECRET,
    FakePayProcess,
    WebhookReceiver,
)
from conftest import wait_for


def test_it_delivers_events_signed_so_the_sdk_verifies_them(
    client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )

    delivered = wait_for(
        lambda: {w.event["type"] for w in webhook_receiver.events_about(intent.id)}
        >= {"payment_intent.created", "payment_intent.succeeded"},
        message="no webhooks for the payment",
    )
    assert delivered
    for webhook in webhook_receiver.events_about(intent.id):
        event = stripe.Webhook.construct_event(webhook.payload, webhook.signature, WEBHOOK_SECRET)
        assert event.data.object["id"] == intent.id
        assert webhook.signature.startswith("t=") and ",v1=" in webhook.signature
    succeeded = next(
        w for w in webhook_receiver.events_about(intent.id) if w.event["type"] == "payment_intent.succeeded"
    )
    assert client.v1.events.retrieve(succeeded.event["id"]).to_dict() == succeeded.event


def test_it_retries_a_refused_delivery_until_the_endpoint_accepts_it(
    client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "metadata": {"webhook": FAIL_ONCE}}
    )
    created_event = wait_for(lambda: webhook_receiver.events_about(intent.id))[0].event

    attempts = wait_for(lambda: len(webhook_receiver.deliveries_of(created_event["id"])) >= 2 and
                        webhook_receiver.deliveries_of(created_event["id"]), message="no retry after a 500")

    assert [w.payload for w in attempts[:2]] == [attempts[0].payload] * 2


def test_it_redelivers_an_event_on_request(
    fakepay: FakePayProcess, client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    intent = client.v1.payment_intents.create(params={"amount": 300, "currency": "usd"})
    event_id = wait_for(lambda: webhook_receiver.events_about(intent.id))[0].event["id"]

    response = fakepay.control(f"events/{event_id}/redeliver")

    assert response.status_code == 202 and response.json() == {"event": event_id, "queued": 1}
    copies = wait_for(lambda: len(webhook_receiver.deliveries_of(event_id)) == 2 and
                      webhook_receiver.deliveries_of(event_id), message="event not redelivered")
    for copy in copies:
        stripe.Webhook.construct_event(copy.payload, copy.signature, WEBHOOK_SECRET)
    assert fakepay.control("events/evt_missing/redeliver").status_code == 404


def test_it_delivers_pending_events_after_a_crash_and_restart(tmp_path: Path) -> None:
    receiver = WebhookReceiver(refusing=True).start()
    server = FakePayProcess(db_path=tmp_path / "fakepay.sqlite3", webhook_urls=[receiver.url], allow_reset=True)
    try:
        server.start()
        client = stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, max_network_retries=0)
        intent = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
        wait_for(lambda: receiver.events_about(intent.id), message="first delivery never attempted")
        server.kill()

        receiver.refusing = False
        refused = len(receiver.events_about(intent.id))
        server.start()

        wait_for(lambda: len(receiver.events_about(intent.id)) > refused, message="pending delivery lost")
        assert client.v1.payment_intents.retrieve(intent.id).status == "requires_payment_method"

        assert server.control("reset").status_code == 200
        assert client.v1.payment_intents.list().data == []
    finally:
        server.stop()
        receiver.stop()
