"""The one read model of a checkout, used by the result page, GET /api/orders/<reference> and the emails.

What the buyer's own page and API answers show them is written down on the attempt (``shown_to_buyer``,
``note_error_shown``): the confirmation email reads it (fulfilment.confirmation_email).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from backstop.billing import messages
from backstop.billing.models import (
    BUYER_SAW_RANK,
    NOT_CHARGED,
    AttemptState,
    BuyerSaw,
    Order,
    OrderStatus,
    PurchaseAttempt,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from backstop.billing.claims import ExistingPurchase

# Outcomes after which nothing changes by itself: the page stops refreshing.
FINAL_OUTCOMES = {messages.PAID, messages.REFUNDED, messages.DECLINED, messages.NOT_CHARGED}
# The few seconds a charge usually takes from "Pay": after them the page stops saying so and says it is taking longer.
USUAL_CHARGE_SECONDS = 5.0
# What each outcome tells the buyer, for the record (BuyerSaw); outcomes not listed are not ours to apologise for.
_STORY = {messages.PROCESSING: BuyerSaw.WAITING, messages.FINISHING: BuyerSaw.WAITING, messages.PAID: BuyerSaw.PAID,
          messages.IN_DOUBT: BuyerSaw.IN_DOUBT}


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
    # Still processing after the usual few seconds: the words say it is taking longer than usual.
    late: bool = False

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
    late = (outcome == messages.PROCESSING
            and (timezone.now() - attempt.created_at).total_seconds() > USUAL_CHARGE_SECONDS)
    words = messages.PROCESSING_LATE if late else outcome
    entitlement = getattr(order, "entitlement", None) if order is not None else None
    email = attempt.email if show_email else mask_email(attempt.email)
    amount = money(attempt.amount_cents, attempt.currency)
    refunded = money(order.refunded_cents, order.currency) if order is not None and order.refunded_cents else None
    refunded_on = f"{order.refunded_at:%B %-d, %Y}" if order and order.refunded_at else ""
    notice = messages.RENEWAL_PAID if outcome == messages.PAID and attempt.renews_id else messages.OUTCOMES[words]
    if outcome == messages.REFUNDED and entitlement is None:
        notice = messages.REFUNDED_BEFORE_ACCESS  # refunded before the order was made: it never gave access
    elif outcome == messages.PAID and refunded:
        # A partial refund: the order stays paid (a person decides what access it keeps), and says what came back.
        notice = replace(notice, happened=f"{notice.happened} {messages.PARTLY_REFUNDED}")
    confirmation = ""
    if outcome == messages.PAID and order is not None:
        confirmation = (messages.CONFIRMATION_SENT if _confirmation_sent(order.reference)
                        else messages.CONFIRMATION_COMING).format(email=email)
    text = notice.text.format(
        product=attempt.product.name, amount=amount, reference=attempt.reference, email=email,
        confirmation=confirmation,
        minutes=settings.IN_DOUBT_REPLY_MINUTES,
        ends_on=f"{entitlement.ends_at:%B %-d, %Y}" if entitlement is not None else "",
        refunded=refunded or "", refunded_on=refunded_on,
        reason=messages.DECLINE_REASONS.get(attempt.decline_code, messages.DECLINE_REASON_DEFAULT),
    )
    return CheckoutOutcome(
        reference=attempt.reference,
        outcome=outcome,
        final=outcome in FINAL_OUTCOMES,
        title=messages.TITLES[words],
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
        late=late,
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


def shown_to_buyer(attempt: PurchaseAttempt, *, show_email: bool = False, was_offline: bool = False,
                   asked_again: bool = False) -> CheckoutOutcome:
    """The outcome as the buyer's page or API answer shows it, written down on the attempt with what else they were
    told: ``was_offline``, the page said it could not reach our server (it says so on its next look);
    ``asked_again``, the API was sent this checkout again (the first answer did not reach the client)."""
    outcome = checkout_outcome(attempt, show_email=show_email)
    told = [BuyerSaw.OFFLINE] if was_offline else []
    if asked_again:
        told.append(BuyerSaw.ASKED_AGAIN)
    if outcome.late:
        told.append(BuyerSaw.LATE)
    elif outcome.outcome in _STORY:
        told.append(_STORY[outcome.outcome])
    for saw in told:
        _note(attempt, saw)
    return outcome


def note_error_shown(*, reference: str = "", idempotency_key: str = "") -> None:
    """The buyer of this checkout (by its reference, or the key they sent) was shown an error page. Never raises: it
    runs while an error is being answered."""
    try:
        attempt = (PurchaseAttempt.objects.by_reference(reference) if reference
                   else PurchaseAttempt.objects.by_idempotency_key(idempotency_key) if idempotency_key else None)
        if attempt is not None:
            _note(attempt, BuyerSaw.ERROR)
    except Exception:
        log.warning("could not record the error page shown for checkout %s", reference or idempotency_key,
                    exc_info=True)


def _note(attempt: PurchaseAttempt, saw: str) -> None:
    # Read before written: a page refreshing every second and a half writes only when the story changes.
    if BUYER_SAW_RANK.index(attempt.buyer_saw) >= BUYER_SAW_RANK.index(saw):
        return
    if PurchaseAttempt.objects.note_buyer_saw(attempt.pk, saw):
        attempt.buyer_saw = saw


def _confirmation_sent(reference: str) -> bool:
    """Whether the order's confirmation email went out (the page says "sent" only then)."""
    # Here, not at the top: fulfilment reads this module (money, the outcomes), and this needs its key.
    from backstop.billing.fulfilment import confirmation_key
    from backstop.notify.models import DeliveryStatus, Message

    return Message.objects.filter(key=confirmation_key(reference), status=DeliveryStatus.SENT).exists()
