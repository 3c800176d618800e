"""What each fakepay endpoint does: Stripe's payment intent, refund and event behaviour, on our tables.

Handlers take a connection already inside the request's transaction, the request context and the
decoded parameters; they return the Stripe object to answer with, or raise ApiError. Every state
change records an event (and its webhook outbox rows) in that same transaction.

Test payment methods follow Stripe's test-mode names: ``pm_card_visa`` and friends succeed,
``pm_card_chargeDeclined`` / ``pm_card_visa_chargeDeclined`` (and the ``...InsufficientFunds``,
``...LostCard``, ``...StolenCard``, ``...ExpiredCard``, ``...IncorrectCvc``, ``...ProcessingError``
variants) are declined with the matching codes. Any other id is "No such PaymentMethod".
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from backstop.fakepay import store
from backstop.fakepay.errors import ApiError, CardError, invalid_request, no_such
from backstop.fakepay.params import PageRequest, Params

SUCCEEDING_PAYMENT_METHODS = frozenset(
    {
        "pm_card_visa",
        "pm_card_visa_debit",
        "pm_card_mastercard",
        "pm_card_mastercard_debit",
        "pm_card_amex",
        "pm_card_discover",
    }
)


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str


# Keyed by what follows "pm_card_chargeDeclined" / "pm_card_visa_chargeDeclined".
_DECLINES = {
    "": Decline("card_declined", "generic_decline", "Your card was declined."),
    "InsufficientFunds": Decline("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "LostCard": Decline("card_declined", "lost_card", "Your card was declined."),
    "StolenCard": Decline("card_declined", "stolen_card", "Your card was declined."),
    "ExpiredCard": Decline("expired_card", "expired_card", "Your card has expired."),
    "IncorrectCvc": Decline("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "ProcessingError": Decline(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
DECLINING_PAYMENT_METHODS = {
    f"{prefix}{suffix}": decline
    for prefix in ("pm_card_chargeDeclined", "pm_card_visa_chargeDeclined")
    for suffix, decline in _DECLINES.items()
}

CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
CANCELABLE = ("requires_payment_method", "requires_confirmation")
CANCELLATION_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
ALLOW_REDIRECTS = frozenset({"always", "never"})

PAYMENT_INTENT_EXPANDABLE = frozenset({"latest_charge"})
PAYMENT_INTENT_LIST_EXPANDABLE = frozenset({"data.latest_charge"})
REFUND_EXPANDABLE = frozenset({"charge", "payment_intent"})
REFUND_LIST_EXPANDABLE = frozenset({"data.charge", "data.payment_intent"})


@dataclass(frozen=True)
class RequestContext:
    """What a handler needs to know about the request besides its parameters."""

    request_id: str
    idempotency_key: str | None
    api_version: str | None
    now: int
    webhook_urls: tuple[str, ...]


# --- Rendering rows as Stripe objects ----------------------------------------------------------------


def render_charge(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["charge_id"],
        "object": "charge",
        "amount": row["amount"],
        "amount_captured": row["amount_received"],
        "amount_refunded": row["amount_refunded"],
        "captured": True,
        "created": row["charge_created"],
        "currency": row["currency"],
        "description": row["description"],
        "livemode": False,
        "metadata": json.loads(row["metadata"]),
        "paid": True,
        "payment_intent": row["id"],
        "payment_method": row["payment_method"],
        "receipt_email": row["receipt_email"],
        "refunded": row["amount_refunded"] >= row["amount_received"],
        "status": "succeeded",
    }


def render_payment_intent(row: sqlite3.Row, expand: frozenset[str] = frozenset()) -> dict[str, Any]:
    latest_charge: Any = row["charge_id"]
    if latest_charge is not None and "latest_charge" in expand:
        latest_charge = render_charge(row)
    return {
        "id": row["id"],
        "object": "payment_intent",
        "amount": row["amount"],
        "amount_capturable": 0,
        "amount_received": row["amount_received"],
        "automatic_payment_methods": _loads(row["automatic_payment_methods"]),
        "canceled_at": row["canceled_at"],
        "cancellation_reason": row["cancellation_reason"],
        "capture_method": "automatic",
        "confirmation_method": "automatic",
        "created": row["created"],
        "currency": row["currency"],
        "description": row["description"],
        "last_payment_error": _loads(row["last_payment_error"]),
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": json.loads(row["metadata"]),
        "next_action": None,
        "payment_method": row["payment_method"],
        "payment_method_types": ["card"],
        "receipt_email": row["receipt_email"],
        "status": row["status"],
    }


def render_refund(conn: sqlite3.Connection, row: sqlite3.Row, expand: frozenset[str]) -> dict[str, Any]:
    charge: Any = row["charge_id"]
    payment_intent: Any = row["payment_intent"]
    if expand:
        intent = _intent_or_404(conn, row["payment_intent"], param="payment_intent")
        if "charge" in expand:
            charge = render_charge(intent)
        if "payment_intent" in expand:
            payment_intent = render_payment_intent(intent)
    return {
        "id": row["id"],
        "object": "refund",
        "amount": row["amount"],
        "charge": charge,
        "created": row["created"],
        "currency": row["currency"],
        "metadata": json.loads(row["metadata"]),
        "payment_intent": payment_intent,
        "reason": row["reason"],
        "status": "succeeded",
    }


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _list(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


# --- Events ------------------------------------------------------------------------------------------


def record_event(conn: sqlite3.Connection, ctx: RequestContext, event_type: str, snapshot: dict[str, Any]) -> None:
    """Store an event with a snapshot of the object, and queue it for every webhook endpoint."""
    event_id = store.new_id("evt")
    body = {
        "id": event_id,
        "object": "event",
        "api_version": ctx.api_version,
        "created": ctx.now,
        "data": {"object": snapshot},
        "livemode": False,
        "pending_webhooks": len(ctx.webhook_urls),
        "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
        "type": event_type,
    }
    store.insert_event(conn, event_id=event_id, event_type=event_type, created=ctx.now, body=json.dumps(body))
    store.enqueue_deliveries(conn, event_id, ctx.webhook_urls, ctx.now)


def retrieve_event(conn: sqlite3.Connection, ctx: RequestContext, params: Params, event_id: str) -> dict[str, Any]:
    params.reject_unknown()
    row = store.event(conn, event_id)
    if row is None:
        raise no_such("event", event_id, param="id")
    body: dict[str, Any] = json.loads(row["body"])
    return body


def list_events(conn: sqlite3.Connection, ctx: RequestContext, params: Params) -> dict[str, Any]:
    page_request = params.page()
    event_type = params.text("type")
    event_types = params.texts("types")
    params.reject_unknown()
    if event_type and event_types:
        raise invalid_request(
            "You may only specify one of these parameters: type, types.", param="types", code="parameters_exclusive"
        )
    # Stripe's `type` accepts `*` as a wildcard (e.g. "payment_intent.*"); `types` are exact names.
    if event_type:
        patterns = [_like_pattern(event_type)]
    else:
        patterns = [_like_pattern(name, wildcard=False) for name in event_types]
    rows, has_more = _page(conn, "events", page_request, type_patterns=patterns)
    return _list("/v1/events", [json.loads(row["body"]) for row in rows], has_more)


def _like_pattern(event_type: str, *, wildcard: bool = True) -> str:
    escaped = event_type.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%") if wildcard else escaped


def _page(
    conn: sqlite3.Connection, table: store.ListedTable, request: PageRequest, type_patterns: list[str] | None = None
) -> tuple[list[sqlite3.Row], bool]:
    after = before = None
    if request.starting_after:
        after = store.position(conn, table, request.starting_after)
        if after is None:
            raise no_such(table.removesuffix("s"), request.starting_after, param="starting_after", status=400)
    if request.ending_before:
        before = store.position(conn, table, request.ending_before)
        if before is None:
            raise no_such(table.removesuffix("s"), request.ending_before, param="ending_before", status=400)
    return store.page(
        conn,
        table,
        limit=request.limit,
        after=after,
        before=before,
        created=request.created,
        type_patterns=type_patterns or (),
    )


# --- Payment intents ---------------------------------------------------------------------------------


def _intent_or_404(conn: sqlite3.Connection, intent_id: str, *, param: str = "intent") -> sqlite3.Row:
    row = store.payment_intent(conn, intent_id)
    if row is None:
        raise no_such("payment_intent", intent_id, param=param)
    return row


def _check_payment_method(payment_method: str) -> None:
    if payment_method not in SUCCEEDING_PAYMENT_METHODS and payment_method not in DECLINING_PAYMENT_METHODS:
        raise no_such("PaymentMethod", payment_method, param="payment_method", status=400)


def _check_email(receipt_email: str | None) -> None:
    if receipt_email is not None and "@" not in receipt_email:
        raise invalid_request(f"Invalid email address: {receipt_email}", param="receipt_email", code="email_invalid")


def create_payment_intent(conn: sqlite3.Connection, ctx: RequestContext, params: Params) -> dict[str, Any]:
    amount = params.required_integer("amount", minimum=1)
    currency = params.required_text("currency", max_length=3).lower()
    payment_method = params.text("payment_method")
    confirm = params.boolean("confirm") or False
    metadata = params.metadata()
    description = params.text("description", max_length=1000)
    receipt_email = params.text("receipt_email", max_length=800)
    automatic_enabled = params.boolean("automatic_payment_methods[enabled]")
    allow_redirects = params.choice("automatic_payment_methods[allow_redirects]", ALLOW_REDIRECTS)
    payment_method_types = params.texts("payment_method_types")
    expand = params.expand(PAYMENT_INTENT_EXPANDABLE)
    params.reject_unknown()

    if len(currency) != 3 or not currency.isalpha():
        raise invalid_request(f"Invalid currency: {currency}.", param="currency")
    _check_email(receipt_email)
    if any(kind != "card" for kind in payment_method_types):
        raise invalid_request("fakepay supports only the 'card' payment method type.", param="payment_method_types")
    if payment_method is not None:
        _check_payment_method(payment_method)
    if confirm and payment_method is None:
        raise _missing_payment_method()
    automatic: dict[str, Any] | None = None
    if automatic_enabled is not None:
        automatic = {"enabled": automatic_enabled, "allow_redirects": allow_redirects or "always"}

    row = store.insert_payment_intent(
        conn,
        {
            "id": store.new_id("pi"),
            "created": ctx.now,
            "amount": amount,
            "currency": currency,
            "status": "requires_payment_method" if payment_method is None else "requires_confirmation",
            "payment_method": payment_method,
            "description": description,
            "receipt_email": receipt_email,
            "metadata": metadata,
            "automatic_payment_methods": automatic,
        },
    )
    record_event(conn, ctx, "payment_intent.created", render_payment_intent(row))
    if confirm:
        row = _attempt_payment(conn, ctx, row)
    return render_payment_intent(row, expand)


def retrieve_payment_intent(
    conn: sqlite3.Connection, ctx: RequestContext, params: Params, intent_id: str
) -> dict[str, Any]:
    expand = params.expand(PAYMENT_INTENT_EXPANDABLE)
    params.reject_unknown()
    return render_payment_intent(_intent_or_404(conn, intent_id), expand)


def list_payment_intents(conn: sqlite3.Connection, ctx: RequestContext, params: Params) -> dict[str, Any]:
    page_request = params.page()
    expand = params.expand(PAYMENT_INTENT_LIST_EXPANDABLE)
    params.reject_unknown()
    rows, has_more = _page(conn, "payment_intents", page_request)
    item_expand = frozenset(field.removeprefix("data.") for field in expand)
    return _list("/v1/payment_intents", [render_payment_intent(row, item_expand) for row in rows], has_more)


def confirm_payment_intent(
    conn: sqlite3.Connection, ctx: RequestContext, params: Params, intent_id: str
) -> dict[str, Any]:
    payment_method = params.text("payment_method")
    receipt_email = params.text("receipt_email", max_length=800)
    expand = params.expand(PAYMENT_INTENT_EXPANDABLE)
    params.reject_unknown()

    row = _intent_or_404(conn, intent_id)
    if row["status"] not in CONFIRMABLE:
        raise _unexpected_state(row, "confirm", ("requires_confirmation", "requires_payment_method", "requires_action"))
    if payment_method is not None:
        _check_payment_method(payment_method)
        row = store.update_payment_intent(conn, intent_id, payment_method=payment_method)
    if receipt_email is not None:
        _check_email(receipt_email)
        row = store.update_payment_intent(conn, intent_id, receipt_email=receipt_email)
    if row["payment_method"] is None:
        raise _missing_payment_method()
    return render_payment_intent(_attempt_payment(conn, ctx, row), expand)


def cancel_payment_intent(
    conn: sqlite3.Connection, ctx: RequestContext, params: Params, intent_id: str
) -> dict[str, Any]:
    reason = params.choice("cancellation_reason", CANCELLATION_REASONS)
    expand = params.expand(PAYMENT_INTENT_EXPANDABLE)
    params.reject_unknown()

    row = _intent_or_404(conn, intent_id)
    if row["status"] not in CANCELABLE:
        raise _unexpected_state(row, "cancel", CANCELABLE)
    row = store.update_payment_intent(
        conn, intent_id, status="canceled", canceled_at=ctx.now, cancellation_reason=reason
    )
    snapshot = render_payment_intent(row)
    record_event(conn, ctx, "payment_intent.canceled", snapshot)
    return render_payment_intent(row, expand)


def _attempt_payment(conn: sqlite3.Connection, ctx: RequestContext, row: sqlite3.Row) -> sqlite3.Row:
    """Charge the intent's payment method: succeed, or record the decline and raise CardError (402)."""
    payment_method = row["payment_method"]
    decline = DECLINING_PAYMENT_METHODS.get(payment_method)
    if decline is None:
        row = store.update_payment_intent(
            conn,
            row["id"],
            status="succeeded",
            last_payment_error=None,
            amount_received=row["amount"],
            charge_id=store.new_id("ch"),
            charge_created=ctx.now,
        )
        record_event(conn, ctx, "payment_intent.succeeded", render_payment_intent(row))
        return row

    payment_error = {
        "type": "card_error",
        "code": decline.code,
        "decline_code": decline.decline_code,
        "message": decline.message,
        "payment_method": {"id": payment_method, "object": "payment_method", "type": "card"},
    }
    # As on Stripe, a declined payment method is detached so the next confirm must supply a new one.
    row = store.update_payment_intent(
        conn, row["id"], status="requires_payment_method", payment_method=None, last_payment_error=payment_error
    )
    snapshot = render_payment_intent(row)
    record_event(conn, ctx, "payment_intent.payment_failed", snapshot)
    raise CardError(
        decline.message,
        code=decline.code,
        decline_code=decline.decline_code,
        extra={"payment_intent": snapshot, "payment_method": payment_error["payment_method"]},
    )


