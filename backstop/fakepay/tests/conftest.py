"""Fixtures for fakepay tests: one server per test module, a webhook receiver, SDK clients.

Everything listens on 127.0.0.1. No test here touches the Django database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from backstop.fakepay.tests.support import API_KEY, FakePayProcess, WebhookReceiver


@pytest.fixture(scope="module")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def fakepay(tmp_path_factory: pytest.TempPathFactory, webhook_receiver: WebhookReceiver) -> Iterator[FakePayProcess]:
    server = FakePayProcess(
        db_path=tmp_path_factory.mktemp("fakepay") / "fakepay.sqlite3", webhook_urls=[webhook_receiver.url]
    ).start()
    yield server
    server.stop()


@pytest.fixture
def client(fakepay: FakePayProcess) -> stripe.StripeClient:
    """The official SDK pointed at fakepay, with its automatic retries off so each call is one request."""
    return stripe.StripeClient(API_KEY, base_addresses={"api": fakepay.url}, max_network_retries=0)
