"""Refunds: by staff through the processor, or made at the processor and reflected here, once each."""

from __future__ import annotations

import logging
from typing import Literal

from django.db import transaction
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.billing.audit import audit
from backstop.billing.claims import release_plan_claim
from backstop.billing.messages import (
    REFUND_PARTIAL_SUMMARY,
)
from backstop.billing.models import (
    Entitlement,
    EntitlementState,
    Order,
    OrderStatus,
)
from backstop.billing.outcome import money
from backstop.billing.providers import RequestRefused, payment_processor

log = logging.getLogger(__name__)


class NotRefundable(Exception):
    """The processor refused the refund (a 4xx): nothing changed."""



def refund_order(*, reference: str, actor: str) -> Order:
    """Refund an order in full, once: a repeat (double click, retry) finds it refunded and changes nothing."""
    order = Order.objects.by_reference(reference)
    if order is None:
        raise Order.DoesNotExist(reference)
    if order.status == OrderStatus.REFUNDED:
        return order
    try:
        refund = payment_processor().refund(payment_id=order.payment_id, amount=order.amount_cents,
                                            idempotency_key=f"backstop-refund-{order.pk}")
    except RequestRefused as refused:  # e.g. refunded already in the processor's dashboard
        raise NotRefundable(str(refused)) from refused
    now = timezone.now()
    with transaction.atomic():
        won = Order.objects.filter(pk=order.pk, status=OrderStatus.PAID).update(
            status=OrderStatus.REFUNDED, refunded_cents=refund.amount, refund_id=refund.id, refunded_at=now
        )
        if won:
            Entitlement.objects.filter(order=order).update(state=EntitlementState.REVOKED, revoked_at=now, ends_at=now)
            audit(actor=actor, action="order_refunded", reference=order.reference, payment_id=order.payment_id,
                  before={"status": OrderStatus.PAID, "refunded_cents": 0},
                  after={"status": OrderStatus.REFUNDED, "refunded_cents": refund.amount, "refund_id": refund.id})
            release_plan_claim(attempt_id=order.attempt_id, actor=actor, reason="refunded")
    order.refresh_from_db()
    return order


def record_refund_from_processor(
    *, payment_id: str, amount_refunded: int, actor: str
) -> Literal["refunded", "partial", "unchanged"]:
    """A refund made at the processor (dashboard, webhook): reflect it on the order once."""
    order = Order.objects.select_related("account").filter(payment_id=payment_id).first()
    if order is None or amount_refunded <= 0:
        return "unchanged"
    if amount_refunded < order.amount_cents:
        # We sell no partial plans, so what access a partial refund leaves is a person's decision.
        attention.raise_once(
            kind=AttentionKind.REFUND_PARTIAL, harm=Harm.DEGRADED, cause="",
            subject=f"refund:{payment_id}:{amount_refunded}", account=order.account,
            summary=REFUND_PARTIAL_SUMMARY.format(
                refunded=money(amount_refunded, order.currency), reference=order.reference,
                amount=money(order.amount_cents, order.currency), email=order.email),
            detail={"reference": order.reference, "payment_id": payment_id, "email": order.email,
                    "amount_cents": order.amount_cents, "refunded_cents": amount_refunded, "currency": order.currency},
        )
        return "partial"
    now = timezone.now()
    with transaction.atomic():
        won = Order.objects.filter(pk=order.pk, status=OrderStatus.PAID).update(
            status=OrderStatus.REFUNDED, refunded_cents=amount_refunded, refunded_at=now
        )
        if won:
            Entitlement.objects.filter(order=order).update(state=EntitlementState.REVOKED, revoked_at=now, ends_at=now)
            audit(actor=actor, action="order_refunded", reference=order.reference, payment_id=payment_id,
                  before={"status": OrderStatus.PAID}, after={"status": OrderStatus.REFUNDED,
                                                               "refunded_cents": amount_refunded})
            release_plan_claim(attempt_id=order.attempt_id, actor=actor, reason="refunded")
    return "refunded" if won else "unchanged"
