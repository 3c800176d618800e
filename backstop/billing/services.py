"""Checkout, charging, fulfilment and refunds: keyword-only functions; every money action is audited.

Fulfilment is the one place an order comes into being. The checkout workflow, the webhook, reconciliation
and support all call ``fulfil_payment``; the unique order per payment (and per attempt), created in the
same transaction as its entitlement and its confirmation email, makes any number of simultaneous callers
end with one order, one entitlement and one email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.accounts.validation import clean_email
from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm
from backstop.billing.messages import (
    CREDIT_DAYS_OUT_OF_RANGE,
    CREDIT_NO_ACTIVE_PLAN,
    FIELD_ERRORS,
    REFUND_PARTIAL_SUMMARY,
)
from backstop.billing.models import (
    NOT_CHARGED,
    PURCHASE_QUEUE,
    AttemptState,
    AuditEntry,
    Credit,
    Entitlement,
    EntitlementState,
    FulfilledBy,
    Order,
    OrderStatus,
    Product,
    PurchaseAttempt,
    purchase_workflow_id,
)
from backstop.billing.outcome import money
from backstop.billing.providers import CardDeclined, ProcessorPayment, RequestRefused, payment_processor
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput, ProviderError
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message
from backstop.ratelimits.services import Limit, check_rate_limit
from backstop.runtime import dispatch
from backstop.runtime.guarded import SWEEP_LIMIT, start_stranded

log = logging.getLogger(__name__)

CHECKOUT_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,96}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
SETTLING_STATES = (AttemptState.RECORDED, AttemptState.CHARGING)


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different purchase."""


class NotRefundable(Exception):
    """The processor refused the refund (a 4xx): nothing changed."""


class NotCreditable(Exception):
    """There is no plan to add days to, or the number of days is out of range."""


class UnmatchedPayment(Exception):
    """A processor payment that belongs to no purchase attempt of ours."""


@dataclass(frozen=True)
class CheckoutResult:
    attempt: PurchaseAttempt
    replayed: bool


class ChargeOutcome(TypedDict):
    outcome: Literal["succeeded", "declined", "unknown", "settled"]
    payment: ProcessorPayment | None
    code: str
    error: str


@dataclass(frozen=True)
class Fulfilment:
    order: Order | None
    created: bool
    problem: str = ""


def audit(*, actor: str, action: str, reference: str, payment_id: str = "", before: dict[str, Any] | None = None,
          after: dict[str, Any] | None = None) -> None:
    AuditEntry.objects.create(actor=actor[:200], action=action, reference=reference, payment_id=payment_id,
                              before=before or {}, after=after or {})


def _attempt_snapshot(attempt: PurchaseAttempt) -> dict[str, Any]:
    return {"state": attempt.state, "payment_id": attempt.payment_id, "amount_cents": attempt.amount_cents,
            "currency": attempt.currency}


# --- Checkout -------------------------------------------------------------------------------------------

def start_checkout(
    *, product: str, email: str, account: Account | None, payment_method: str, idempotency_key: str, ip: str
) -> CheckoutResult:
    """Record the purchase attempt (once per idempotency key) and queue its durable workflow. Charges nothing."""
    errors: dict[str, str] = {}
    address = clean_email(account.email if account is not None else email, errors)
    chosen = Product.objects.for_sale(product.strip())
    if chosen is None:
        errors["product"] = FIELD_ERRORS["product_unknown"]
    method = payment_method.strip()
    if not method:
        errors["payment_method"] = FIELD_ERRORS["payment_method_required"]
    elif not PAYMENT_METHOD.fullmatch(method):
        errors["payment_method"] = FIELD_ERRORS["payment_method_invalid"]
    key = idempotency_key.strip() or f"auto-{uuid.uuid4().hex}"
    if not IDEMPOTENCY_KEY.fullmatch(key):
        errors["idempotency_key"] = FIELD_ERRORS["idempotency_key_invalid"]
    if errors or chosen is None:
        raise InvalidInput(errors)
    buyer = account or Account.objects.by_email_key(email_key(address))
    fingerprint = hashlib.sha256(
        json.dumps([chosen.code, email_key(address), buyer.pk if buyer else None, method]).encode()
    ).hexdigest()
    existing = PurchaseAttempt.objects.by_idempotency_key(key)
    if existing is not None:
        return _replay(existing, fingerprint)
    check_rate_limit(action="checkout", limit=CHECKOUT_LIMIT, ip=ip, email_key=email_key(address))
    try:
        attempt = _record_attempt(chosen, address, buyer, method, key, fingerprint)
    except IntegrityError:  # the same key submitted at the same moment: the other request recorded it
        return _replay(PurchaseAttempt.objects.get(idempotency_key=key), fingerprint)
    return CheckoutResult(attempt=attempt, replayed=False)


