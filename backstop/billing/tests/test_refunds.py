"""Refunds: staff only, once per order however often asked, and visible on the order."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.billing import messages
from backstop.billing.models import AuditEntry, Entitlement, Order
from backstop.billing.tests.conftest import buy, settled, signed, stripe_client
from backstop.support.models import Case


def _refund_event(processor: Any) -> dict[str, Any]:
    [(body,)] = processor.query("SELECT body FROM events WHERE type = 'charge.refunded'")
    return dict(json.loads(body))


def _deliver(event: dict[str, Any]) -> str:
    body, signature = signed(event)
    answer = Client().post("/api/webhooks/payments", body, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=signature)
    assert answer.status_code == 200, answer.content
    return str(answer.json()["outcome"])


def _account(email: str, *, staff: bool) -> Account:
    return Account.objects.create(email=email, email_key=email, name="Sam", company="Backstop", is_staff=staff,
                                  state="active", activated_at=timezone.now())


def test_it_refunds_an_order_once_for_staff_only(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("ann@example.com"))
    url = f"/api/orders/{attempt.reference}/refund"
    anonymous, buyer, staff = Client(), Client(), Client()
    buyer.force_login(_account("ann@example.com", staff=False))
    staff.force_login(_account("staff@example.com", staff=True))

    assert anonymous.post(url).status_code == 401
    assert buyer.post(url).status_code == 403
    first, second = staff.post(url), staff.post(url)

    assert first.status_code == second.status_code == 200, first.content
    assert first.json()["outcome"] == second.json()["outcome"] == messages.REFUNDED
    assert "$249" in first.json()["message"]
    assert processor.query("SELECT COUNT(*), SUM(amount) FROM refunds") == [(1, 24900)]
    order = Order.objects.get(attempt=attempt)
    assert (order.status, order.refunded_cents) == ("refunded", 24900)
    assert order.refund_id.startswith("re_")
    assert Entitlement.objects.get(order=order).state == "revoked"
    [entry] = AuditEntry.objects.filter(action="order_refunded")
    assert entry.actor == "staff:staff@example.com"
    assert (entry.before["status"], entry.after["status"]) == ("paid", "refunded")
    # The processor's own "charge.refunded" event for it changes nothing more.
    assert _deliver(_refund_event(processor)) == "nothing to change"


def test_it_reflects_a_refund_made_at_the_processor(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("bob@example.com"))
    stripe_client().refund(payment_id=attempt.payment_id, amount=24900, idempotency_key="dashboard-refund")

    assert _deliver(_refund_event(processor)) == "order marked refunded"
    order = Order.objects.get(attempt=attempt)
    assert order.status == "refunded"
    assert Entitlement.objects.get(order=order).state == "revoked"


def test_it_hands_a_partial_refund_made_at_the_processor_to_support(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("cy@example.com"))
    stripe_client().refund(payment_id=attempt.payment_id, amount=5000, idempotency_key="dashboard-partial")

    assert _deliver(_refund_event(processor)) == "partial refund sent to support"
    assert _deliver(_refund_event(processor)) == "duplicate: already handled"

    order = Order.objects.get(attempt=attempt)
    # The order mirrors the processor's refunded total; its access stays for a person to decide.
    assert (order.status, order.refunded_cents) == ("paid", 5000)
    assert Entitlement.objects.get(order=order).state == "active"
    [record] = AttentionRecord.objects.filter(kind=AttentionKind.REFUND_PARTIAL)
    assert record.detail["refunded_cents"] == 5000 and record.detail["email"] == "cy@example.com"
    assert "$50" in record.summary and attempt.reference in record.summary
    [case] = Case.objects.filter(customer_key="cy@example.com", state="open")
    assert attempt.reference in case.summary
