"""Checkout, order status, refunds and the processor's webhook."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.security import django_auth
from ninja.utils import check_csrf

from backstop.accounts.models import Account
from backstop.billing import checkout as checkouts
from backstop.billing import messages, refunds, webhooks
from backstop.billing.models import Order, PurchaseAttempt
from backstop.billing.outcome import already_answer, checkout_outcome, note_error_shown, shown_to_buyer
from backstop.lib.errors import InvalidInput, ProviderError
from backstop.lib.http import client_ip
from backstop.ratelimits.services import RateLimited

log = logging.getLogger(__name__)

router = Router(tags=["billing"])


class CheckoutIn(Schema):
    product: str
    email: str = ""
    # The card: a payment method id from the processor (the fake processor's test cards in the demo).
    payment_method: str = "pm_card_visa"
    # Extend the signed-in customer's running plan by one period (starting when it ends), instead of buying it.
    renewal: bool = False
    # With renewal: another year although one was added moments ago (otherwise that extension is the answer).
    again: bool = False


class OutcomeOut(Schema):
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
    late: bool


class ErrorOut(Schema):
    code: str
    message: str
    fields: dict[str, str] | None = None
    reference: str | None = None
    status_url: str | None = None
    # already_purchased, to a signed-in caller: the purchase they already have.
    existing: OutcomeOut | None = None


class WebhookOut(Schema):
    received: bool
    outcome: str


def _purchase_error(attempt: PurchaseAttempt | None, idempotency_key: str) -> Status[dict[str, Any]]:
    reference = uuid.uuid4().hex[:12]
    log.exception("checkout failed unexpectedly, error reference %s", reference)
    note_error_shown(reference=attempt.reference if attempt is not None else "", idempotency_key=idempotency_key)
    return Status(500, {
        "code": "internal_error", "reference": reference,
        "message": messages.PURCHASE_ERROR.text.format(error_reference=reference,
                                                       minutes=settings.IN_DOUBT_REPLY_MINUTES),
        "status_url": f"/api/orders/{attempt.reference}" if attempt is not None else None,
    })


@router.post("/checkout", response={200: OutcomeOut, 202: OutcomeOut, 400: ErrorOut, 403: ErrorOut, 409: ErrorOut,
                                    429: ErrorOut, 500: ErrorOut})
def checkout(request: HttpRequest, payload: CheckoutIn, response: HttpResponse) -> Status[Any]:
    """Buy a product. Send an ``Idempotency-Key`` header: every retry with that key is the same purchase.

    Answers 200 when the outcome is final (paid, declined), 202 while the charge is still settling; either way
    ``status_url`` tells where to look next.

    One purchase per intent: while the buyer (the signed-in account, or the email's owner) has this plan running
    or a payment for it under way, a checkout with any other key charges nothing and answers 409 with code
    ``already_purchased``. To a signed-in caller the body names the purchase: ``message`` says "you already have
    this plan until <date>" or "your payment is being processed", ``existing`` is that order's outcome and
    ``status_url`` its status. To anyone else the body names nothing (a stranger may type anyone's email): the
    message says the order's link was emailed to the address, and it is (at most once per purchase every 15
    minutes). Two checkouts at the same moment for one buyer charge once; the other gets this answer.

    ``"renewal": true`` (signed in, with the plan running) extends it by one period starting when it ends: once per
    period, so a second extension of the same period (another key, a second tab) is the same 409 with the
    extension already bought; 400 with a ``renewal`` field error when not signed in or nothing runs. An extension
    recorded in the last 10 minutes is that 409 answer too, whatever period is named (Back, a reloaded page), unless
    ``"again": true`` asks for another year in so many words.
    """
    account = None
    if request.user.is_authenticated:
        # A session cookie buys on the signed-in account: that must come from our own pages.
        if check_csrf(request) is not None:
            return Status(403, {"code": "csrf_failed", "message": messages.CSRF_FAILED})
        account = Account.objects.signed_in(request.user)
    attempt = None
    idempotency_key = request.headers.get("Idempotency-Key", "")
    try:
        result = checkouts.start_checkout(
            product=payload.product, email=payload.email, account=account, payment_method=payload.payment_method,
            idempotency_key=idempotency_key, ip=client_ip(request), renewal=payload.renewal,
            again=payload.again,
        )
        if result.already is not None:
            return Status(409, already_answer(result.already, email=payload.email.strip()).as_dict())
        attempt = result.attempt
        checkouts.wait_for_charge(attempt=attempt, seconds=settings.CHECKOUT_WAIT_SECONDS)
        outcome = shown_to_buyer(attempt, show_email=True, asked_again=result.replayed)
    except checkouts.IdempotencyKeyReused:
        return Status(409, {"code": "idempotency_key_reused", "message": messages.IDEMPOTENCY_KEY_REUSED.text})
    except (InvalidInput, RateLimited):
        raise  # the API's own handlers answer 400 with the field errors, 429 with Retry-After
    except Exception:
        return _purchase_error(attempt, idempotency_key.strip())
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(200 if outcome.final else 202, outcome.as_dict())


@router.get("/orders/{reference}", response={200: OutcomeOut, 404: ErrorOut})
def order_status(request: HttpRequest, reference: str, offline: bool = False) -> Status[Any]:
    """A checkout's state by its reference (the buyer's email is masked). ``offline=true``: the buyer's page told them
    it could not reach us since its last look (what the buyer was told decides their confirmation email)."""
    attempt = PurchaseAttempt.objects.by_reference(reference)
    if attempt is None:
        return Status(404, {"code": "not_found", "message": messages.ORDER_NOT_FOUND.text})
    return Status(200, shown_to_buyer(attempt, was_offline=offline).as_dict())


@router.post("/orders/{reference}/refund", auth=django_auth,
             response={200: OutcomeOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, 502: ErrorOut})
def refund(request: HttpRequest, reference: str) -> Status[Any]:
    """Staff only: refund the order in full. Repeating it changes nothing."""
    staff = Account.objects.signed_in(request.user)
    if not staff.is_staff:
        return Status(403, {"code": "staff_only", "message": messages.STAFF_ONLY})
    try:
        order = refunds.refund_order(reference=reference, actor=f"staff:{staff.email}")
    except Order.DoesNotExist:
        return Status(404, {"code": "not_found", "message": messages.ORDER_NOT_FOUND.text})
    except refunds.NotRefundable as error:
        return Status(409, {"code": "not_refundable", "message": messages.NOT_REFUNDABLE.format(error=error)})
    except ProviderError as error:
        return Status(502, {"code": "refund_failed", "message": messages.REFUND_FAILED.format(error=error)})
    return Status(200, checkout_outcome(order.attempt, show_email=True).as_dict())


@router.post("/webhooks/payments", response={200: WebhookOut, 400: ErrorOut})
def payment_webhook(request: HttpRequest) -> Status[Any]:
    """The processor's events, signed with Stripe-Signature."""
    try:
        outcome = webhooks.handle_payment_event(payload=request.body,
                                                signature=request.headers.get("Stripe-Signature", ""))
    except webhooks.BadSignature:
        return Status(400, {"code": "bad_signature", "message": messages.WEBHOOK_BAD_SIGNATURE})
    except webhooks.MalformedEvent:
        return Status(400, {"code": "malformed_event", "message": messages.WEBHOOK_MALFORMED})
    return Status(200, {"received": True, "outcome": outcome})
