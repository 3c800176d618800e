"""The desk's view of money, through billing: what was paid, what access it gave, and the actions on it.

Support never writes billing's tables; every change goes through billing's service functions, which make a
fulfilment or a refund happen once even when the checkout, a webhook and reconciliation race with a click here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.billing import credits as billing_credits
from backstop.billing import fulfilment as billing_fulfilment
from backstop.billing import refunds as billing_refunds
from backstop.billing.models import (
    AttemptState,
    FulfilledBy,
    KnownRefund,
    Order,
    OrderStatus,
    PurchaseAttempt,
)
from backstop.billing.outcome import money
from backstop.billing.providers import RequestRefused, payment_processor
from backstop.lib.errors import ProviderError
from backstop.support import messages, triage
from backstop.support.models import Signal

# Charged at the processor, no order yet: the money is in, the access is not.
PAID_WITHOUT_ORDER = (AttemptState.CHARGED, AttemptState.IN_DOUBT)
PROCESSOR_SAYS = {
    AttemptState.RECORDED: "not charged yet",
    AttemptState.CHARGING: "charge under way",
    AttemptState.CHARGED: "succeeded",
    AttemptState.FULFILLED: "succeeded",
    AttemptState.IN_DOUBT: "unknown: being checked",
    AttemptState.DECLINED: "declined, nothing charged",
}
# Signals naming a payment the desk can give back: taken without access, matching no checkout, or one our books call
# refunded while the processor does not.
REFUNDABLE_KINDS = triage.MONEY_KINDS | {AttentionKind.REFUND_UNCONFIRMED.value}


class PaymentActionFailed(Exception):
    """Billing refused or could not finish a money action; the text says why."""


@dataclass(frozen=True)
class PaidWithoutAccess:
    payment_id: str
    reference: str
    amount_text: str
    paid_at: dt.datetime


@dataclass(frozen=True)
class PaymentRow:
    """One payment as the processor reported it and as our books have it, side by side on the case page."""

    reference: str
    payment_id: str
    amount_text: str
    paid_at: dt.datetime | None
    processor_status: str
    our_status: str
    access: str
    # "$100 of $249 refunded on 3 Mar 2025", empty when nothing was refunded.
    refunded: str = ""


def _customer_attempts(*, email: str, account: Any, reference: str = "") -> Any:
    attempts = PurchaseAttempt.objects.of_customer(email=email, account=account)
    if reference:
        attempts |= PurchaseAttempt.objects.filter(reference=reference.strip().upper())
    return attempts


def _money_records(email: str) -> Any:
    return AttentionRecord.objects.filter(kind__in=triage.MONEY_KINDS).filter(
        Q(detail__email=email) | Q(detail__email=email.lower()))


def _open_money_records(email: str) -> Any:
    return _money_records(email).filter(resolved_at__isnull=True)


def _refunded_text(refunded_cents: int, amount_cents: int, currency: str, when: dt.datetime | None) -> str:
    if not refunded_cents:
        return ""
    return messages.PAYMENT_REFUNDED.format(refunded=money(refunded_cents, currency),
                                            amount=money(amount_cents, currency),
                                            on=f"{when:%-d %b %Y}" if when else "")


def find_paid_without_access(*, email: str, account: Any, reference: str) -> PaidWithoutAccess | None:
    """A charge of this customer's (or under their reference) that gave them nothing, newest first."""
    attempt = (_customer_attempts(email=email, account=account, reference=reference)
               .filter(state__in=PAID_WITHOUT_ORDER).exclude(payment_id="").order_by("-id").first())
    if attempt is not None and not Order.objects.filter(attempt=attempt).exists():
        return PaidWithoutAccess(payment_id=attempt.payment_id, reference=attempt.reference,
                                 amount_text=money(attempt.amount_cents, attempt.currency),
                                 paid_at=attempt.charged_at or attempt.created_at)
    record = _open_money_records(email).order_by("-id").first()
    if record is not None and record.detail.get("payment_id"):
        created = record.detail.get("created_at")
        return PaidWithoutAccess(
            payment_id=str(record.detail["payment_id"]), reference="",
            amount_text=str(record.detail.get("amount") or ""),
            paid_at=dt.datetime.fromisoformat(created) if created else record.created_at)
    return None


