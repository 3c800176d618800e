"""Idempotency keys with Stripe's semantics: replay, conflict, declines, concurrency."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import stripe
from stripe.params import PaymentIntentCreateParams

from backstop.fakepay.tests.support import API_KEY, FakePayProcess, declined_intent_id


def _intents_tagged(client: stripe.StripeClient, since: int, tag: str) -> list[str]:
    listed = client.v1.payment_intents.list(params={"created": {"gte": since}, "limit": 100})
    return [intent.id for intent in listed.auto_paging_iter() if intent.metadata.to_dict().get("tag") == tag]


def _payment(tag: str, amount: int = 24900) -> PaymentIntentCreateParams:
    return {
        "amount": amount,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "metadata": {"tag": tag},
    }


def test_it_replays_the_first_response_for_a_repeated_key(fakepay: FakePayProcess, client: stripe.StripeClient) -> None:
    tag, since = uuid.uuid4().hex, int(time.time())
    key = f"attempt-{tag}"

    first = client.v1.payment_intents.create(params=_payment(tag), options={"idempotency_key": key})
    again = client.v1.payment_intents.create(params=_payment(tag), options={"idempotency_key": key})

    assert again.id == first.id
    assert again.to_dict() == first.to_dict()
    assert _intents_tagged(client, since, tag) == [first.id]

    raw = httpx.post(
        f"{fakepay.url}/v1/payment_intents",
        data={"amount": "24900", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true",
              "metadata[tag]": tag},
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key},
        trust_env=False,
    )
    assert raw.status_code == 200
    assert raw.headers["Idempotent-Replayed"] == "true"
    assert raw.json()["id"] == first.id


def test_it_refuses_a_key_reused_with_different_parameters(client: stripe.StripeClient) -> None:
    key = f"attempt-{uuid.uuid4().hex}"
    client.v1.payment_intents.create(params=_payment("a", amount=1000), options={"idempotency_key": key})

    with pytest.raises(stripe.IdempotencyError) as conflict:
        client.v1.payment_intents.create(params=_payment("a", amount=2000), options={"idempotency_key": key})

    assert conflict.value.http_status == 400
    assert key in str(conflict.value)


def test_it_replays_a_decline_for_a_repeated_key(client: stripe.StripeClient) -> None:
    key = f"attempt-{uuid.uuid4().hex}"
    params: PaymentIntentCreateParams = {
        "amount": 3000,
        "currency": "usd",
        "payment_method": "pm_card_visa_chargeDeclined",
        "confirm": True,
    }

    declined_ids = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as declined:
            client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
        declined_ids.append(declined_intent_id(declined.value))

    assert declined_ids[0] == declined_ids[1]


def test_it_keeps_no_result_for_a_request_rejected_by_validation(client: stripe.StripeClient) -> None:
    key = f"attempt-{uuid.uuid4().hex}"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"amount": -5, "currency": "usd"}, options={"idempotency_key": key})

    corrected = client.v1.payment_intents.create(
        params={"amount": 500, "currency": "usd"}, options={"idempotency_key": key}
    )
    assert corrected.amount == 500


def test_it_creates_one_intent_for_concurrent_requests_with_one_key(client: stripe.StripeClient) -> None:
    tag, since = uuid.uuid4().hex, int(time.time())
    key = f"attempt-{tag}"
    start = threading.Barrier(8)
    ids: list[str] = []
    errors: list[BaseException] = []

    def pay() -> None:
        start.wait()
        try:
            ids.append(client.v1.payment_intents.create(params=_payment(tag), options={"idempotency_key": key}).id)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    assert _intents_tagged(client, since, tag) == ids[:1]
