"""What the processor says about our payments, written down whenever we learn it, and looked up when asked.

The desk shows a payment's status at the processor without calling it on a page view: the charge's answer, each
webhook, reconciliation and every lookup record what they learnt (``ProcessorStatus``), with the time the processor
said it. An answer older than the one recorded (a webhook delivered late, a slow lookup) changes nothing but the
refunded amount, which only grows. ``check_with_processor`` asks now, for the desk's "Check with the processor now".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from backstop.billing.models import NO_PAYMENT, LearntFrom, ProcessorStatus, PurchaseAttempt
from backstop.billing.providers import PaymentProcessor, ProcessorPayment, RequestRefused, payment_processor

# How far around a checkout's charge time its payment is looked for when we never learnt its id.
LOOKUP_MARGIN = dt.timedelta(minutes=2)
# A payment's statuses that nothing follows. Events carry whole seconds: of two answers from one second, a final one
# is not replaced by one that is not (a delivery of "processing" arriving after "succeeded" of the same second).
FINAL_STATUSES = ("succeeded", "canceled")


def record_payment(
    *, payment: ProcessorPayment, learnt_from: str, as_of: dt.datetime | None = None, attempt_id: int | None = None
) -> None:
    """What the processor said about ``payment`` (as of ``as_of``, default now), for the checkout it belongs to."""
    _record(payment_id=payment.id, attempt_id=_our_attempt(payment, attempt_id), status=payment.status,
            amount=payment.amount, currency=payment.currency, refunded=payment.amount_refunded,
            as_of=as_of or timezone.now(), learnt_from=learnt_from)


def record_refund(*, payment_id: str, amount: int, currency: str, amount_refunded: int, as_of: dt.datetime,
                  learnt_from: str) -> None:
    """A refund the processor told us of (its charge's event): the payment succeeded, and this much went back."""
    if not payment_id:
        return
    _record(payment_id=payment_id, attempt_id=_attempt_paid_by(payment_id), status="succeeded", amount=amount,
            currency=currency, refunded=amount_refunded, as_of=as_of, learnt_from=learnt_from, keep_status=True)


def record_no_payment(*, attempt_id: int | None = None, payment_id: str = "", learnt_from: str,
                      as_of: dt.datetime | None = None) -> None:
    """The processor has no payment for this checkout (or no payment of this id) as of now."""
    _record(payment_id=payment_id, attempt_id=attempt_id, status=NO_PAYMENT, amount=0, currency="", refunded=0,
            as_of=as_of or timezone.now(), learnt_from=learnt_from)


def _our_attempt(payment: ProcessorPayment, attempt_id: int | None) -> int | None:
    """The checkout the payment belongs to: the one the caller holds, else the one its metadata or its id names when
    that is one of ours (metadata written by another database names none)."""
    if attempt_id is not None:
        return attempt_id
    candidates = [payment.attempt_id] if payment.attempt_id is not None else []
    found = PurchaseAttempt.objects.filter(Q(pk__in=candidates) | Q(payment_id=payment.id))
    return found.values_list("pk", flat=True).order_by("pk").first()


def _attempt_paid_by(payment_id: str) -> int | None:
    return PurchaseAttempt.objects.filter(payment_id=payment_id).values_list("pk", flat=True).first()


def _record(*, payment_id: str, attempt_id: int | None, status: str, amount: int, currency: str, refunded: int,
            as_of: dt.datetime, learnt_from: str, keep_status: bool = False) -> None:
    if not payment_id and attempt_id is None:
        return
    key = Q(payment_id=payment_id) if payment_id else Q(payment_id="", attempt_id=attempt_id)
    now = timezone.now()
    newer = {"as_of": as_of, "learnt_from": learnt_from, "recorded_at": now, "amount_cents": amount,
             "currency": currency, **({} if keep_status else {"status": status})}
    if attempt_id is not None:
        newer["attempt_id"] = attempt_id
    older = Q(as_of__lt=as_of) | Q(as_of=as_of)
    if not keep_status and status not in FINAL_STATUSES:
        older = Q(as_of__lt=as_of) | (Q(as_of=as_of) & ~Q(status__in=FINAL_STATUSES))
    for _ in range(3):
        with transaction.atomic():
            rows = ProcessorStatus.objects.filter(key)
            if rows.filter(older).update(**newer, amount_refunded_cents=Greatest(
                    F("amount_refunded_cents"), refunded)):
                return
            if rows.exists():  # a newer answer is recorded: only a larger refund is news
                rows.update(amount_refunded_cents=Greatest(F("amount_refunded_cents"), refunded))
                return
        try:
            with transaction.atomic():
                ProcessorStatus.objects.create(payment_id=payment_id, attempt_id=attempt_id, status=status,
                                               amount_cents=amount, currency=currency,
                                               amount_refunded_cents=refunded, as_of=as_of,
                                               learnt_from=learnt_from, recorded_at=now)
            return
        except IntegrityError:
            continue  # recorded by another process at the same moment: compare with theirs
    raise RuntimeError(f"could not record the processor's status of {payment_id or attempt_id}")


# --- Asking the processor ------------------------------------------------------------------------------------

def find_payment_of_attempt(
    attempt: PurchaseAttempt, processor: PaymentProcessor, *, now: dt.datetime | None = None
) -> ProcessorPayment | None:
    """The checkout's payment at the processor, or None when it has none (an unreachable processor raises).

    By its id when we recorded it; otherwise (the answer to the charge never arrived) by our checkout's id in the
    payments' metadata, around the time the charge was asked for.
    """
    if attempt.payment_id:
        return retrieve_or_none(processor, attempt.payment_id)
    started = attempt.charge_started_at or attempt.created_at
    until = (now or timezone.now()) + LOOKUP_MARGIN
    for page in processor.list_pages(created_gte=started - LOOKUP_MARGIN, created_lte=until):
        for payment in page:
            if payment.attempt_id == attempt.pk:
                # Looked up by id too: a listed payment does not say what was refunded of it, a lookup does.
                return retrieve_or_none(processor, payment.id) or payment
    return None


def retrieve_or_none(processor: PaymentProcessor, payment_id: str) -> ProcessorPayment | None:
    """The payment, or None when the processor says there is no such payment (unreachable raises)."""
    try:
        return processor.retrieve(payment_id)
    except RequestRefused:
        return None


@dataclass(frozen=True)
class Checked:
    """One answer of a check: the checkout (when it is one of ours) and what the processor says of its payment."""

    reference: str
    payment_id: str
    status: str
    amount_refunded: int
    currency: str


def check_with_processor(*, attempts: Iterable[PurchaseAttempt], payment_ids: Iterable[str] = ()) -> list[Checked]:
    """Ask the processor now about these checkouts and payments, and record each answer. A checkout that never
    reached the processor is not asked about. Raises ProviderError when the processor does not answer (what was
    answered before is recorded)."""
    processor = payment_processor()
    checked: list[Checked] = []
    seen: set[str] = set()
    for attempt in attempts:
        if not attempt.payment_id and attempt.charge_calls == 0:
            continue
        payment = find_payment_of_attempt(attempt, processor)
        if payment is None:
            record_no_payment(attempt_id=attempt.pk, payment_id=attempt.payment_id, learnt_from=LearntFrom.LOOKUP)
            checked.append(Checked(attempt.reference, attempt.payment_id, NO_PAYMENT, 0, attempt.currency))
            continue
        record_payment(payment=payment, learnt_from=LearntFrom.LOOKUP, attempt_id=attempt.pk)
        seen.add(payment.id)
        checked.append(Checked(attempt.reference, payment.id, payment.status, payment.amount_refunded,
                               payment.currency))
    for payment_id in dict.fromkeys(p for p in payment_ids if p and p not in seen):
        payment = retrieve_or_none(processor, payment_id)
        if payment is None:
            record_no_payment(payment_id=payment_id, learnt_from=LearntFrom.LOOKUP)
            checked.append(Checked("", payment_id, NO_PAYMENT, 0, ""))
            continue
        record_payment(payment=payment, learnt_from=LearntFrom.LOOKUP)
        checked.append(Checked("", payment.id, payment.status, payment.amount_refunded, payment.currency))
    return checked


def latest_statuses(*, attempt_ids: Iterable[int], payment_ids: Iterable[str]) -> dict[str, ProcessorStatus]:
    """What is recorded, read in one query: by payment id (``"pi_..."``), and by checkout (``"attempt:<id>"``,
    the newest answer about any payment of it or about its having none)."""
    attempt_ids, payment_ids = list(attempt_ids), [p for p in payment_ids if p]
    if not attempt_ids and not payment_ids:
        return {}
    found: dict[str, ProcessorStatus] = {}
    rows = ProcessorStatus.objects.filter(Q(attempt_id__in=attempt_ids) | Q(payment_id__in=payment_ids))
    for row in rows.order_by("as_of", "id"):  # newest last: it wins
        if row.payment_id:
            found[row.payment_id] = row
        if row.attempt_id is not None:
            found[f"attempt:{row.attempt_id}"] = row
    return found