def payments_for(*, email: str, account: Any) -> list[PaymentRow]:
    rows = []
    attempts = _customer_attempts(email=email, account=account).exclude(state=AttemptState.RECORDED).order_by("-id")
    for attempt in attempts.select_related("order__entitlement")[:50]:
        order = getattr(attempt, "order", None)
        entitlement = getattr(order, "entitlement", None) if order is not None else None
        if order is None:
            ours, access = ("no order yet" if attempt.state in PAID_WITHOUT_ORDER else "no order"), "none"
        else:
            ours = f"order {order.reference}: {order.get_status_display()} ({order.get_fulfilled_by_display()})"
            access = (f"{entitlement.get_state_display()} until {entitlement.ends_at:%-d %b %Y}"
                      if entitlement is not None else "none")
        rows.append(PaymentRow(
            reference=attempt.reference, payment_id=attempt.payment_id,
            amount_text=money(attempt.amount_cents, attempt.currency), paid_at=attempt.charged_at,
            processor_status=PROCESSOR_SAYS.get(AttemptState(attempt.state), attempt.state), our_status=ours,
            access=access,
            refunded=_refunded_text(order.refunded_cents, order.amount_cents, order.currency, order.refunded_at)
            if order is not None else ""))
    # Payments no checkout of ours explains: open, or given back from the desk (then their refund is the news).
    records = list(_money_records(email).order_by("-id")[:20])
    refunded = {known.payment_id: known for known in KnownRefund.objects.filter(
        payment_id__in=[str(record.detail.get("payment_id", "")) for record in records])}
    for record in records:
        detail = record.detail
        known = refunded.get(str(detail.get("payment_id", "")))
        if record.resolved_at is not None and known is None:
            continue
        rows.append(PaymentRow(
            reference="", payment_id=str(detail.get("payment_id", "")), amount_text=str(detail.get("amount", "")),
            paid_at=record.created_at, processor_status=str(detail.get("status", "succeeded")),
            our_status=record.get_kind_display(), access="none",
            refunded=_refunded_text(known.amount_refunded, int(detail.get("amount_cents") or 0),
                                    str(detail.get("currency") or "usd"), known.updated_at) if known else ""))
    return rows


def snapshot(*, email: str, account: Any) -> dict[str, Any]:
    attempts = _customer_attempts(email=email, account=account).exclude(state=AttemptState.RECORDED)
    orders = dict(Order.objects.filter(attempt__in=attempts).values_list("reference", "status"))
    unpaid = list(attempts.filter(state__in=PAID_WITHOUT_ORDER).values_list("reference", flat=True))
    return {"orders": orders, "charged_without_order": unpaid} if orders or unpaid else {}


def is_about_money(case: Any) -> bool:
    """Whether the case has an open signal about a payment (one taken without access, or one matching no checkout).

    ``case.kinds`` is the kinds of its open signals, kept by every change to them (``cases.refresh_case``)."""
    return bool(set(case.kinds) & triage.MONEY_KINDS)


def has_charge_without_order(*, email: str, account: Any) -> bool:
    """Whether the customer was charged and has no order for it: the money is in, the access is not."""
    return (_customer_attempts(email=email, account=account).filter(state__in=PAID_WITHOUT_ORDER, order__isnull=True)
            .exclude(payment_id="").exists())


def has_payment_to_return(case: Any) -> bool:
    """Whether the case names a payment the desk can refund without an order (or whatever our books say of it)."""
    return bool(set(case.kinds) & REFUNDABLE_KINDS) or has_charge_without_order(email=case.email, account=case.account)


def has_paid_order(*, email: str, account: Any) -> bool:
    return Order.objects.filter(attempt__in=_customer_attempts(email=email, account=account),
                                status=OrderStatus.PAID).exists()


def has_active_plan(*, email: str, account: Any) -> bool:
    """Whether the customer has a plan running, the one a credit's days are added to."""
    return billing_credits.active_plan(email=email, account=account) is not None


def fulfilled_payment_ids(payment_ids: list[str]) -> set[str]:
    return set(Order.objects.filter(payment_id__in=[p for p in payment_ids if p]).values_list("payment_id", flat=True))


def _actor(staff: Any) -> str:
    return f"support:{staff.email}" if staff is not None else "support:automation"


def _payment_of_case(case: Any, *, kinds: frozenset[str] = triage.MONEY_KINDS) -> str:
    """The payment the case is about: named by one of its signals of ``kinds`` (directly or by checkout), or the
    customer's latest charge that has no order."""
    for detail in Signal.objects.filter(case=case, kind__in=kinds).order_by("-id").values_list("detail", flat=True):
        if detail.get("payment_id"):
            return str(detail["payment_id"])
        attempt = PurchaseAttempt.objects.by_reference(str(detail.get("reference") or "")) \
            if detail.get("reference") else None
        if attempt is not None and attempt.payment_id:
            return attempt.payment_id
    attempt = (_customer_attempts(email=case.email, account=case.account).filter(state__in=PAID_WITHOUT_ORDER)
               .exclude(payment_id="").order_by("-id").first())
    return attempt.payment_id if attempt is not None else ""


def _customer_payment_ids(case: Any) -> set[str]:
    """Payments that are this customer's: named by the case's signals, or by their checkouts and orders."""
    named = {str(detail.get("payment_id") or "") for detail in
             Signal.objects.filter(case=case).values_list("detail", flat=True) if isinstance(detail, dict)}
    attempts = _customer_attempts(email=case.email, account=case.account)
    named |= set(attempts.exclude(payment_id="").values_list("payment_id", flat=True))
    named |= set(Order.objects.filter(attempt__in=attempts).values_list("payment_id", flat=True))
    return named - {""}


