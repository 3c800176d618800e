"""Fulfilment is the one place an order comes into being.

The checkout workflow, the webhook, reconciliation
and support all call ``fulfil_payment``; the unique order per payment (and per attempt), created in the
same transaction as its entitlement and its confirmation email, makes any number of simultaneous callers
end with one order, one entitlement and one email. What the workflow could not settle is settled here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.billing import refunds
from backstop.billing.audit import attempt_snapshot, audit
from backstop.billing.claims import plan_period, release_plan_claim
from backstop.billing.models import (
    NOT_CHARGED,
    SETTLING_STATES,
    AttemptState,
    Entitlement,
    FulfilledBy,
    Order,
    OrderStatus,
    Product,
    PurchaseAttempt,
)
from backstop.billing.outcome import money
from backstop.billing.providers import ProcessorPayment
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message

log = logging.getLogger(__name__)


class UnmatchedPayment(Exception):
    """A processor payment that belongs to no purchase attempt of ours."""



@dataclass(frozen=True)
class Fulfilment:
    order: Order | None
    created: bool
    problem: str = ""



def fulfil_payment(
    *, payment: ProcessorPayment, source: str, actor: str, attempt_id: int | None = None
) -> Fulfilment:
    """Turn a succeeded processor payment into exactly one order, one entitlement and one confirmation email.

    Safe to call any number of times from any number of processes at once. Raises UnmatchedPayment when the
    payment belongs to none of our checkouts.

    The order mirrors what is already refunded of the payment (the processor's word on the payment, or a refund we
    were told of before): refunded in full, it is recorded refunded with no access and the buyer is told so; in
    part, it shows the partial refund and a person decides on its access.
    """
    if not payment.succeeded:
        raise ValueError(f"payment {payment.id} has not succeeded ({payment.status})")
    attempt = _attempt_for(payment, attempt_id)
    if payment.amount != attempt.amount_cents or payment.currency != attempt.currency:
        expected = money(attempt.amount_cents, attempt.currency)
        _raise_unmatched(payment, reason=f"its amount {money(payment.amount, payment.currency)} differs from "
                                         f"checkout {attempt.reference} ({expected})")
        return Fulfilment(order=None, created=False, problem="amount differs from the checkout")
    refunded = refunds.known_refunded_cents(payment)
    try:
        with transaction.atomic():
            order, created = Order.objects.get_or_create(payment_id=payment.id, defaults={
                "reference": attempt.reference, "attempt": attempt, "product_id": attempt.product_id,
                "email": attempt.email, "account": attempt.account, "amount_cents": payment.amount,
                "currency": payment.currency, "payment_created_at": payment.created, "fulfilled_by": source,
                **_refunded_fields(refunded, payment.amount),
            })
            if created and order.status == OrderStatus.REFUNDED:
                _finish_refunded_order(order, attempt, payment, source=source, actor=actor)
            elif created:
                _finish_order(order, attempt, payment, source=source, actor=actor)
                if order.refunded_cents:
                    refunds.note_partial_refund(order=order, actor=actor)
            if created:
                # A refund event arriving while this order commits may have looked for it too early: look again after.
                refunds.apply_known_refund_after_commit(payment_id=payment.id, actor=actor)
    except IntegrityError:
        # The attempt already has an order for another payment: this buyer was charged twice.
        other = Order.objects.filter(attempt_id=attempt.pk).first()
        if other is None or other.payment_id == payment.id:
            raise
        _raise_unmatched(payment, reason=f"checkout {attempt.reference} was already paid by {other.payment_id}: "
                                         "a second charge for one order, refund it")
        return Fulfilment(order=other, created=False, problem="second charge for one checkout")
    return Fulfilment(order=order, created=created)


def _refunded_fields(refunded: int, amount: int) -> dict[str, Any]:
    if refunded <= 0:
        return {}
    fields: dict[str, Any] = {"refunded_cents": refunded, "refunded_at": timezone.now()}
    if refunded >= amount:
        fields["status"] = OrderStatus.REFUNDED
    return fields


def _attempt_for(payment: ProcessorPayment, attempt_id: int | None) -> PurchaseAttempt:
    attempt_id = attempt_id or payment.attempt_id
    attempt = None
    if attempt_id is not None:
        attempt = PurchaseAttempt.objects.select_related("product").filter(pk=attempt_id).first()
    if attempt is None:
        attempt = PurchaseAttempt.objects.select_related("product").filter(payment_id=payment.id).first()
    if attempt is None:
        raise UnmatchedPayment(payment.id)
    return attempt


def _finish_order(order: Order, attempt: PurchaseAttempt, payment: ProcessorPayment, *, source: str,
                  actor: str) -> None:
    """Inside the transaction that created the order: entitlement, attempt state, email, audit."""
    now = timezone.now()
    product: Product = attempt.product
    starts_at, ends_at = plan_period(attempt=attempt, now=now)  # an extension starts where its plan ends
    entitlement = Entitlement.objects.create(
        order=order, product=product, email=order.email, account=order.account, starts_at=starts_at, ends_at=ends_at,
    )
    prior = PurchaseAttempt.objects.select_for_update().get(pk=attempt.pk)
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        state=AttemptState.FULFILLED, payment_id=payment.id, fulfilled_at=now, settled_at=now, updated_at=now,
        charged_at=prior.charged_at or now,
    )
    started = prior.charge_started_at or prior.created_at
    recovered = (prior.interrupted or prior.state in (AttemptState.IN_DOUBT, AttemptState.DECLINED)
                 or source in (FulfilledBy.RECONCILIATION, FulfilledBy.SUPPORT)
                 or (now - started).total_seconds() > settings.CHECKOUT_SLOW_SECONDS)
    message = notify.create_email(
        account=order.account, kind="purchase_recovered" if recovered else "purchase_confirmation",
        key=confirmation_key(order.reference), to=order.email,
        context={"order": order, "product": product, "entitlement": entitlement,
                 "amount": money(order.amount_cents, order.currency), "paid_at": payment.created,
                 "refunded": money(order.refunded_cents, order.currency) if order.refunded_cents else "",
                 "status_url": f"{settings.BASE_URL}/checkout/{order.reference}"},
    )
    audit(actor=actor, action="order_fulfilled", reference=order.reference, payment_id=payment.id,
          before=attempt_snapshot(prior),
          after={"order": order.reference, "fulfilled_by": source, "entitlement_until": entitlement.ends_at.isoformat(),
                 "email": message.kind})
    transaction.on_commit(lambda: enqueue_delivery(message))


def _finish_refunded_order(order: Order, attempt: PurchaseAttempt, payment: ProcessorPayment, *, source: str,
                           actor: str) -> None:
    """An order whose payment was refunded in full before it existed: recorded refunded, no access, and an email that
    says what happened instead of "you were charged once" (see decisions: "A refund before the order")."""
    now = timezone.now()
    prior = PurchaseAttempt.objects.select_for_update().get(pk=attempt.pk)
    # The checkout is settled: nothing more to charge or fulfil for it.
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(
        state=AttemptState.FULFILLED, payment_id=payment.id, fulfilled_at=now, settled_at=now, updated_at=now,
        charged_at=prior.charged_at or now,
    )
    product: Product = attempt.product
    message = notify.create_email(
        account=order.account, kind="purchase_refunded", key=confirmation_key(order.reference), to=order.email,
        context={"order": order, "product": product, "amount": money(order.amount_cents, order.currency),
                 "refunded": money(order.refunded_cents, order.currency), "paid_at": payment.created,
                 "status_url": f"{settings.BASE_URL}/checkout/{order.reference}",
                 "checkout_url": f"{settings.BASE_URL}/checkout"},
    )
    audit(actor=actor, action="order_recorded_refunded", reference=order.reference, payment_id=payment.id,
          before=attempt_snapshot(prior),
          after={"order": order.reference, "fulfilled_by": source, "status": order.status,
                 "refunded_cents": order.refunded_cents, "entitlement_until": None, "email": message.kind})
    # Refunded before it began: the plan it claimed is free for a new purchase.
    release_plan_claim(attempt_id=attempt.pk, actor=actor, reason="refunded")
    transaction.on_commit(lambda: enqueue_delivery(message))


def confirmation_key(reference: str) -> str:
    return f"purchase-confirmation:{reference}"


def enqueue_delivery(message: Message) -> None:
    try:
        notify.enqueue_delivery(message.pk, message.key)
    except Exception:  # the purchase workflow's send step and reconciliation both queue it again
        log.exception("could not queue delivery of %s; it will be queued again", message.key)


def ensure_confirmation_queued(*, attempt_id: int) -> bool:
    """The purchase workflow's last step: the confirmation is on its way (queued once, by workflow id)."""
    order = Order.objects.filter(attempt_id=attempt_id).first()
    if order is None:
        return False
    message = Message.objects.filter(key=confirmation_key(order.reference)).first()
    if message is not None and message.status != DeliveryStatus.SENT:
        enqueue_delivery(message)
    return message is not None


