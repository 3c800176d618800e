"""The processor's webhook: signed events, each handled once, in any order.

The event row and the work it causes commit together, so a delivery that fails half-way is simply handled
again on the processor's retry, and a replay of a handled event finds its id and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.billing import fulfilment, processor_status, refunds
from backstop.billing.models import FulfilledBy, LearntFrom, OrderStatus, ProcessedWebhookEvent
from backstop.billing.providers import payment_from_object

log = logging.getLogger(__name__)
ACTOR = "system:webhook"


class BadSignature(Exception):
    pass


class MalformedEvent(Exception):
    """A correctly signed body that is not an event we can read (not JSON, or not an event's shape)."""


def verify_event(*, payload: bytes, signature: str) -> dict[str, Any]:
    """Stripe-Signature checked by the official SDK (HMAC, and a timestamp no older than the tolerance), and here
    a timestamp no further in the future than the tolerance, which the SDK does not check: a signed event dated
    ahead would stay "fresh" long after it was made, and a replay window is only as short as both of its ends."""
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    try:
        stripe.WebhookSignature.verify_header(payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance)
    except stripe.SignatureVerificationError as error:
        raise BadSignature(str(error)) from error
    signed_at = _signed_at(signature)
    if signed_at > time.time() + tolerance:
        raise BadSignature(f"the signature's timestamp {signed_at} is more than {tolerance} s in the future")
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=tolerance)
        data: dict[str, Any] = event.to_dict()
    except (ValueError, TypeError, AttributeError) as error:  # signed, but not JSON or not an object
        raise MalformedEvent(str(error)) from error
    body = data.get("data")
    if not (isinstance(data.get("id"), str) and data["id"] and isinstance(data.get("type"), str)
            and isinstance(body, dict) and isinstance(body.get("object"), dict)):
        raise MalformedEvent("not a processor event: it needs an id, a type and data.object")
    return data


def _signed_at(signature: str) -> int:
    """The ``t=`` of a Stripe-Signature header the SDK has just verified (so it is there and a number)."""
    for item in signature.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.strip().isdigit():
            return int(value)
    raise BadSignature("the signature has no timestamp")


def handle_payment_event(*, payload: bytes, signature: str) -> str:
    """Returns what was done, for the response body and the log."""
    event = verify_event(payload=payload, signature=signature)
    try:
        with transaction.atomic():
            record, created = ProcessedWebhookEvent.objects.get_or_create(
                event_id=str(event["id"]), defaults={"type": str(event.get("type", ""))}
            )
            if not created:
                return "duplicate: already handled"
            outcome = _apply(event)
            ProcessedWebhookEvent.objects.filter(pk=record.pk).update(
                outcome=outcome[:200], payment_id=str(event.get("data", {}).get("object", {}).get("id", ""))[:100]
            )
    except IntegrityError:  # the same event delivered twice at once: the other delivery handled it
        return "duplicate: handled concurrently"
    return outcome


def _apply(event: dict[str, Any]) -> str:
    kind = str(event.get("type", ""))
    obj = event.get("data", {}).get("object", {})
    _record_status(kind, obj, said_at=_event_time(event))
    if kind == "payment_intent.succeeded":
        payment = payment_from_object(obj)
        try:
            filled = fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.WEBHOOK, actor=ACTOR)
        except fulfilment.UnmatchedPayment:
            fulfilment.report_unmatched_payment(payment=payment)
            return "succeeded payment matches no checkout: reported to support"
        if filled.problem:
            return f"not fulfilled: {filled.problem}"
        if filled.created and filled.order is not None and filled.order.status == OrderStatus.REFUNDED:
            return "order recorded refunded: the payment was refunded before it"
        return "order fulfilled" if filled.created else "order already existed"
    if kind in ("payment_intent.payment_failed", "payment_intent.canceled"):
        settled = fulfilment.settle_declined_payment(payment=payment_from_object(obj), actor=ACTOR)
        return "checkout declined" if settled else "nothing to change"
    if kind == "charge.refunded":
        # The charge's refunded total (events may arrive in any order; an older, smaller total is not news). Kept
        # when the order does not exist yet, and applied when it appears.
        refund = refunds.record_refund_from_processor(
            payment_id=str(obj.get("payment_intent", "")), amount_refunded=int(obj.get("amount_refunded", 0)),
            actor=ACTOR,
        )
        return {"refunded": "order marked refunded", "partial": "partial refund sent to support",
                "unchanged": "nothing to change", "kept": "refund kept until the order exists"}[refund]
    return f"ignored {kind}"


def _event_time(event: dict[str, Any]) -> dt.datetime:
    """When the processor said it: the event's creation time (deliveries arrive late and out of order)."""
    created = event.get("created")
    return dt.datetime.fromtimestamp(int(created), tz=dt.UTC) if isinstance(created, int) else timezone.now()


def _record_status(kind: str, obj: dict[str, Any], *, said_at: dt.datetime) -> None:
    """Every payment event tells us the payment's status at the processor at the event's time: the desk shows it."""
    # `payment_intent.created` only shows where the payment started, in the same second as its outcome.
    if kind.startswith("payment_intent.") and kind != "payment_intent.created" and obj.get("id"):
        processor_status.record_payment(payment=payment_from_object(obj), learnt_from=LearntFrom.WEBHOOK,
                                        as_of=said_at)
    elif kind == "charge.refunded":
        processor_status.record_refund(
            payment_id=str(obj.get("payment_intent") or ""), amount=int(obj.get("amount", 0)),
            currency=str(obj.get("currency", "")), amount_refunded=int(obj.get("amount_refunded", 0)),
            as_of=said_at, learnt_from=LearntFrom.WEBHOOK)
