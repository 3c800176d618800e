"""Billing test helpers: a fake processor for in-process tests, checkouts, signed webhook deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage
from django.db import connections
from django.test import override_settings

from backstop.billing import checkout
from backstop.billing.models import AttemptState, Product, PurchaseAttempt
from backstop.billing.providers import StripePayments
from conftest import FakePay, wait_for


@pytest.fixture
def processor(fakepay: FakePay) -> Iterator[FakePay]:
    """fakepay without webhooks (tests deliver events themselves) and the settings that point at it."""
    fakepay.start()
    with override_settings(STRIPE_API_BASE=fakepay.url, PAYMENT_TIMEOUT=5.0, CHECKOUT_WAIT_SECONDS=0.0,
                           RECONCILE_SETTLE_SECONDS=0.0, RECONCILE_STUCK_AFTER_SECONDS=0.0,
                           RECONCILE_OVERLAP_SECONDS=3600.0):
        yield fakepay


def stripe_client() -> StripePayments:
    """The real adapter without fault injection: what a test uses to act as "the processor's other side"."""
    return StripePayments(api_key=settings.STRIPE_API_KEY, api_base=settings.STRIPE_API_BASE, timeout=10)


def annual_plan() -> Product:
    """The plan the data migration seeds (a transactional test's flush removes it, so put it back)."""
    product, _ = Product.objects.get_or_create(
        code="annual", defaults={"name": "Backstop annual plan", "amount_cents": 24900, "currency": "usd",
                                 "period_days": 365},
    )
    return product


def buy(email: str = "ann@example.com", *, key: str = "", card: str = "pm_card_visa") -> PurchaseAttempt:
    annual_plan()
    result = checkout.start_checkout(product="annual", email=email, account=None, payment_method=card,
                                     idempotency_key=key, ip="127.0.0.1")
    return result.attempt


def settled(attempt: PurchaseAttempt, *states: str, timeout: float = 30) -> PurchaseAttempt:
    wanted = states or (AttemptState.FULFILLED,)

    def reached() -> bool:
        attempt.refresh_from_db()
        return attempt.state in wanted

    wait_for(reached, timeout=timeout, message=f"attempt stayed {attempt.state}, wanted {wanted}")
    return attempt


def mailbox(to: str) -> list[EmailMessage]:
    """Emails sent to ``to`` (pytest-django swaps in the in-memory email backend; workflows run in this process)."""
    return [message for message in mail.outbox if to in message.to]


def signed(payload: dict[str, Any], *, secret: str = "", at: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header, made the way Stripe makes them."""
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) if at is None else at
    key = (secret or settings.STRIPE_WEBHOOK_SECRET).encode()
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={digest}"


def events_for(fakepay: FakePay, payment_id: str, kind: str) -> list[dict[str, Any]]:
    rows = fakepay.query("SELECT body FROM events WHERE type = ? ORDER BY created, seq", (kind,))
    events = [json.loads(row[0]) for row in rows]
    return [event for event in events if event["data"]["object"]["id"] == payment_id]


def all_at_once(actions: list[Callable[[], Any]]) -> list[BaseException]:
    """Run the actions on threads released together; the errors they raised (each thread closes its connections)."""
    barrier = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            action()
        except BaseException as error:  # reported below, with every other thread's
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(action,)) for action in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors
