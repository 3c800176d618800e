"""The edges around the API: API keys, injected outages, health and reset."""

from __future__ import annotations

import httpx
import pytest
import stripe

from backstop.fakepay.tests.support import API_KEY, FakePayProcess


def test_it_reports_health(fakepay: FakePayProcess) -> None:
    response = httpx.get(f"{fakepay.url}/_fakepay/health", trust_env=False)

    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_it_accepts_only_test_secret_keys(fakepay: FakePayProcess) -> None:
    live = stripe.StripeClient("sk_live_0123456789abcdef", base_addresses={"api": fakepay.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        live.v1.payment_intents.list()

    anonymous = httpx.get(f"{fakepay.url}/v1/payment_intents", trust_env=False)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "invalid_request_error"

    basic = httpx.get(f"{fakepay.url}/v1/payment_intents", auth=(API_KEY, ""), trust_env=False)
    assert basic.status_code == 200


def test_it_fails_every_call_while_the_error_fault_is_on(
    fakepay: FakePayProcess, client: stripe.StripeClient
) -> None:
    assert fakepay.control("faults", {"mode": "error"}).status_code == 200
    try:
        with pytest.raises(stripe.APIError) as outage:
            client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
        assert outage.value.http_status == 500
    finally:
        fakepay.control("faults", {"mode": "ok"})

    assert client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"}).amount == 100
    assert fakepay.control("faults", {"mode": "sometimes"}).status_code == 400


def test_it_hangs_while_the_timeout_fault_is_on(fakepay: FakePayProcess) -> None:
    impatient = stripe.StripeClient(
        API_KEY,
        base_addresses={"api": fakepay.url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=1),
    )
    assert fakepay.control("faults", {"mode": "timeout"}).status_code == 200
    try:
        with pytest.raises(stripe.APIConnectionError):
            impatient.v1.payment_intents.list()
    finally:
        fakepay.control("faults", {"mode": "ok"})

    assert impatient.v1.payment_intents.list(params={"limit": 1}).data is not None


def test_it_refuses_to_reset_unless_started_with_allow_reset(fakepay: FakePayProcess) -> None:
    response = fakepay.control("reset")

    assert response.status_code == 403
