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
from backstop.billing import messages, refunds
from backstop.billing.audit import attempt_snapshot, audit
from backstop.billing.checkout import announce_answer
from backstop.billing.claims import plan_period, release_plan_claim
from backstop.billing.models import (
    BUYER_SAW_TROUBLE,
    NOT_CHARGED,
    SETTLING_STATES,
    AttemptState,
    BuyerSaw,
    Entitlement,
    FulfilledBy,
    Order,
    OrderStatus,
    Product,
    PurchaseAttempt,
    purchase_workflow_id,
)
from backstop.billing.outcome import money
from backstop.billing.providers import ProcessorPayment
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime import dispatch

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
    # While the checkout's own workflow runs, sending the confirmation is its last step: after a crash it is the one
    # that knows the checkout did not go straight through, and the buyer's page may still be reporting what they saw
    # meanwhile. The email is written with the order all the same; the workflow settles its words, then sends it.
    send_now = source == FulfilledBy.CHECKOUT or not _checkout_workflow_running(attempt.pk)
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
                _finish_order(order, attempt, payment, source=source, actor=actor, send_now=send_now)
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


def _checkout_workflow_running(attempt_id: int) -> bool:
    try:
        return dispatch.is_live(purchase_workflow_id(attempt_id))
    except Exception:  # cannot tell: confirm now rather than risk an order without its email
        log.warning("could not read the state of the purchase workflow of attempt %s", attempt_id, exc_info=True)
        return False


def _finish_order(order: Order, attempt: PurchaseAttempt, payment: ProcessorPayment, *, source: str,
                  actor: str, send_now: bool) -> None:
    """Inside the transaction that created the order: entitlement, attempt state, email, audit. ``send_now`` False:
    the email waits for the checkout's workflow (``ensure_confirmation_queued``), or else the delivery's sweep."""
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
    message = _write_confirmation(order, entitlement)
    audit(actor=actor, action="order_fulfilled", reference=order.reference, payment_id=payment.id,
          before=attempt_snapshot(prior),
          after={"order": order.reference, "fulfilled_by": source, "entitlement_until": entitlement.ends_at.isoformat(),
                 "email": message.kind if send_now else f"{message.kind}, sent by the checkout's workflow"})
    if send_now:
        transaction.on_commit(lambda: enqueue_delivery(message))
    # Whoever made the order (often the processor's webhook, ahead of the workflow's own record): the buyer waiting on
    # this checkout has their answer.
    transaction.on_commit(lambda: announce_answer(attempt.pk))


def confirmation_email(attempt: PurchaseAttempt, order: Order) -> tuple[str, str]:
    """The confirmation's kind, and for the apology the words that name what happened.

    What the buyer was told decides (``attempt.buyer_saw``): told something went wrong, the apology names it, however
    quickly it all ended; told only that it is paid, the plain confirmation. When their story is not known to have
    ended well, the apology goes to a checkout that did not go straight through: a crash or restart mid-charge, an
    answer in doubt, a decline that turned out paid, an order finished by reconciliation or support, or one slower
    than BACKSTOP_CHECKOUT_SLOW_SECONDS.
    """
    if attempt.buyer_saw in BUYER_SAW_TROUBLE:
        return "purchase_recovered", messages.APOLOGY_FOR[attempt.buyer_saw]
    if attempt.buyer_saw == BuyerSaw.PAID:
        return "purchase_confirmation", ""
    started = attempt.charge_started_at or attempt.created_at
    finished = attempt.fulfilled_at or timezone.now()
    straight = not (attempt.interrupted or attempt.in_doubt_since is not None or attempt.decline_code
                    or order.fulfilled_by in (FulfilledBy.RECONCILIATION, FulfilledBy.SUPPORT)
                    or (finished - started).total_seconds() > settings.CHECKOUT_SLOW_SECONDS)
    return ("purchase_confirmation", "") if straight else ("purchase_recovered", messages.APOLOGY_DEFAULT)


def _confirmation_context(order: Order, entitlement: Entitlement, what_happened: str) -> dict[str, Any]:
    return {"order": order, "product": order.product, "entitlement": entitlement,
            "amount": money(order.amount_cents, order.currency), "paid_at": order.payment_created_at,
            "refunded": money(order.refunded_cents, order.currency) if order.refunded_cents else "",
            "status_url": f"{settings.BASE_URL}/checkout/{order.reference}", "what_happened": what_happened}


def _write_confirmation(order: Order, entitlement: Entitlement) -> Message:
    """The order's one confirmation email (its key is the order's), in the words what we know now calls for."""
    kind, what_happened = confirmation_email(PurchaseAttempt.objects.get(pk=order.attempt_id), order)
    return notify.create_email(account=order.account, kind=kind, key=confirmation_key(order.reference),
                               to=order.email, context=_confirmation_context(order, entitlement, what_happened))


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
    transaction.on_commit(lambda: announce_answer(attempt.pk))  # the buyer waiting on this checkout has their answer


def confirmation_key(reference: str) -> str:
    return f"purchase-confirmation:{reference}"


def enqueue_delivery(message: Message) -> None:
    try:
        notify.enqueue_delivery(message.pk, message.key)
    except Exception:  # the purchase workflow's send step and reconciliation both queue it again
        log.exception("could not queue delivery of %s; it will be queued again", message.key)


def ensure_confirmation_queued(*, attempt_id: int) -> bool:
    """The purchase workflow's last step: the confirmation in the words the buyer's story calls for now (if no
    delivery of it has started: a fulfiller other than this workflow left the sending to it), and on its way (queued
    once, by workflow id)."""
    order = Order.objects.select_related("product", "entitlement").filter(attempt_id=attempt_id).first()
    if order is None:
        return False
    message = Message.objects.filter(key=confirmation_key(order.reference)).first()
    if message is None:  # an order made before its email was written with it
        message = _write_confirmation(order, order.entitlement)
    elif message.status == DeliveryStatus.QUEUED:
        kind, what_happened = confirmation_email(PurchaseAttempt.objects.get(pk=attempt_id), order)
        notify.reword_unsent_email(message=message, kind=kind,
                                   context=_confirmation_context(order, order.entitlement, what_happened))
    if message.status != DeliveryStatus.SENT:
        enqueue_delivery(message)
    return True


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
            transaction.on_commit(lambda: announce_answer(attempt.pk))
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