def _raise_unmatched(payment: ProcessorPayment, *, reason: str) -> None:
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject=f"payment:{payment.id}",
        summary=f"Payment {payment.id} of {money(payment.amount, payment.currency)} from "
                f"{payment.email or 'an unknown buyer'} on {payment.created:%Y-%m-%d %H:%M} UTC: {reason}.",
        detail=payment_detail(payment) | {"reason": reason},
    )


def payment_detail(payment: ProcessorPayment) -> dict[str, Any]:
    return {"payment_id": payment.id, "amount_cents": payment.amount, "currency": payment.currency,
            "amount": money(payment.amount, payment.currency), "email": payment.email,
            "created_at": payment.created.isoformat(), "status": payment.status, "metadata": payment.metadata}


def report_unmatched_payment(*, payment: ProcessorPayment) -> None:
    """A succeeded payment no checkout of ours explains: support gets every detail to sort it out."""
    _raise_unmatched(payment, reason="no checkout matches it (no attempt id in its metadata and no attempt "
                                     "recorded this payment)")


# --- Settling what the workflow could not ------------------------------------------------------------------

def settle_declined_payment(*, payment: ProcessorPayment, actor: str) -> bool:
    """A payment the processor reports as failed: the attempt waiting on it is declined (nothing charged)."""
    try:
        attempt = _attempt_for(payment, None)
    except UnmatchedPayment:
        return False
    with transaction.atomic():
        if PurchaseAttempt.objects.move(attempt.pk, from_states=(*SETTLING_STATES, AttemptState.IN_DOUBT),
                                        to=AttemptState.DECLINED, settled_at=timezone.now(), payment_id=payment.id,
                                        decline_code=payment.failure_code or payment.status):
            audit(actor=actor, action="charge_declined", reference=attempt.reference, payment_id=payment.id,
                  before=attempt_snapshot(attempt), after={"state": AttemptState.DECLINED, "status": payment.status})
            release_plan_claim(attempt_id=attempt.pk, actor=actor, reason="declined")
            return True
    return False


def settle_not_charged(*, attempt_id: int, actor: str) -> bool:
    """Reconciliation found no charge for an in-doubt checkout: tell the buyer they were not charged."""
    attempt = PurchaseAttempt.objects.select_related("product").get(pk=attempt_id)
    with transaction.atomic():
        if not PurchaseAttempt.objects.move(attempt_id, from_states=(AttemptState.IN_DOUBT,),
                                            to=AttemptState.DECLINED, decline_code=NOT_CHARGED,
                                            settled_at=timezone.now()):
            return False
        audit(actor=actor, action="not_charged", reference=attempt.reference, before=attempt_snapshot(attempt),
              after={"state": AttemptState.DECLINED, "decline_code": NOT_CHARGED})
        release_plan_claim(attempt_id=attempt_id, actor=actor, reason="not charged")
        message = notify.create_email(
            account=attempt.account, kind="purchase_not_charged", key=f"purchase-not-charged:{attempt.reference}",
            to=attempt.email, context={"attempt": attempt, "product": attempt.product,
                                       "amount": money(attempt.amount_cents, attempt.currency),
                                       "checkout_url": f"{settings.BASE_URL}/checkout"},
        )
        transaction.on_commit(lambda: enqueue_delivery(message))
    return True
