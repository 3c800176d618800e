"""No blank pages: every checkout outcome has a page and an API answer, and they tell the truth."""

from __future__ import annotations

import datetime as dt
from html import unescape
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from backstop.billing import checkout, fulfilment, messages
from backstop.billing.models import (
    NOT_CHARGED,
    AttemptState,
    Entitlement,
    Order,
    OrderStatus,
    PurchaseAttempt,
)
from backstop.billing.tests.conftest import annual_plan, buy, processor, settled  # noqa: F401
from backstop.notify.models import Channel, DeliveryStatus, Message

# What each outcome must say, whatever else it says.
MUST_SAY = {
    messages.PROCESSING: ["don't pay again", "updates by itself"],
    messages.FINISHING: ["You do not need to pay again", "confirmation email", "updates by itself"],
    messages.PAID: ["is active until", "confirmation"],
    messages.DECLINED: ["Nothing was charged", "try again"],
    messages.NOT_CHARGED: ["not charged"],
    messages.IN_DOUBT: ["may or may not have been charged", "do not pay again", "within 15 minutes"],
    messages.REFUNDED: ["refunded"],
}


def _attempt_in(outcome: str) -> PurchaseAttempt:
    state = {
        messages.PROCESSING: AttemptState.CHARGING, messages.FINISHING: AttemptState.CHARGED,
        messages.PAID: AttemptState.FULFILLED, messages.REFUNDED: AttemptState.FULFILLED,
        messages.DECLINED: AttemptState.DECLINED, messages.NOT_CHARGED: AttemptState.DECLINED,
        messages.IN_DOUBT: AttemptState.IN_DOUBT,
    }[outcome]
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"outcome-{outcome}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email="ann@example.com", payment_method="pm_card_visa", state=state,
        decline_code=NOT_CHARGED if outcome == messages.NOT_CHARGED else "insufficient_funds",
    )
    if state == AttemptState.FULFILLED:
        now = timezone.now()
        order = Order.objects.create(
            reference=attempt.reference, attempt=attempt, product=attempt.product, email=attempt.email,
            amount_cents=24900, currency="usd", payment_id=f"pi_{outcome}", payment_created_at=now,
            fulfilled_by="checkout", status=OrderStatus.REFUNDED if outcome == messages.REFUNDED else OrderStatus.PAID,
            refunded_cents=24900 if outcome == messages.REFUNDED else 0,
            refunded_at=now if outcome == messages.REFUNDED else None,
        )
        Entitlement.objects.create(order=order, product=attempt.product, email=attempt.email, starts_at=now,
                                   ends_at=now + dt.timedelta(days=365))
    return attempt


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", list(MUST_SAY))
def test_it_answers_every_outcome_on_the_page_and_in_the_api(client: Client, outcome: str) -> None:
    attempt = _attempt_in(outcome)

    page = client.get(f"/checkout/{attempt.reference}")
    answer = client.get(f"/api/orders/{attempt.reference}")

    assert page.status_code == 200
    assert answer.status_code == 200
    data = answer.json()
    assert data["outcome"] == outcome
    assert data["final"] == (outcome in (messages.PAID, messages.REFUNDED, messages.DECLINED, messages.NOT_CHARGED))
    assert data["email"] == "a***@example.com"  # a reference alone does not reveal the buyer
    html = unescape(page.content.decode())
    for phrase in MUST_SAY[outcome]:
        assert phrase.lower() in data["message"].lower(), (phrase, data["message"])
    assert data["title"] in html
    assert attempt.reference in html
    if outcome in (messages.DECLINED, messages.NOT_CHARGED):
        assert 'id="try-again" hidden' not in html
    else:
        assert 'id="try-again" hidden' in html


@pytest.mark.django_db
def test_it_says_the_confirmation_was_sent_only_once_it_went(client: Client) -> None:
    attempt = _attempt_in(messages.PAID)
    # An email outage holds the confirmation: queued, failing, not sent.
    confirmation = Message.objects.create(key=fulfilment.confirmation_key(attempt.reference), channel=Channel.EMAIL,
                                          kind="purchase_confirmation", to=attempt.email,
                                          status=DeliveryStatus.RETRYING)

    waiting = client.get(f"/api/orders/{attempt.reference}").json()["message"]
    assert messages.CONFIRMATION_COMING.format(email="a***@example.com") in waiting
    assert "We've sent" not in waiting

    Message.objects.filter(pk=confirmation.pk).update(status=DeliveryStatus.SENT, sent_at=timezone.now())
    page = unescape(client.get(f"/checkout/{attempt.reference}").content.decode())
    assert messages.CONFIRMATION_SENT.format(email="a***@example.com") in page


