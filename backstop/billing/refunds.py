"""Refunds: the processor's refunded total of a payment is the truth, and its order mirrors it, in any order of events.

Whoever brings news of a refund (a staff refund's own answer, the ``charge.refunded`` webhook, reconciliation) hands
the processor's total to ``record_refund_from_processor``: under a lock on the order, the first to arrive moves it
(a partial refund: ``refunded_cents`` shown, access kept for a person to decide; the whole amount: refunded, access
ended) and the rest find nothing to do. A total that arrives before its order is kept (``KnownRefund``) and applied
when the order appears (``fulfilment.fulfil_payment`` reads it, then calls ``apply_known_refund`` once it committed).

Staff refund what is left of a payment (captured less refunded, as the processor says right now), with an idempotency
key naming the payment and the total it starts from: every click on one state is one refund, the remainder after a
partial refund is a refund of its own, and the processor refuses anything beyond what was captured.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.billing.audit import audit
from backstop.billing.claims import release_plan_claim
from backstop.billing.messages import NOTHING_CAPTURED, REFUND_PARTIAL_SUMMARY
from backstop.billing.models import (
    Entitlement,
    EntitlementState,
    KnownRefund,
    Order,
    OrderStatus,
    PurchaseAttempt,
    RefundRequest,
    RefundRequestOutcome,
)
from backstop.billing.outcome import money
from backstop.billing.providers import PaymentProcessor, ProcessorPayment, RequestRefused, payment_processor
from backstop.lib.errors import ProviderError
from backstop.notify import services as notify
from backstop.notify.models import Message

log = logging.getLogger(__name__)

Mirrored = Literal["refunded", "partial", "unchanged", "kept"]


class NotRefundable(Exception):
    """The processor refused the refund (a 4xx) or the payment has nothing to refund: nothing changed."""


@dataclass(frozen=True)
class PaymentRefund:
    """What a staff refund of a payment did: ``refunded_now`` when this request moved money at the processor."""

    payment_id: str
    refunded_now: bool
    amount_cents: int
    refunded_cents: int
    currency: str
    refund_id: str
    order: Order | None


def refund_order(*, reference: str, actor: str) -> Order:
    """Refund what is left of an order's payment, once: a repeat (double click, retry) finds it refunded."""
    order = Order.objects.by_reference(reference)
    if order is None:
        raise Order.DoesNotExist(reference)
    if order.status == OrderStatus.REFUNDED:
        # Our books say refunded: nothing to ask. If the processor disagrees, reconciliation raises a record and
        # the desk refunds the payment itself (refund_payment), which asks the processor whatever we say.
        return order
    refund_payment(payment_id=order.payment_id, actor=actor)
    order.refresh_from_db()
    return order


