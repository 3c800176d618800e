"""The processor's list pages as plain GETs on a pooled connection, and one adapter per thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.test import override_settings

from backstop.billing import providers
from backstop.billing.providers import RequestRefused, StripePayments, payment_from_object
from backstop.billing.tests.conftest import stripe_client
from backstop.fakepay.store import insert_payment_intents_bulk
from backstop.lib.errors import ProviderError, ProviderTimeout
from conftest import free_port

PAYMENTS = 250


def _payments_at(processor: Any) -> list[int]:
    now = int(time.time())
    created = [now - 3600 + n * 10 for n in range(PAYMENTS)]  # ten seconds apart, the newest 10 s ago
    insert_payment_intents_bulk(processor.db_path, [
        {"id": f"pi_list{n:04d}", "amount": 24900, "created": created[n], "receipt_email": f"l{n}@example.com",
         "metadata": {"n": str(n)}} for n in range(PAYMENTS)
    ])
    return created


def test_it_lists_every_page_as_the_sdk_reads_it_on_one_connection(processor: Any) -> None:
    created = _payments_at(processor)
    adapter = stripe_client()

    pages = list(adapter.list_pages(created_gte=None, created_lte=None))

    listed = [payment.id for page in pages for payment in page]
    assert listed == [f"pi_list{n:04d}" for n in reversed(range(PAYMENTS))]  # newest first, each once
    assert [len(page) for page in pages] == [100, 100, 50]
    # The same payments as the SDK's own request gives, field for field.
    sdk_page = adapter._client.raw_request("get", "/v1/payment_intents", limit=100).data["data"]
    assert pages[0] == [payment_from_object(item) for item in sdk_page]
    # Three pages, one keep-alive connection.
    assert adapter._list_http.connection_from_url(processor.url).num_connections == 1

    window = [payment.id for page in adapter.list_pages(
        created_gte=providers.dt.datetime.fromtimestamp(created[200], tz=providers.dt.UTC),
        created_lte=providers.dt.datetime.fromtimestamp(created[209], tz=providers.dt.UTC)) for payment in page]
    assert window == [f"pi_list{n:04d}" for n in reversed(range(200, 210))]  # created[gte] and [lte] as Stripe's


def test_it_reports_list_failures_as_the_sdk_calls_do(processor: Any) -> None:
    with pytest.raises(RequestRefused, match="HTTP 401"):
        next(StripePayments(api_key="", api_base=processor.url, timeout=5).list_pages(created_gte=None,
                                                                                       created_lte=None))
    with pytest.raises(RequestRefused, match="HTTP 400"):  # a cursor the processor does not know
        StripePayments(api_key="sk_test_fakepay", api_base=processor.url, timeout=5)._get_page(
            "the payment list", "/v1/payment_intents", {"limit": 100, "starting_after": "pi_nobody"})
    unreachable = StripePayments(api_key="sk_test_fakepay", api_base=f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(ProviderError, match="could not reach") as caught:
        next(unreachable.list_refund_pages(created_gte=None))
    assert not isinstance(caught.value, ProviderTimeout)


def test_it_builds_one_adapter_per_thread_and_settings(processor: Any) -> None:
    first, again = providers._stripe_payments(), providers._stripe_payments()
    assert first is again
    elsewhere: list[StripePayments] = []
    thread = threading.Thread(target=lambda: elsewhere.append(providers._stripe_payments()))
    thread.start()
    thread.join()
    assert elsewhere and elsewhere[0] is not first  # sessions and pools are not shared across threads
    with override_settings(STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}"):
        assert providers._stripe_payments() is not first  # another processor: another adapter
    assert providers._stripe_payments()._list_base == processor.url