@pytest.mark.django_db
def test_it_says_it_does_not_know_a_reference(client: Client) -> None:
    assert client.get("/api/orders/BK-NOPE0-NOPE0").status_code == 404
    page = client.get("/checkout/BK-NOPE0-NOPE0")
    assert page.status_code == 404
    assert messages.ORDER_NOT_FOUND.happened in unescape(page.content.decode())


@pytest.mark.django_db
def test_it_renders_a_page_with_a_reference_when_the_purchase_path_breaks(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    annual_plan()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(checkout, "start_checkout", broken)
    page = client.post("/checkout", {"email": "ann@example.com", "payment_method": "pm_card_visa",
                                     "idempotency_key": "k-broken"})
    answer = client.post("/api/checkout", {"product": "annual", "email": "ann@example.com"},
                         content_type="application/json")

    assert page.status_code == 500
    html = unescape(page.content.decode())
    assert messages.PURCHASE_ERROR_TITLE in html
    assert "charged twice" in html and "don't pay again" in html
    assert 'id="error-reference"' in html
    assert answer.status_code == 500
    data = answer.json()
    assert data["code"] == "internal_error"
    assert data["reference"] and data["reference"] in data["message"]


@pytest.mark.django_db
def test_it_explains_what_is_wrong_with_the_form(client: Client) -> None:
    annual_plan()
    page = client.post("/checkout", {"email": "not-an-email", "payment_method": "pm_card_visa",
                                     "idempotency_key": "k-bad"})
    assert page.status_code == 400
    assert 'aria-invalid="true"' in page.content.decode()
    answer = client.post("/api/checkout", {"product": "lifetime", "email": "ann@example.com"},
                         content_type="application/json")
    assert answer.status_code == 400
    assert set(answer.json()["fields"]) == {"product"}
    assert PurchaseAttempt.objects.count() == 0


def test_it_tells_a_declined_buyer_nothing_was_charged(engine_db: str, processor: Any) -> None:  # noqa: F811
    attempt = settled(buy("bob@example.com", card="pm_card_chargeDeclinedInsufficientFunds"), AttemptState.DECLINED)

    answer = Client().get(f"/api/orders/{attempt.reference}").json()

    assert answer["outcome"] == messages.DECLINED
    assert "aren't enough funds" in answer["message"] and "Nothing was charged" in answer["message"]
    assert not Order.objects.exists()
    assert processor.query("SELECT status FROM payment_intents") == [("requires_payment_method",)]


def test_it_says_in_doubt_until_the_processor_answers_then_settles_it(engine_db: str, processor: Any) -> None:  # noqa: F811
    from django.core import mail

    from backstop.billing.reconcile import reconcile_payments
    from conftest import wait_for

    processor.set_fault("timeout")  # the processor holds every request: our calls time out
    with override_settings(PAYMENT_TIMEOUT=0.5, PAYMENT_MAX_ATTEMPTS=2):
        attempt = settled(buy("cat@example.com"), AttemptState.IN_DOUBT)
    answer = Client().get(f"/api/orders/{attempt.reference}").json()
    assert answer["outcome"] == messages.IN_DOUBT and answer["final"] is False

    processor.set_fault("ok")  # the held requests go through now: the card was charged after all, once
    wait_for(lambda: processor.query("SELECT status FROM payment_intents") == [("succeeded",)], timeout=30)
    summary = reconcile_payments(actor="test")

    assert summary.in_doubt_charged == 1
    settled(attempt)
    assert Client().get(f"/api/orders/{attempt.reference}").json()["outcome"] == messages.PAID
    wait_for(lambda: mail.outbox, message="the in-doubt buyer was not told")
    assert len(mail.outbox) == 1 and "charged once" in mail.outbox[0].subject
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
