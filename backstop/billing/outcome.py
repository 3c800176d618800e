"""The one read model of a checkout, used by the result page, GET /api/orders/<reference> and the emails."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings

from backstop.billing import messages
from backstop.billing.models import NOT_CHARGED, AttemptState, Order, OrderStatus, PurchaseAttempt

if TYPE_CHECKING:
    from backstop.billing.claims import ExistingPurchase

# Outcomes after which nothing changes by itself: the page stops refreshing.
FINAL_OUTCOMES = {messages.PAID, messages.REFUNDED, messages.DECLINED, messages.NOT_CHARGED}


def money(cents: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower(), "")
    amount = f"{cents / 100:,.2f}".removesuffix(".00")
    return f"{symbol}{amount}" if symbol else f"{amount} {currency.upper()}"


def mask_email(email: str) -> str:
    """``a***@example.com``: the reference alone must not reveal who bought."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


@dataclass(frozen=True)
class CheckoutOutcome:
    reference: str
    outcome: str
    final: bool
    title: str
    message: str
    attempt_state: str
    product: str
    amount: str
    email: str
    paid: bool
    active_until: dt.datetime | None
    order_status: str | None
    refunded: str | None
    status_url: str
    page_url: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcome_of(attempt: PurchaseAttempt, order: Order | None) -> str:
    if order is not None:
        return messages.REFUNDED if order.status == OrderStatus.REFUNDED else messages.PAID
    return {
        AttemptState.RECORDED: messages.PROCESSING,
        AttemptState.CHARGING: messages.PROCESSING,
        AttemptState.CHARGED: messages.FINISHING,
        # Fulfilled without an order row: the order is being rebuilt (reconciliation), the money is in.
        AttemptState.FULFILLED: messages.FINISHING,
        AttemptState.IN_DOUBT: messages.IN_DOUBT,
        AttemptState.DECLINED: messages.NOT_CHARGED if attempt.decline_code == NOT_CHARGED else messages.DECLINED,
    }[AttemptState(attempt.state)]


def checkout_outcome(attempt: PurchaseAttempt, *, show_email: bool = False) -> CheckoutOutcome:
    order = Order.objects.select_related("entitlement").filter(attempt=attempt).first()
    outcome = outcome_of(attempt, order)
    entitlement = getattr(order, "entitlement", None) if order is not None else None
    email = attempt.email if show_email else mask_email(attempt.email)
    amount = money(attempt.amount_cents, attempt.currency)
    refunded = money(order.refunded_cents, order.currency) if order is not None and order.refunded_cents else None
    refunded_on = f"{order.refunded_at:%B %-d, %Y}" if order and order.refunded_at else ""
    notice = messages.RENEWAL_PAID if outcome == messages.PAID and attempt.renews_id else messages.OUTCOMES[outcome]
    if outcome == messages.REFUNDED and entitlement is None:
        notice = messages.REFUNDED_BEFORE_ACCESS  # refunded before the order was made: it never gave access
    elif outcome == messages.PAID and refunded:
        # A partial refund: the order stays paid (a person decides what access it keeps), and says what came back.
        notice = replace(notice, happened=f"{notice.happened} {messages.PARTLY_REFUNDED}")
    text = notice.text.format(
        product=attempt.product.name, amount=amount, reference=attempt.reference, email=email,
        minutes=settings.IN_DOUBT_REPLY_MINUTES,
        ends_on=f"{entitlement.ends_at:%B %-d, %Y}" if entitlement is not None else "",
        refunded=refunded or "", refunded_on=refunded_on,
        reason=messages.DECLINE_REASONS.get(attempt.decline_code, messages.DECLINE_REASON_DEFAULT),
    )
    return CheckoutOutcome(
        reference=attempt.reference,
        outcome=outcome,
        final=outcome in FINAL_OUTCOMES,
        title=messages.TITLES[outcome],
        message=text,
        attempt_state=attempt.state,
        product=attempt.product.name,
        amount=amount,
        email=email,
        paid=order is not None,
        active_until=entitlement.ends_at if entitlement is not None and entitlement.state == "active" else None,
        order_status=order.status if order is not None else None,
        refunded=refunded,
        status_url=f"/api/orders/{attempt.reference}",
        page_url=f"/checkout/{attempt.reference}",
    )


@dataclass(frozen=True)
class AlreadyAnswer:
    """What a checkout says instead of charging again (``claims.ExistingPurchase``), on the page and in the API."""

    kind: str  # paid | renewed | under_way (to the owner) | emailed (to whoever else typed the address)
    title: str
    message: str
    existing: CheckoutOutcome | None  # the purchase held, only for a caller who may see it

    def as_dict(self) -> dict[str, Any]:
        return {"code": messages.ALREADY_PURCHASED, "message": self.message,
                "status_url": self.existing.status_url if self.existing else None,
                "existing": self.existing.as_dict() if self.existing else None}


def already_answer(existing: ExistingPurchase, *, email: str) -> AlreadyAnswer:
    attempt = existing.attempt
    if not existing.shown:
        kind = "emailed"
    else:
        kind = "under_way" if existing.under_way else "renewed" if existing.renewal else "paid"
    text = messages.ALREADY[kind].text.format(
        product=attempt.product.name, reference=attempt.reference, email=email,
        until=f"{existing.until:%B %-d, %Y}" if existing.until is not None else "",
    )
    return AlreadyAnswer(kind=kind, title=messages.ALREADY_TITLES[kind], message=text,
                         existing=checkout_outcome(attempt, show_email=True) if existing.shown else None)
