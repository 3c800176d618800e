"""The processor's webhook: signed events, each handled once, in any order.

The event row and the work it causes commit together, so a delivery that fails half-way is simply handled
again on the processor's retry, and a replay of a handled event finds its id and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from backstop.billing import fulfilment, refunds
from backstop.billing.models import FulfilledBy, OrderStatus, ProcessedWebhookEvent
from backstop.billing.providers import payment_from_object

log = logging.getLogger(__name__)
ACTOR = "system:webhook"


class BadSignature(Exception):
    pass


def verify_event(*, payload: bytes, signature: str) -> dict[str, Any]:
    """Stripe-Signature checked (HMAC and timestamp tolerance) by the official SDK."""
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, settings.STRIPE_WEBHOOK_SECRET, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise BadSignature(str(error)) from error
    data: dict[str, Any] = event.to_dict()
    return data


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
