"""Refunds: staff only, once per order however often asked, and visible on the order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.billing import charging, messages, refunds
from backstop.billing.models import AuditEntry, Entitlement, Order, PurchaseAttempt
from backstop.billing.reconcile import reconcile_payments
from backstop.billing.tests.conftest import all_at_once, annual_plan, buy, mailbox, settled, signed, stripe_client
from backstop.notify.models import Message
from backstop.support.models import Case
from conftest import wait_for


def _refund_event(processor: Any) -> dict[str, Any]:
    """The processor's latest charge.refunded event."""
    [(body,)] = processor.query("SELECT body FROM events WHERE type = 'charge.refunded' ORDER BY seq DESC LIMIT 1")
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


def _agree(payment_id: str) -> Order:
    """The processor's refunded total and the order's are the same: the books agree."""
    order = Order.objects.get(payment_id=payment_id)
    assert stripe_client().retrieve(payment_id).amount_refunded == order.refunded_cents
    return order


def _charged_but_unrecorded(email: str) -> tuple[PurchaseAttempt, str]:
    """The checkout's charge went through at the processor and its process died before writing anything down."""
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"refund-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa",
    )
    charge = charging.charge_attempt(attempt_id=attempt.pk, try_number=1)
    assert charge["payment"] is not None
    return attempt, charge["payment"].id


def test_it_refunds_the_rest_after_a_partial_refund_and_shows_both_on_the_order(
    engine_db: str, processor: Any
) -> None:
    attempt = settled(buy("dee@example.com"))
    stripe_client().refund(payment_id=attempt.payment_id, amount=10000, idempotency_key="dashboard-part")
    assert _deliver(_refund_event(processor)) == "partial refund sent to support"
    page = Client().get(f"/api/orders/{attempt.reference}").json()
    assert page["outcome"] == "paid" and page["refunded"] == "$100"
    assert f"$100 of $249 was refunded to your card on {timezone.now():%B %-d, %Y}." in page["message"]
    assert _agree(attempt.payment_id).status == "paid"

    staff = Client()
    staff.force_login(_account("staff@example.com", staff=True))
    first, again = staff.post(f"/api/orders/{attempt.reference}/refund"), staff.post(
        f"/api/orders/{attempt.reference}/refund")

    assert first.status_code == again.status_code == 200, first.content
    assert first.json()["outcome"] == "refunded" and first.json()["refunded"] == "$249"
    # The processor refunded the remainder, once: $100 from the dashboard, $149 from staff.
    assert processor.query("SELECT amount FROM refunds ORDER BY seq") == [(10000,), (14900,)]
    order = _agree(attempt.payment_id)
    assert (order.status, order.refunded_cents) == ("refunded", 24900)
    assert Entitlement.objects.get(order=order).state == "revoked"
    partial, full = AuditEntry.objects.filter(action__in=("order_partially_refunded", "order_refunded"))
    assert (partial.actor, partial.after["refunded_cents"]) == ("system:webhook", 10000)
    assert (full.actor, full.before["refunded_cents"], full.after["refunded_cents"]) == (
        "staff:staff@example.com", 10000, 24900)
    [asked] = AuditEntry.objects.filter(action="refund_requested")
    assert asked.after["amount_cents"] == 14900 and asked.after["refund_id"] == order.refund_id
    # The buyer hears of each refund, once, with what it means for their plan.
    told = Message.objects.filter(kind="order_refund", to=attempt.email).order_by("id")
    assert [m.subject for m in told] == [
        f"$100 of your payment for Backstop annual plan was refunded (order {order.reference})",
        f"Your payment for Backstop annual plan was refunded (order {order.reference})"]
    assert "stays as it was for now" in told[0].text and "In all, $100 of $249" in told[0].text
    assert "has ended with the refund" in told[1].text and "&" not in told[1].text


