"""Refunds against a payment's charge, and the event log every state change writes."""

from __future__ import annotations

import time

import pytest
import stripe

from backstop.fakepay.tests.support import charge_id, declined_intent_id


def _paid_intent(client: stripe.StripeClient, amount: int = 2500) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={"amount": amount, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )


def test_it_refunds_in_full_once(client: stripe.StripeClient) -> None:
    intent = _paid_intent(client)

    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "metadata": {"ticket": "T-1"}})

    assert refund.id.startswith("re_") and refund.object == "refund"
    assert refund.amount == 2500 and refund.status == "succeeded"
    assert refund.charge == intent.latest_charge and refund.payment_intent == intent.id
    assert client.v1.refunds.retrieve(refund.id).to_dict() == refund.to_dict()
    assert client.v1.charges.retrieve(charge_id(intent)).refunded is True

    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"payment_intent": intent.id})
    assert again.value.http_status == 400 and again.value.code == "charge_already_refunded"


def test_it_refunds_in_parts_up_to_the_amount_paid(client: stripe.StripeClient) -> None:
    intent = _paid_intent(client, amount=1000)

    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 400})
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 700})
    rest = client.v1.refunds.create(params={"charge": charge_id(intent)})

    assert too_much.value.param == "amount"
    assert rest.amount == 600
    charge = client.v1.charges.retrieve(charge_id(intent))
    assert charge.amount_refunded == 1000 and charge.refunded is True


def test_it_lists_refunds_newest_first_by_their_own_creation_time(client: stripe.StripeClient) -> None:
    first, second = _paid_intent(client, amount=1000), _paid_intent(client, amount=3000)
    before = int(time.time())
    older = client.v1.refunds.create(params={"payment_intent": second.id, "amount": 1000})
    newer = client.v1.refunds.create(params={"payment_intent": first.id})
    also = client.v1.refunds.create(params={"payment_intent": second.id})

    pages, after = [], None
    while True:  # two at a time: the cursor carries on where the last page ended
        page = client.v1.refunds.list(params={"created": {"gte": before}, "limit": 2,
                                              **({"starting_after": after} if after else {})})
        pages.append(page)
        if not page.has_more:
            break
        after = page.data[-1].id
    listed = [r for page in pages for r in page.data if r.payment_intent in (first.id, second.id)]

    assert len(pages) >= 2 and all(len(page.data) <= 2 for page in pages)
    assert [r.id for r in listed] == [also.id, newer.id, older.id]
    assert (listed[-1].payment_intent, listed[-1].amount, listed[-1].status) == (second.id, 1000, "succeeded")
    assert listed[0].to_dict() == client.v1.refunds.retrieve(also.id).to_dict()


def test_it_refuses_to_refund_an_unpaid_intent(client: stripe.StripeClient) -> None:
    unpaid = client.v1.payment_intents.create(params={"amount": 800, "currency": "usd"})

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create(params={"payment_intent": unpaid.id})
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.refunds.create(params={"payment_intent": "pi_missing"})

    assert refused.value.http_status == 400
    assert missing.value.code == "resource_missing"


def test_it_records_an_event_with_a_snapshot_for_each_state_change(client: stripe.StripeClient) -> None:
    since = int(time.time())
    intent = _paid_intent(client, amount=1200)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(
            params={"amount": 50, "currency": "usd", "payment_method": "pm_card_chargeDeclined", "confirm": True}
        )
    client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 200})
    declined_id = declined_intent_id(declined.value)

    events = list(client.v1.events.list(params={"created": {"gte": since}, "limit": 3}).auto_paging_iter())
    about = {(event.type, event.data.object["id"]) for event in events}

    assert ("payment_intent.created", intent.id) in about
    assert ("payment_intent.succeeded", intent.id) in about
    assert ("payment_intent.payment_failed", declined_id) in about
    assert ("charge.refunded", intent.latest_charge) in about
    assert [event.created for event in events] == sorted((event.created for event in events), reverse=True)

    succeeded = client.v1.events.list(params={"type": "payment_intent.succeeded", "created": {"gte": since}})
    assert {event.type for event in succeeded.data} == {"payment_intent.succeeded"}
    snapshot = succeeded.data[0].data.object
    assert snapshot["status"] == "succeeded" and snapshot["object"] == "payment_intent"

    wildcard = client.v1.events.list(params={"type": "charge.*", "created": {"gte": since}})
    assert {event.type for event in wildcard.data} == {"charge.refunded"}
    refunded = wildcard.data[0]
    assert refunded.data.object["amount_refunded"] == 200
    assert client.v1.events.retrieve(refunded.id).to_dict() == refunded.to_dict()