def _replay(attempt: PurchaseAttempt, fingerprint: str) -> CheckoutResult:
    if attempt.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused
    return CheckoutResult(attempt=attempt, replayed=True)


@transaction.atomic
def _record_attempt(
    product: Product, email: str, account: Account | None, method: str, key: str, fingerprint: str
) -> PurchaseAttempt:
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=key, request_fingerprint=fingerprint, product=product, amount_cents=product.amount_cents,
        currency=product.currency, email=email, account=account, payment_method=method,
    )
    audit(actor=f"buyer:{email}", action="checkout_recorded", reference=attempt.reference,
          after=_attempt_snapshot(attempt))
    transaction.on_commit(lambda: enqueue_purchase(attempt.pk))
    return attempt


def enqueue_purchase(attempt_id: int) -> None:
    from backstop.billing.workflows import purchase_workflow

    try:
        dispatch.enqueue(purchase_workflow, attempt_id, queue_name=PURCHASE_QUEUE,
                         workflow_id=purchase_workflow_id(attempt_id))
    except Exception:  # reconciliation restarts a recorded attempt whose workflow never started
        log.exception("could not enqueue the purchase workflow for attempt %s; reconciliation will", attempt_id)


def restart_unstarted_purchases(*, grace_seconds: float) -> int:
    """Safety net (a sweep the billing app registers): start the workflow of every attempt recorded longer ago than
    the grace that never reached the processor and has no workflow (the process stopped between the commit and the
    hand-over, or the hand-over failed). Starting one under its id twice starts it once. Returns how many it started.

    Reconciliation still restarts such an attempt too when it meets one (it runs without the engine, from a command).
    """
    before = timezone.now() - dt.timedelta(seconds=grace_seconds)
    waiting = PurchaseAttempt.objects.filter(state=AttemptState.RECORDED, charge_calls=0, updated_at__lt=before)
    return start_stranded(
        ((pk, str(pk)) for pk in waiting.order_by("id").values_list("pk", flat=True)[:SWEEP_LIMIT]),
        workflow_id=lambda key: purchase_workflow_id(int(key)),
        start=lambda attempt_id, _: enqueue_purchase(attempt_id),
    )


def wait_for_charge(*, attempt: PurchaseAttempt, seconds: float) -> PurchaseAttempt:
    """Give the workflow a moment to charge, so a healthy checkout answers "paid" straight away."""
    deadline = time.monotonic() + seconds
    while attempt.state in SETTLING_STATES and time.monotonic() < deadline:
        time.sleep(0.1)
        attempt.refresh_from_db()
    return attempt


# --- The purchase workflow's steps ------------------------------------------------------------------------

def charge_attempt(*, attempt_id: int, try_number: int) -> ChargeOutcome:
    """One call to the processor, always with the attempt's idempotency key: never a second charge."""
    attempt = PurchaseAttempt.objects.select_related("product").get(pk=attempt_id)
    if attempt.state not in SETTLING_STATES:  # a webhook or reconciliation settled it already
        return {"outcome": "settled", "payment": None, "code": "", "error": ""}
    now = timezone.now()
    # A try that already called the processor is being run again: the process died mid-charge.
    rerun = attempt.charge_calls >= try_number
    PurchaseAttempt.objects.filter(pk=attempt.pk, state__in=SETTLING_STATES).update(
        state=AttemptState.CHARGING, charge_calls=F("charge_calls") + 1, updated_at=now,
        charge_started_at=attempt.charge_started_at or now, interrupted=attempt.interrupted or rerun,
    )
    audit(actor="system:checkout", action="charge_requested", reference=attempt.reference,
          before=_attempt_snapshot(attempt),
          after={"try": try_number, "idempotency_key": attempt.processor_key, "rerun_after_crash": rerun})
    try:
        payment = payment_processor().charge(
            amount=attempt.amount_cents, currency=attempt.currency, payment_method=attempt.payment_method,
            email=attempt.email, description=attempt.product.name, idempotency_key=attempt.processor_key,
            metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference, "email": attempt.email,
                      "product": attempt.product.code},
        )
    except CardDeclined as declined:
        return {"outcome": "declined", "payment": None, "code": declined.code, "error": declined.message}
    except RequestRefused as refused:
        return {"outcome": "declined", "payment": None, "code": refused.code or "request_refused",
                "error": str(refused)}
    except ProviderError as error:
        return {"outcome": "unknown", "payment": None, "code": "", "error": str(error)}
    if not payment.succeeded:  # e.g. "processing": the webhook or reconciliation will tell us how it ends
        return {"outcome": "unknown", "payment": payment, "code": payment.status,
                "error": f"the payment is {payment.status}"}
    return {"outcome": "succeeded", "payment": payment, "code": "", "error": ""}