def refund_payment(*, payment_id: str, actor: str) -> PaymentRefund:
    """Refund what is left of a processor payment, with or without an order of ours; audited, once per state.

    Raises NotRefundable when the processor refuses (or there is no such payment, or it captured nothing), and
    ProviderError when it gives no clear answer (asking again is safe: the same state gives the same key).
    """
    processor = payment_processor()
    payment = _lookup(processor, payment_id)
    reference = _reference_of(payment)
    if payment.refundable <= 0:
        # Refunded already (another click, the dashboard, a webhook not yet here): mirror it, ask nothing.
        audit(actor=actor, action="refund_requested", reference=reference, payment_id=payment.id,
              before={"refunded_cents": payment.amount_refunded, "captured_cents": payment.amount_received},
              after={"outcome": "already refunded at the processor", "amount_cents": 0})
        record_refund_from_processor(payment_id=payment.id, amount_refunded=payment.amount_refunded, actor=actor)
        return _result(payment, refunded_now=False, total=payment.amount_refunded)
    key = f"backstop-refund-{payment.id}-from-{payment.amount_refunded}"
    amount = payment.refundable
    # Written (and committed) before the call: the webhook or reconciliation may record the refund's effect before
    # this request hears back, and the audit entry must still name who asked.
    request, _ = RefundRequest.objects.get_or_create(idempotency_key=key, defaults={
        "payment_id": payment.id, "reference": reference, "from_cents": payment.amount_refunded,
        "amount_cents": amount, "requested_by": actor,
    })
    asked = {"idempotency_key": key, "amount_cents": amount, "currency": payment.currency}
    before = {"refunded_cents": payment.amount_refunded, "captured_cents": payment.amount_received}
    try:
        refund = processor.refund(payment_id=payment.id, amount=amount, idempotency_key=key)
    except RequestRefused as refused:
        _answered(request, RefundRequestOutcome.REFUSED)
        audit(actor=actor, action="refund_requested", reference=reference, payment_id=payment.id, before=before,
              after=asked | {"outcome": "refused", "error": str(refused)[:300]})
        # Refused because it was refunded meanwhile (another click from another state, the dashboard)?
        now_at_processor = _lookup_quietly(processor, payment.id)
        if now_at_processor is not None and now_at_processor.refundable <= 0 < now_at_processor.amount_refunded:
            record_refund_from_processor(payment_id=payment.id, amount_refunded=now_at_processor.amount_refunded,
                                         actor=actor)
            return _result(now_at_processor, refunded_now=False, total=now_at_processor.amount_refunded)
        raise NotRefundable(str(refused)) from refused
    except ProviderError as error:
        _answered(request, RefundRequestOutcome.FAILED)
        audit(actor=actor, action="refund_requested", reference=reference, payment_id=payment.id, before=before,
              after=asked | {"outcome": "no clear answer", "error": str(error)[:300]})
        raise
    total = payment.amount_refunded + refund.amount
    _answered(request, RefundRequestOutcome.REFUNDED, refund_id=refund.id)
    audit(actor=actor, action="refund_requested", reference=reference, payment_id=payment.id, before=before,
          after=asked | {"outcome": "refunded", "refund_id": refund.id, "refunded_cents": total})
    record_refund_from_processor(payment_id=payment.id, amount_refunded=total, actor=actor, refund_id=refund.id)
    return _result(payment, refunded_now=True, total=total, refund_id=refund.id)


def record_refund_from_processor(
    *, payment_id: str, amount_refunded: int, actor: str, refund_id: str = ""
) -> Mirrored:
    """The processor says ``amount_refunded`` of the payment is refunded: mirror it on the order once.

    "kept" when there is no order yet: the total waits in KnownRefund for the order to appear.
    """
    if amount_refunded <= 0:
        return "unchanged"
    with transaction.atomic():
        _remember(payment_id, amount_refunded, source=actor)
        order = Order.objects.select_for_update().filter(payment_id=payment_id).first()
        if order is None:
            # The order may be committing right now, having read KnownRefund before this row existed: look again
            # once this is committed (fulfil_payment does the same from its side, so one of the two sees the other).
            apply_known_refund_after_commit(payment_id=payment_id, actor=actor)
            return "kept"
        return _mirror(order, amount_refunded, actor=actor, refund_id=refund_id)


def apply_known_refund(*, payment_id: str, actor: str) -> Mirrored:
    """A total kept before the order existed, applied to the order (no-op when there is nothing new)."""
    known = KnownRefund.objects.filter(payment_id=payment_id).first()
    if known is None:
        return "unchanged"
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(payment_id=payment_id).first()
        if order is None:
            return "kept"
        return _mirror(order, known.amount_refunded, actor=known.source, recorded_by=actor)


def apply_known_refund_after_commit(*, payment_id: str, actor: str) -> None:
    """``apply_known_refund`` once the current transaction commits: the second look that closes the race between a
    refund arriving and its order being made. A failure is logged (robust): reconciliation's next run applies it."""
    transaction.on_commit(lambda: apply_known_refund(payment_id=payment_id, actor=actor), robust=True)