def test_it_never_makes_a_paid_order_of_a_payment_refunded_before_its_order(engine_db: str, processor: Any) -> None:
    attempt, payment_id = _charged_but_unrecorded("eli@example.com")
    # While the checkout was in doubt, the buyer was refunded in the processor's dashboard; we heard nothing.
    stripe_client().refund(payment_id=payment_id, amount=24900, idempotency_key="dashboard-before-order")

    reconcile_payments(actor="test")

    order = _agree(payment_id)
    assert (order.attempt_id, order.status, order.refunded_cents) == (attempt.pk, "refunded", 24900)
    assert not Entitlement.objects.filter(order=order).exists()  # no access, not even for a moment
    page = Client().get(f"/api/orders/{attempt.reference}").json()
    assert (page["outcome"], page["active_until"]) == ("refunded", None)
    assert "was refunded to your card in full" in page["message"] and "was not activated" in page["message"]
    [email] = wait_for(lambda: mailbox("eli@example.com"), message="the buyer was not told")
    assert "refunded in full" in email.subject
    assert "charged" not in email.subject and "active until" not in email.body
    assert AuditEntry.objects.get(action="order_recorded_refunded").after["refunded_cents"] == 24900
    # Nothing is left for a second run to change.
    again = reconcile_payments(actor="test", full=True)
    assert (again.refunds_applied, again.refunds_unconfirmed, again.orders_recreated) == (0, 0, 0)


def _answer_after_the_webhook(monkeypatch: pytest.MonkeyPatch, processor: Any) -> None:
    """The processor's answer to a refund reaches us after its charge.refunded event did (the race the webhook
    wins): each refund call delivers the event through our webhook before it returns."""
    real = refunds.payment_processor

    class AnswerAfterTheWebhook:
        def __init__(self) -> None:
            self.adapter = real()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.adapter, name)

        def refund(self, **kwargs: Any) -> Any:
            answer = self.adapter.refund(**kwargs)
            _deliver(_refund_event(processor))  # "duplicate" for every caller but the first to deliver it
            return answer

    monkeypatch.setattr(refunds, "payment_processor", AnswerAfterTheWebhook)


def test_it_names_the_staff_member_when_the_webhook_records_their_refund_first(
    engine_db: str, processor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt = settled(buy("gia@example.com"))
    _answer_after_the_webhook(monkeypatch, processor)
    staff = Client()
    staff.force_login(_account("staff@example.com", staff=True))

    assert staff.post(f"/api/orders/{attempt.reference}/refund").json()["outcome"] == "refunded"

    [entry] = AuditEntry.objects.filter(action="order_refunded")
    assert (entry.actor, entry.after["recorded_by"]) == ("staff:staff@example.com", "system:webhook")
    [asked] = AuditEntry.objects.filter(action="refund_requested")
    assert (asked.actor, asked.after["outcome"]) == ("staff:staff@example.com", "refunded")
    order = _agree(attempt.payment_id)
    assert order.refund_id == asked.after["refund_id"]  # the webhook knew no refund id; the answer filled it in


def test_it_keeps_the_clicking_staff_member_when_ten_refunds_and_the_webhook_race(
    engine_db: str, processor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt = settled(buy("fox@example.com"))
    _answer_after_the_webhook(monkeypatch, processor)
    staff_member = _account("staff@example.com", staff=True)

    def click() -> None:
        client = Client()
        client.force_login(staff_member)
        answer = client.post(f"/api/orders/{attempt.reference}/refund")
        assert answer.status_code == 200 and answer.json()["outcome"] == "refunded", answer.content

    assert all_at_once([click] * 10) == []

    assert processor.query("SELECT COUNT(*), SUM(amount) FROM refunds") == [(1, 24900)]
    order = _agree(attempt.payment_id)
    assert order.status == "refunded"
    [entry] = AuditEntry.objects.filter(action="order_refunded")
    assert entry.actor == "staff:staff@example.com"
    # Whoever recorded it (the webhook, or a click that looked after the refund and found nothing left) says so.
    assert entry.after.get("recorded_by") in (None, "system:webhook")
    asked = AuditEntry.objects.filter(action="refund_requested")
    assert asked.exists() and {a.actor for a in asked} == {"staff:staff@example.com"}
    # Every request that reached the processor was answered with the one refund, which the order keeps.
    assert {a.after["refund_id"] for a in asked if "refund_id" in a.after} == {order.refund_id}
