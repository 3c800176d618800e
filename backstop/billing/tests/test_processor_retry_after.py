"""Stripe's 429 (or 503) with Retry-After reaches the purchase workflow as a wait, not as a plain failure."""

from __future__ import annotations

import pytest

from backstop.billing.providers import StripePayments
from backstop.lib.errors import ProviderError, ProviderThrottled
from conftest import StubApi

RATE_LIMITED = (b'{"error": {"type": "invalid_request_error", "code": "rate_limit", '
                b'"message": "Too many requests hit the API too quickly."}}')


def charge(stub: StubApi) -> None:
    StripePayments(api_key="sk_test_x", api_base=stub.url, timeout=5).charge(
        amount=1200, currency="usd", payment_method="pm_card_visa", email="ann@example.com", description="Annual",
        metadata={}, idempotency_key="attempt-1")


def test_it_raises_the_processors_retry_after_as_a_throttle(stub_api: StubApi) -> None:
    stub_api.status, stub_api.body, stub_api.headers = 429, RATE_LIMITED, {"Retry-After": "7"}
    with pytest.raises(ProviderThrottled) as raised:
        charge(stub_api)
    assert raised.value.retry_after == 7.0
    assert str(raised.value) == "the payment processor asked us to wait before the charge (HTTP 429)"
    assert stub_api.requests[0]["headers"]["Idempotency-Key"] == "attempt-1"  # the next try repeats the same key


def test_it_keeps_a_429_without_retry_after_a_plain_failure(stub_api: StubApi) -> None:
    stub_api.status, stub_api.body = 429, RATE_LIMITED
    with pytest.raises(ProviderError) as raised:
        charge(stub_api)
    assert not isinstance(raised.value, ProviderThrottled)