def record_charge(*, attempt_id: int, charge: ChargeOutcome) -> str:
    """Write down what the processor said; returns the attempt's state afterwards."""
    attempt = PurchaseAttempt.objects.get(pk=attempt_id)
    now = timezone.now()
    with transaction.atomic():
        if charge["outcome"] == "succeeded" and charge["payment"] is not None:
            moved = PurchaseAttempt.objects.move(
                attempt_id, from_states=(*SETTLING_STATES, AttemptState.IN_DOUBT), to=AttemptState.CHARGED,
                payment_id=charge["payment"].id, charged_at=now, last_error="",
            )
            if moved:
                audit(actor="system:checkout", action="charge_succeeded", reference=attempt.reference,
                      payment_id=charge["payment"].id, before=_attempt_snapshot(attempt),
                      after={"state": AttemptState.CHARGED, "payment_id": charge["payment"].id,
                             "replayed_by_processor": charge["payment"].replayed})
        elif charge["outcome"] == "declined":
            moved = PurchaseAttempt.objects.move(
                attempt_id, from_states=SETTLING_STATES, to=AttemptState.DECLINED, decline_code=charge["code"],
                decline_message=charge["error"][:300], settled_at=now,
            )
            if moved:
                audit(actor="system:checkout", action="charge_declined", reference=attempt.reference,
                      before=_attempt_snapshot(attempt), after={"state": AttemptState.DECLINED,
                                                                "code": charge["code"]})
        elif charge["outcome"] == "unknown":
            PurchaseAttempt.objects.filter(pk=attempt_id, state__in=SETTLING_STATES).update(
                last_error=charge["error"][:500], updated_at=now
            )
    return PurchaseAttempt.objects.values_list("state", flat=True).get(pk=attempt_id)


def mark_in_doubt(*, attempt_id: int) -> None:
    """The processor never gave a clear answer: tell the buyer the truth and leave it to reconciliation."""
    attempt = PurchaseAttempt.objects.get(pk=attempt_id)
    with transaction.atomic():
        if PurchaseAttempt.objects.move(attempt_id, from_states=SETTLING_STATES, to=AttemptState.IN_DOUBT,
                                        in_doubt_since=timezone.now(), interrupted=True):
            audit(actor="system:checkout", action="charge_in_doubt", reference=attempt.reference,
                  before=_attempt_snapshot(attempt), after={"state": AttemptState.IN_DOUBT,
                                                            "last_error": attempt.last_error})