def known_refunded_cents(payment: ProcessorPayment) -> int:
    """What we know is refunded of a payment: the processor's word on it when it came with one, and any total we
    were told earlier (a refund event ahead of the order)."""
    told = KnownRefund.objects.refunded_cents(payment.id)
    return max(payment.amount_refunded if payment.refunds_known else 0, told)


def note_partial_refund(*, order: Order, actor: str) -> None:
    """An order made with part of its payment already refunded: audited, and a person decides on its access."""
    audit(actor=actor, action="order_partially_refunded", reference=order.reference, payment_id=order.payment_id,
          before={"status": OrderStatus.PAID, "refunded_cents": 0},
          after={"status": order.status, "refunded_cents": order.refunded_cents, "order_created": True})
    _ask_about_access(order)


# --- Mirroring -------------------------------------------------------------------------------------------------

def _mirror(order: Order, total: int, *, actor: str, refund_id: str = "", recorded_by: str = "") -> Mirrored:
    """Inside a transaction holding the order's row: move it to the processor's total, if that is news."""
    if total <= order.refunded_cents:
        if refund_id and not order.refund_id:  # another path recorded our refund first: keep its id on the order
            Order.objects.filter(pk=order.pk, refund_id="").update(refund_id=refund_id)
        return "unchanged"
    now = timezone.now()
    full = total >= order.amount_cents
    fields: dict[str, object] = {"refunded_cents": total, "refunded_at": now}
    if refund_id:
        fields["refund_id"] = refund_id
    if full:
        fields["status"] = OrderStatus.REFUNDED
    # Conditional on the total it comes from, like every money change (the row lock makes it the one writer anyway).
    if not Order.objects.filter(pk=order.pk, refunded_cents=order.refunded_cents).update(**fields):
        return "unchanged"
    if full:
        Entitlement.objects.filter(order=order, state=EntitlementState.ACTIVE).update(
            state=EntitlementState.REVOKED, revoked_at=now, ends_at=now)
    # The person who asked for this refund, whichever path records it first (a webhook often beats their answer).
    who = _requested_by(order.payment_id, old=order.refunded_cents, new=total) or actor
    after: dict[str, object] = {"status": OrderStatus.REFUNDED if full else order.status, "refunded_cents": total}
    if refund_id:
        after["refund_id"] = refund_id
    if (recorded_by or actor) != who:
        after["recorded_by"] = recorded_by or actor
    audit(actor=who, action="order_refunded" if full else "order_partially_refunded", reference=order.reference,
          payment_id=order.payment_id, before={"status": order.status, "refunded_cents": order.refunded_cents},
          after=after)
    _tell_buyer(order, old=order.refunded_cents, total=total, full=full, at=now)
    order.refunded_cents, order.refunded_at = total, now
    if full:
        order.status = OrderStatus.REFUNDED
        release_plan_claim(attempt_id=order.attempt_id, actor=who, reason="refunded")
        return "refunded"
    _ask_about_access(order)
    return "partial"


def _tell_buyer(order: Order, *, old: int, total: int, full: bool, at: dt.datetime) -> None:
    """Inside the transaction that records the refund: the buyer hears of it once per refunded total, whoever made
    it (staff, the processor's dashboard, reconciliation), and what it means for their plan."""
    message = notify.create_email(
        account=order.account, kind="order_refund", key=f"order-refund:{order.reference}:{total}", to=order.email,
        context={"order": order, "product": order.product, "full": full, "refunded_at": at,
                 "amount": money(order.amount_cents, order.currency),
                 "refunded_now": money(total - old, order.currency), "refunded_total": money(total, order.currency),
                 "status_url": f"{settings.BASE_URL}/checkout/{order.reference}"},
    )
    transaction.on_commit(lambda: _send(message))


def _send(message: Message) -> None:
    try:
        notify.enqueue_delivery(message.pk, message.key)
    except Exception:  # the delivery's sweep hands on a message recorded but never handed to its workflow
        log.exception("could not queue delivery of %s; the delivery sweep will", message.key)


