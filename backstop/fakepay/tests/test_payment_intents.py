"""Payment intents through the official SDK: create, confirm, decline, retrieve, cancel, list."""

from __future__ import annotations

import time
import uuid

import pytest
import stripe
from stripe.params import PaymentIntentListParams

from backstop.fakepay.store import insert_payment_intents_bulk
from backstop.fakepay.tests.support import API_KEY, FakePayProcess, charge_id, declined_intent_id


def test_it_creates_and_confirms_a_payment_in_one_call(client: stripe.StripeClient) -> None:
    intent = client.v1.payment_intents.create(
        params={
            "amount": 24900,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"attempt": "a1"},
            "description": "Team plan",
            "receipt_email": "billing@example.com",
        }
    )

    assert intent.object == "payment_intent"
    assert intent.id.startswith("pi_") and len(intent.id) == 27
    assert intent.status == "succeeded"
    assert intent.amount_received == 24900
    assert isinstance(intent.latest_charge, str) and intent.latest_charge.startswith("ch_")
    assert intent.metadata.to_dict() == {"attempt": "a1"}
    assert intent.livemode is False
    assert abs(intent.created - time.time()) < 60


def test_it_confirms_an_intent_in_a_second_call(client: stripe.StripeClient) -> None:
    with_method = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "payment_method": "pm_card_mastercard"}
    )
    without_method = client.v1.payment_intents.create(params={"amount": 1000, "currency": "eur"})
    assert with_method.status == "requires_confirmation"
    assert without_method.status == "requires_payment_method"

    confirmed = client.v1.payment_intents.confirm(with_method.id)
    confirmed_with_method = client.v1.payment_intents.confirm(
        without_method.id, params={"payment_method": "pm_card_visa"}
    )

    assert confirmed.status == "succeeded"
    assert confirmed_with_method.status == "succeeded"
    assert confirmed_with_method.payment_method == "pm_card_visa"


def test_it_declines_test_cards_and_leaves_the_intent_payable(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={"amount": 5000, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )

    assert declined.value.http_status == 402
    assert declined.value.code == "card_declined"
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "generic_decline"
    intent_id = declined_intent_id(declined.value)
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None and intent.last_payment_error.code == "card_declined"
    assert intent.payment_method is None and intent.latest_charge is None

    with pytest.raises(stripe.CardError) as insufficient:
        client.v1.payment_intents.confirm(
            intent_id, params={"payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"}
        )
    assert insufficient.value.error is not None
    assert insufficient.value.error.decline_code == "insufficient_funds"

    paid = client.v1.payment_intents.confirm(intent_id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded"
    assert paid.last_payment_error is None


def test_it_retrieves_an_intent_with_its_charge_expanded(client: stripe.StripeClient) -> None:
    created = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )

    plain = client.v1.payment_intents.retrieve(created.id)
    expanded = client.v1.payment_intents.retrieve(created.id, params={"expand": ["latest_charge"]})
    charge = client.v1.charges.retrieve(charge_id(created))

    assert plain.to_dict() == created.to_dict()
    assert isinstance(expanded.latest_charge, stripe.Charge)
    assert expanded.latest_charge.id == created.latest_charge
    assert charge.payment_intent == created.id
    assert charge.amount == 700 and charge.paid and not charge.refunded


def test_it_cancels_only_unpaid_intents(client: stripe.StripeClient) -> None:
    open_intent = client.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
    paid = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )

    canceled = client.v1.payment_intents.cancel(open_intent.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.payment_intents.cancel(paid.id)
    assert refused.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(paid.id)


def test_it_rejects_bad_requests_like_stripe(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_intents.create(params={"amount": 100, "currency": "usd", "colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.http_status == 400 and unknown.value.param == "colour"

    with pytest.raises(stripe.InvalidRequestError) as no_amount:
        client.v1.payment_intents.create(params={"currency": "usd"})  # type: ignore[typeddict-item]
    assert no_amount.value.code == "parameter_missing" and no_amount.value.param == "amount"

    with pytest.raises(stripe.InvalidRequestError) as bad_card:
        client.v1.payment_intents.create(
            params={"amount": 100, "currency": "usd", "payment_method": "pm_card_bogus", "confirm": True}
        )
    assert bad_card.value.param == "payment_method"


def test_it_lists_newest_first_with_created_filters_across_pages(client: stripe.StripeClient) -> None:
    batch = uuid.uuid4().hex
    started = int(time.time())
    created_ids = [
        client.v1.payment_intents.create(
            params={"amount": 100 + n, "currency": "usd", "metadata": {"batch": batch}}
        ).id
        for n in range(130)
    ]
    finished = int(time.time())
    window: PaymentIntentListParams = {"created": {"gte": started, "lte": finished}}

    first = client.v1.payment_intents.list(params={**window, "limit": 100})
    second = client.v1.payment_intents.list(
        params={**window, "limit": 100, "starting_after": first.data[-1].id}
    )
    listed = [intent for intent in [*first.data, *second.data] if intent.metadata.to_dict().get("batch") == batch]

    assert first.has_more is True and len(first.data) == 100
    assert second.has_more is False
    assert [intent.id for intent in listed] == created_ids[::-1]
    assert first.url == "/v1/payment_intents"

    everything = client.v1.payment_intents.list(params={**window, "limit": 7})
    paged = [intent.id for intent in everything.auto_paging_iter() if intent.metadata.to_dict().get("batch") == batch]
    assert paged == created_ids[::-1]

    back = client.v1.payment_intents.list(
        params={**window, "limit": 100, "ending_before": second.data[0].id}
    )
    assert [intent.id for intent in back.data] == [intent.id for intent in first.data]

    earlier = client.v1.payment_intents.list(params={"created": {"lt": started}, "limit": 100})
    assert not {intent.id for intent in earlier.data} & set(created_ids)


def test_it_pages_through_bulk_inserted_intents_in_created_order(
    fakepay: FakePayProcess, client: stripe.StripeClient
) -> None:
    base = 1_000_000_000  # 2001: no other test's intents fall in this range
    rows = [
        {"amount": 1000 + n, "created": base + n // 4, "metadata": {"n": str(n)}, "currency": "gbp"}
        for n in range(1000)
    ]

    assert insert_payment_intents_bulk(fakepay.db_path, rows) == 1000

    params: PaymentIntentListParams = {"created": {"gte": base, "lt": base + 250}, "limit": 100}
    seen: list[int] = []
    while True:
        page = client.v1.payment_intents.list(params=params)
        seen += [int(intent.metadata["n"]) for intent in page.data]
        if not page.has_more:
            break
        params["starting_after"] = page.data[-1].id
    assert seen == list(range(999, -1, -1))
    one = client.v1.payment_intents.retrieve(page.data[0].id)
    assert one.status == "succeeded" and one.currency == "gbp" and charge_id(one).startswith("ch_")


def test_it_works_with_the_sdks_global_configuration(fakepay: FakePayProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", fakepay.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    created = stripe.PaymentIntent.create(
        amount=1500, currency="usd", payment_method="pm_card_visa", confirm=True, idempotency_key=uuid.uuid4().hex
    )
    retrieved = stripe.PaymentIntent.retrieve(created.id)

    assert retrieved.status == "succeeded"
    assert stripe.PaymentIntent.list(limit=1).data[0].id == created.id