def _resolve_money_records(case: Any, *, payment_id: str, how: str,
                           kinds: frozenset[str] = triage.MONEY_KINDS) -> None:
    """The records that brought this money problem to the desk are answered."""
    AttentionRecord.objects.filter(resolved_at__isnull=True, kind__in=kinds).filter(
        Q(signals__case=case) | Q(detail__payment_id=payment_id)).update(resolved_at=timezone.now(), resolution=how)


def fulfil_from_charge(*, case: Any, staff: Any, payment_id: str) -> bool:
    """Give access for a payment already taken: no new charge. True when this call created the order."""
    payment_id = payment_id.strip() or _payment_of_case(case)
    if not payment_id:
        raise PaymentActionFailed(messages.NO_CHARGE_FOUND)
    try:
        payment = payment_processor().retrieve(payment_id)
    except RequestRefused as error:
        raise PaymentActionFailed(messages.NO_SUCH_PAYMENT.format(payment_id=payment_id)) from error
    except ProviderError as error:
        raise PaymentActionFailed(str(error)) from error
    if not payment.succeeded:
        raise PaymentActionFailed(messages.PAYMENT_NOT_SUCCEEDED.format(status=payment.status))
    try:
        result = billing_fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.SUPPORT, actor=_actor(staff))
    except billing_fulfilment.UnmatchedPayment as error:
        raise PaymentActionFailed(messages.PAYMENT_MATCHES_NO_CHECKOUT) from error
    if result.order is None or result.problem:
        raise PaymentActionFailed(result.problem or messages.NO_CHARGE_FOUND)
    if result.order.status == OrderStatus.REFUNDED:
        # Refunded in full before any order: billing recorded the order refunded and told the buyer; no access to give.
        _resolve_money_records(case, payment_id=payment_id, how="refunded at the processor before any order")
        raise PaymentActionFailed(messages.PAYMENT_WAS_REFUNDED.format(reference=result.order.reference))
    _resolve_money_records(case, payment_id=payment_id, how=f"fulfilled from charge by {_actor(staff)}")
    return result.created


def refund(*, case: Any, staff: Any, reference: str, reason: str) -> bool:
    """Refund the order in full through billing (once, whatever the number of clicks). True when it changed."""
    if not reference.strip():
        # Their latest order: still paid, it is refunded; refunded already, the click changes nothing.
        order = (Order.objects.filter(attempt__in=_customer_attempts(email=case.email, account=case.account))
                 .order_by("-id").first())
        if order is None:
            raise PaymentActionFailed(messages.REFUND_NEEDS_ORDER)
        reference = order.reference
    before = Order.objects.filter(reference=reference.strip().upper()).values_list("status", flat=True).first()
    if before is None:
        raise PaymentActionFailed(messages.NO_SUCH_ORDER.format(reference=reference))
    try:
        order = billing_refunds.refund_order(reference=reference, actor=_actor(staff))
    except (RequestRefused, ProviderError, billing_refunds.NotRefundable) as error:
        raise PaymentActionFailed(str(error)) from error
    _resolve_money_records(case, payment_id=order.payment_id, how=f"refunded by {_actor(staff)}: {reason}"[:200])
    return before == OrderStatus.PAID and order.status == OrderStatus.REFUNDED


def refund_payment(*, case: Any, staff: Any, payment_id: str, reason: str) -> bool:
    """Give back what is left of a payment of this customer's, order or not (e.g. one no checkout explains), through
    billing: once per state of the payment, audited. True when this call moved money."""
    payment_id = payment_id.strip() or _payment_of_case(case, kinds=REFUNDABLE_KINDS)
    if not payment_id:
        raise PaymentActionFailed(messages.NO_PAYMENT_TO_REFUND)
    if payment_id not in _customer_payment_ids(case):
        # A typed id must be this customer's: the desk never returns someone else's payment from this case.
        raise PaymentActionFailed(messages.NOT_THIS_CUSTOMERS_PAYMENT.format(payment_id=payment_id))
    try:
        result = billing_refunds.refund_payment(payment_id=payment_id, actor=_actor(staff))
    except (ProviderError, billing_refunds.NotRefundable) as error:
        raise PaymentActionFailed(str(error)) from error
    _resolve_money_records(case, payment_id=payment_id, how=f"refunded by {_actor(staff)}: {reason}"[:200],
                           kinds=REFUNDABLE_KINDS)
    return result.refunded_now


def grant_credit(*, case: Any, staff: Any, days: int, reason: str, key: str) -> bool:
    """Add days to the customer's plan through billing, once per action key. True when this call granted it."""
    try:
        return billing_credits.grant_credit(email=case.email, account=case.account, days=days, reason=reason,
                                    actor=_actor(staff), key=key)
    except billing_credits.NotCreditable as error:
        raise PaymentActionFailed(str(error)) from error