def _ask_about_access(order: Order) -> None:
    # We sell no partial plans, so what access a partial refund leaves is a person's decision.
    attention.raise_once(
        kind=AttentionKind.REFUND_PARTIAL, harm=Harm.DEGRADED, cause="",
        subject=f"refund:{order.payment_id}:{order.refunded_cents}", account=order.account,
        summary=REFUND_PARTIAL_SUMMARY.format(
            refunded=money(order.refunded_cents, order.currency), reference=order.reference,
            amount=money(order.amount_cents, order.currency), email=order.email),
        detail={"reference": order.reference, "payment_id": order.payment_id, "email": order.email,
                "amount_cents": order.amount_cents, "refunded_cents": order.refunded_cents,
                "currency": order.currency},
    )


def _requested_by(payment_id: str, *, old: int, new: int) -> str:
    """Who asked for the refund that took the payment from ``old`` to ``new``: a request of ours starting in that
    range (asked, or answered with a refund), else nobody here (a refund made in the processor's dashboard)."""
    return RefundRequest.objects.filter(
        payment_id=payment_id, from_cents__gte=old, from_cents__lt=new,
    ).exclude(outcome=RefundRequestOutcome.REFUSED).order_by("id").values_list("requested_by", flat=True).first() or ""


def _remember(payment_id: str, total: int, *, source: str) -> None:
    now = timezone.now()
    known, created = KnownRefund.objects.get_or_create(
        payment_id=payment_id, defaults={"amount_refunded": total, "source": source[:200], "first_seen_at": now,
                                         "updated_at": now})
    if not created:
        # Only ever up: events arrive in any order, and an older, smaller total is not news.
        KnownRefund.objects.filter(pk=known.pk, amount_refunded__lt=total).update(
            amount_refunded=total, source=source[:200], updated_at=now)


# --- Talking to the processor ----------------------------------------------------------------------------------

def _lookup(processor: PaymentProcessor, payment_id: str) -> ProcessorPayment:
    try:
        payment = processor.retrieve(payment_id)
    except RequestRefused as refused:  # no such payment
        raise NotRefundable(str(refused)) from refused
    if not payment.succeeded:
        raise NotRefundable(NOTHING_CAPTURED.format(payment_id=payment_id, status=payment.status))
    return payment


def _lookup_quietly(processor: PaymentProcessor, payment_id: str) -> ProcessorPayment | None:
    try:
        return processor.retrieve(payment_id)
    except (RequestRefused, ProviderError):
        return None


def _answered(request: RefundRequest, outcome: str, *, refund_id: str = "") -> None:
    fields: dict[str, object] = {"outcome": outcome, "answered_at": timezone.now()}
    if refund_id:
        fields["refund_id"] = refund_id
    # A request answered with a refund stays so: a later click's refusal (it was refunded meanwhile) is its own.
    RefundRequest.objects.filter(pk=request.pk).exclude(outcome=RefundRequestOutcome.REFUNDED).update(**fields)


def _reference_of(payment: ProcessorPayment) -> str:
    """The order's (or checkout's) reference, for the audit trail; empty for a payment no checkout explains."""
    order_reference = Order.objects.filter(payment_id=payment.id).values_list("reference", flat=True).first()
    if order_reference:
        return order_reference
    attempts = PurchaseAttempt.objects.filter(payment_id=payment.id)
    if payment.attempt_id is not None:
        attempts = PurchaseAttempt.objects.filter(pk=payment.attempt_id) | attempts
    return attempts.values_list("reference", flat=True).first() or ""


def _result(payment: ProcessorPayment, *, refunded_now: bool, total: int, refund_id: str = "") -> PaymentRefund:
    return PaymentRefund(payment_id=payment.id, refunded_now=refunded_now, amount_cents=payment.amount,
                         refunded_cents=total, currency=payment.currency, refund_id=refund_id,
                         order=Order.objects.filter(payment_id=payment.id).first())
