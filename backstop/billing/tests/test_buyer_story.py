"""The buyer's story decides the email: whoever was told something went wrong gets the apology that names it, however
quickly it all ended; whoever was only ever told "paid" gets the plain confirmation. And the processing page tells the
truth once the usual few seconds are over."""

from __future__ import annotations

import datetime as dt
from html import unescape
from typing import Any

import httpx
import pytest
from django.test import Client, override_settings
from django.utils import timezone

from backstop.billing import checkout, fulfilment, messages
from backstop.billing.models import AttemptState, BuyerSaw, FulfilledBy, Order, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan, buy, mailbox, processor, settled  # noqa: F401
from conftest import wait_for

BUY = {"product": "annual", "email": "ann@example.com", "payment_method": "pm_card_visa"}
APOLOGY = "You were charged once"


def _told(buyer_saw: str, *, interrupted: bool = False, took_seconds: float = 1.0) -> str:
    now = timezone.now()
    attempt = PurchaseAttempt(buyer_saw=buyer_saw, interrupted=interrupted, created_at=now - dt.timedelta(minutes=1),
                              charge_started_at=now - dt.timedelta(seconds=took_seconds), fulfilled_at=now)
    kind, words = fulfilment.confirmation_email(attempt, Order(fulfilled_by=FulfilledBy.WEBHOOK))
    return f"{kind}: {words}" if words else kind


@pytest.mark.parametrize(("buyer_saw", "interrupted", "took_seconds", "email"), [
    (BuyerSaw.NOTHING, False, 1, "purchase_confirmation"),
    (BuyerSaw.WAITING, False, 1, "purchase_confirmation"),
    # Their story is not known to have ended well: a checkout that did not go straight through says sorry.
    (BuyerSaw.NOTHING, True, 1, f"purchase_recovered: {messages.APOLOGY_DEFAULT}"),
    (BuyerSaw.WAITING, False, 45, f"purchase_recovered: {messages.APOLOGY_DEFAULT}"),
    (BuyerSaw.ASKED_AGAIN, True, 1, f"purchase_recovered: {messages.APOLOGY_DEFAULT}"),
    (BuyerSaw.ASKED_AGAIN, False, 1, "purchase_confirmation"),
    # Told only "paid": nothing went wrong as far as they could see, whatever happened behind it.
    (BuyerSaw.PAID, True, 45, "purchase_confirmation"),
    # Told something went wrong: the apology names it, however quickly it all ended.
    (BuyerSaw.LATE, False, 1, f"purchase_recovered: {messages.APOLOGY_FOR['late']}"),
    (BuyerSaw.IN_DOUBT, False, 1, f"purchase_recovered: {messages.APOLOGY_FOR['in_doubt']}"),
    (BuyerSaw.OFFLINE, False, 1, f"purchase_recovered: {messages.APOLOGY_FOR['offline']}"),
    (BuyerSaw.ERROR, False, 1, f"purchase_recovered: {messages.APOLOGY_FOR['error']}"),
])
def test_it_chooses_the_confirmation_from_what_the_buyer_was_told(
    buyer_saw: str, interrupted: bool, took_seconds: float, email: str
) -> None:
    assert _told(buyer_saw, interrupted=interrupted, took_seconds=took_seconds) == email


@pytest.mark.django_db
def test_it_keeps_the_worst_thing_the_buyer_was_told() -> None:
    attempt = PurchaseAttempt.objects.create(
        idempotency_key="story-1", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email="ann@example.com", payment_method="pm_card_visa")

    told = [PurchaseAttempt.objects.note_buyer_saw(attempt.pk, saw)
            for saw in (BuyerSaw.WAITING, BuyerSaw.OFFLINE, BuyerSaw.PAID, BuyerSaw.WAITING)]

    assert told == [True, True, False, False]
    assert PurchaseAttempt.objects.get(pk=attempt.pk).buyer_saw == BuyerSaw.OFFLINE