def _missing_payment_method() -> ApiError:
    return invalid_request(
        "You cannot confirm this PaymentIntent because it's missing a payment method. "
        "Specify a payment method with the `payment_method` parameter.",
        param="payment_method",
        code="payment_intent_unexpected_state",
    )


def _unexpected_state(row: sqlite3.Row, action: str, allowed: tuple[str, ...]) -> ApiError:
    return invalid_request(
        f"You cannot {action} this PaymentIntent because it has a status of {row['status']}. "
        f"Only a PaymentIntent with one of the following statuses may be {action}ed: {', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
    )


# --- Charges and refunds -----------------------------------------------------------------------------


def retrieve_charge(conn: sqlite3.Connection, ctx: RequestContext, params: Params, charge_id: str) -> dict[str, Any]:
    params.reject_unknown()
    row = store.payment_intent_by_charge(conn, charge_id)
    if row is None:
        raise no_such("charge", charge_id, param="id")
    return render_charge(row)


def create_refund(conn: sqlite3.Connection, ctx: RequestContext, params: Params) -> dict[str, Any]:
    intent_id = params.text("payment_intent")
    charge_id = params.text("charge")
    amount = params.integer("amount", minimum=1)
    reason = params.choice("reason", REFUND_REASONS)
    metadata = params.metadata()
    expand = params.expand(REFUND_EXPANDABLE)
    params.reject_unknown()

    if intent_id and charge_id:
        raise invalid_request(
            "You may only specify one of these parameters: charge, payment_intent.",
            param="payment_intent",
            code="parameters_exclusive",
        )
    if intent_id:
        intent = store.payment_intent(conn, intent_id)
        if intent is None:
            raise no_such("payment_intent", intent_id, param="payment_intent", status=400)
    elif charge_id:
        intent = store.payment_intent_by_charge(conn, charge_id)
        if intent is None:
            raise no_such("charge", charge_id, param="charge", status=400)
    else:
        raise invalid_request(
            "One of the following params should be provided for this request: payment_intent or charge.",
            code="parameter_missing",
        )
    if intent["charge_id"] is None:
        raise invalid_request(
            f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
            param="payment_intent",
            code="charge_not_refundable",
        )
    remaining = intent["amount_received"] - intent["amount_refunded"]
    if remaining <= 0:
        raise invalid_request(
            f"Charge {intent['charge_id']} has already been refunded.", code="charge_already_refunded"
        )
    refund_amount = remaining if amount is None else amount
    if refund_amount > remaining:
        raise invalid_request(
            f"Refund amount ({refund_amount}) is greater than unrefunded amount on charge ({remaining}).",
            param="amount",
            code="amount_too_large",
        )

    refund_id = store.new_id("re")
    store.insert_refund(
        conn,
        {
            "id": refund_id,
            "created": ctx.now,
            "payment_intent": intent["id"],
            "amount": refund_amount,
            "reason": reason,
            "metadata": metadata,
        },
    )
    intent = store.update_payment_intent(
        conn, intent["id"], amount_refunded=intent["amount_refunded"] + refund_amount
    )
    record_event(conn, ctx, "charge.refunded", render_charge(intent))
    return _refund_or_404(conn, refund_id, expand)


def list_refunds(conn: sqlite3.Connection, ctx: RequestContext, params: Params) -> dict[str, Any]:
    page_request = params.page()
    expand = params.expand(REFUND_LIST_EXPANDABLE)
    params.reject_unknown()
    rows, has_more = _page(conn, "refunds", page_request)
    item_expand = frozenset(field.removeprefix("data.") for field in expand)
    return _list("/v1/refunds", [_refund_or_404(conn, row["id"], item_expand) for row in rows], has_more)


def retrieve_refund(conn: sqlite3.Connection, ctx: RequestContext, params: Params, refund_id: str) -> dict[str, Any]:
    expand = params.expand(REFUND_EXPANDABLE)
    params.reject_unknown()
    return _refund_or_404(conn, refund_id, expand)


def _refund_or_404(conn: sqlite3.Connection, refund_id: str, expand: frozenset[str]) -> dict[str, Any]:
    row = store.refund(conn, refund_id)
    if row is None:
        raise no_such("refund", refund_id, param="id")
    return render_refund(conn, row, expand)