def fulfil_payment(
    *, payment: ProcessorPayment, source: str, actor: str, attempt_id: int | None = None
) -> Fulfilment:
    """Turn a succeeded processor payment into exactly one order, one entitlement and one confirmation email.

    Safe to call any number of times from any number of processes at once. Raises UnmatchedPayment when the
    payment belongs to none of our checkouts.
    """
    if not payment.succeeded:
        raise ValueError(f"payment {payment.id} has not succeeded ({payment.status})")
    attempt = _attempt_for(payment, attempt_id)
    if payment.amount != attempt.amount_cents or payment.currency != attempt.currency:
        expected = money(attempt.amount_cents, attempt.currency)
        _raise_unmatched(payment, reason=f"its amount {money(payment.amount, payment.currency)} differs from "
                                         f"checkout {attempt.reference} ({expected})")
        return Fulfilment(order=None, created=False, problem="amount differs from the checkout")
    try:
        with transaction.atomic():
            order, created = Order.objects.get_or_create(payment_id=payment.id, defaults={
                "reference": attempt.reference, "attempt": attempt, "product_id": attempt.product_id,
                "email": attempt.email, "account": attempt.account, "amount_cents": payment.amount,
                "currency": payment.currency, "payment_created_at": payment.created, "fulfilled_by": source,
            })
            if created:
                _finish_order(order, attempt, payment, source=source, actor=actor)
    except IntegrityError:
        # The attempt already has an order for another payment: this buyer was charged twice.
        other = Order.objects.filter(attempt_id=attempt.pk).first()
        if other is None or other.payment_id == payment.id:
            raise
        _raise_unmatched(payment, reason=f"checkout {attempt.reference} was already paid by {other.payment_id}: "
                                         "a second charge for one order, refund it")
        return Fulfilment(order=other, created=False, problem="second charge for one checkout")
    return Fulfilment(order=order, created=created)


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
    entitlement = Entitlement.objects.create(
        order=order, product=product, email=order.email, account=order.account, starts_at=now,
        ends_at=now + dt.timedelta(days=product.period_days),
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
                 "status_url": f"{settings.BASE_URL}/checkout/{order.reference}"},
    )
    audit(actor=actor, action="order_fulfilled", reference=order.reference, payment_id=payment.id,
          before=_attempt_snapshot(prior),
          after={"order": order.reference, "fulfilled_by": source, "entitlement_until": entitlement.ends_at.isoformat(),
                 "email": message.kind})
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
                  before=_attempt_snapshot(attempt), after={"state": AttemptState.DECLINED, "status": payment.status})
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
        audit(actor=actor, action="not_charged", reference=attempt.reference, before=_attempt_snapshot(attempt),
              after={"state": AttemptState.DECLINED, "decline_code": NOT_CHARGED})
        message = notify.create_email(
            account=attempt.account, kind="purchase_not_charged", key=f"purchase-not-charged:{attempt.reference}",
            to=attempt.email, context={"attempt": attempt, "product": attempt.product,
                                       "amount": money(attempt.amount_cents, attempt.currency),
                                       "checkout_url": f"{settings.BASE_URL}/checkout"},
        )
        transaction.on_commit(lambda: enqueue_delivery(message))
    return True


# --- Refunds --------------------------------------------------------------------------------------------

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
    return "refunded" if won else "unchanged"


def active_plan(*, email: str, account: Account | None) -> Entitlement | None:
    """The customer's plan running now, the one a credit's days are added to (the latest to end, if several)."""
    return (Entitlement.objects.of_customer(email=email, account=account).filter(state=EntitlementState.ACTIVE)
            .select_related("order").order_by("-ends_at").first())


def grant_credit(*, email: str, account: Account | None, days: int, reason: str, actor: str, key: str) -> bool:
    """Add ``days`` to the customer's current plan. True when this call granted it; the same key again is a no-op."""
    if not 1 <= days <= settings.CREDIT_MAX_DAYS:
        raise NotCreditable(CREDIT_DAYS_OUT_OF_RANGE.format(max_days=settings.CREDIT_MAX_DAYS))
    entitlement = active_plan(email=email, account=account)
    if entitlement is None:
        raise NotCreditable(CREDIT_NO_ACTIVE_PLAN)
    try:
        with transaction.atomic():
            Credit.objects.create(key=key, entitlement=entitlement, days=days, reason=reason[:300], actor=actor)
            # Relative UPDATE: a refund or another credit landing at the same moment is not overwritten.
            Entitlement.objects.filter(pk=entitlement.pk).update(ends_at=F("ends_at") + dt.timedelta(days=days))
            ends_at = Entitlement.objects.values_list("ends_at", flat=True).get(pk=entitlement.pk)
            audit(actor=actor, action="credit_granted", reference=entitlement.order.reference,
                  payment_id=entitlement.order.payment_id, before={"ends_at": entitlement.ends_at.isoformat()},
                  after={"ends_at": ends_at.isoformat(), "days": days, "reason": reason[:300]})
    except IntegrityError:
        return False
    return True