def test_it_apologises_for_the_error_page_however_quickly_the_order_was_finished(
    engine_db: str, processor: Any, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    annual_plan()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(checkout, "wait_for_charge", broken)
    processor.set_fault("timeout")  # the charge waits at the processor until the buyer has seen the error
    answer = Client().post("/api/checkout", BUY, content_type="application/json", HTTP_IDEMPOTENCY_KEY="story-err")
    processor.set_fault("ok")

    assert answer.status_code == 500
    attempt = settled(PurchaseAttempt.objects.get(idempotency_key="story-err"))
    assert attempt.buyer_saw == BuyerSaw.ERROR
    [email] = wait_for(lambda: mailbox("ann@example.com"), message="no confirmation email")
    assert APOLOGY in email.subject
    assert "showed you an error page" in email.body


def test_it_apologises_to_a_buyer_whose_page_could_not_reach_us(engine_db: str, processor: Any) -> None:  # noqa: F811
    processor.set_fault("timeout")
    attempt = buy("bob@example.com")
    # The page failed to reach us and said so; its next look tells us.
    answer = Client().get(f"/api/orders/{attempt.reference}?offline=true")
    processor.set_fault("ok")

    assert answer.json()["outcome"] == messages.PROCESSING
    assert settled(attempt).buyer_saw == BuyerSaw.OFFLINE
    [email] = wait_for(lambda: mailbox("bob@example.com"), message="no confirmation email")
    assert APOLOGY in email.subject
    assert "couldn't reach it" in email.body


def test_it_sends_the_plain_confirmation_to_a_buyer_who_saw_only_paid(engine_db: str, processor: Any) -> None:  # noqa: F811
    annual_plan()
    with override_settings(CHECKOUT_WAIT_SECONDS=10.0):
        answer = Client().post("/api/checkout", {**BUY, "email": "cy@example.com"}, content_type="application/json",
                               HTTP_IDEMPOTENCY_KEY="story-paid")

    assert (answer.status_code, answer.json()["outcome"]) == (200, messages.PAID)
    assert PurchaseAttempt.objects.get(idempotency_key="story-paid").buyer_saw == BuyerSaw.PAID
    [email] = wait_for(lambda: mailbox("cy@example.com"), message="no confirmation email")
    assert APOLOGY not in email.subject and "is active" in email.subject


@pytest.mark.django_db
def test_it_stops_saying_a_few_seconds_once_they_are_over(client: Client) -> None:
    fresh, late = (PurchaseAttempt.objects.create(
        idempotency_key=f"slow-{n}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email="dee@example.com", payment_method="pm_card_visa", state=AttemptState.CHARGING,
        created_at=timezone.now() - dt.timedelta(seconds=age)) for n, age in enumerate((1, 70)))

    for attempt, title in ((fresh, messages.TITLES[messages.PROCESSING]),
                           (late, messages.TITLES[messages.PROCESSING_LATE])):
        data = client.get(f"/api/orders/{attempt.reference}").json()
        page = unescape(client.get(f"/checkout/{attempt.reference}").content.decode())
        assert (data["outcome"], data["final"], data["title"]) == (messages.PROCESSING, False, title)
        assert title in page and data["message"] in page
    fresh_words = client.get(f"/api/orders/{fresh.reference}").json()["message"]
    late_words = client.get(f"/api/orders/{late.reference}").json()["message"]

    assert "usually takes a few seconds" in fresh_words
    assert "usually takes a few seconds" not in late_words
    # What happened, what we are doing, what they need not do.
    for phrase in ("taking longer than usual", "we finish your order the moment it answers",
                   "can't be charged twice", "Please don't pay again"):
        assert phrase in late_words, phrase
    assert PurchaseAttempt.objects.get(pk=fresh.pk).buyer_saw == BuyerSaw.WAITING
    assert PurchaseAttempt.objects.get(pk=late.pk).buyer_saw == BuyerSaw.LATE


def test_it_apologises_for_a_crash_mid_checkout_however_fast_the_restart(
    server_factory: Any, fakepay: Any, smtp_sink: Any
) -> None:
    # The apology threshold for slow checkouts stays at its default (30 s): the restart is far quicker. The crash takes
    # the whole server down (its workflows run inside it); the buyer's request never gets its answer.
    server = server_factory(executor_id="web-1", BACKSTOP_FAULTS="payments=crash_after_charge",
                            BACKSTOP_SERVE_WORKFLOWS="inside")
    fakepay.start(webhook_url=f"{server.url}/api/webhooks/payments")
    server.start(STRIPE_API_BASE=fakepay.url)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{server.url}/api/checkout", json=BUY, headers={"Idempotency-Key": "crash-1"}, timeout=30)
    assert server.process is not None and server.process.wait(timeout=30) == 70

    restarted = server_factory(executor_id="web-1", BACKSTOP_SERVE_WORKFLOWS="inside")
    restarted.port = server.port
    restarted.start(STRIPE_API_BASE=fakepay.url)
    retried = httpx.post(f"{restarted.url}/api/checkout", json=BUY, headers={"Idempotency-Key": "crash-1"},
                         timeout=30)

    assert retried.status_code in (200, 202), retried.text
    mails = wait_for(lambda: smtp_sink.to(BUY["email"]), timeout=60, message="no confirmation email")
    assert len(mails) == 1
    assert APOLOGY in str(mails[0]["Subject"])
    assert fakepay.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
