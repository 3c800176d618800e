"""The purchase workflow's steps: one call to the processor per try, always with the attempt's key."""

from __future__ import annotations

import logging
import time
from typing import Literal, NotRequired, TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backstop.billing import processor_status
from backstop.billing.audit import attempt_snapshot, audit
from backstop.billing.claims import release_plan_claim
from backstop.billing.models import (
    SETTLING_STATES,
    AttemptState,
    LearntFrom,
    PurchaseAttempt,
)
from backstop.billing.providers import CardDeclined, ProcessorPayment, RequestRefused, payment_processor
from backstop.lib.errors import ProviderError, ProviderThrottled

log = logging.getLogger(__name__)
# Stripe's status of a PaymentIntent whose confirmation the card declined: it waits for another payment method.
DECLINED_INTENT_STATUS = "requires_payment_method"


class ChargeOutcome(TypedDict):
    outcome: Literal["succeeded", "declined", "unknown", "settled"]
    payment: ProcessorPayment | None
    code: str
    error: str
    # How long the processor took to answer this call (absent in outcomes recorded before it was measured).
    processor_ms: NotRequired[float]
    # The processor's Retry-After (a 429 or 503): the next try waits at least this long (absent when it said nothing).
    retry_after: NotRequired[float]



def charge_attempt(*, attempt_id: int, try_number: int) -> ChargeOutcome:
    """One call to the processor, always with the attempt's idempotency key: never a second charge."""
    attempt = PurchaseAttempt.objects.select_related("product").get(pk=attempt_id)
    # A try that already called the processor is being run again: the process died mid-charge, and with it whatever
    # the buyer was waiting on (so their confirmation says sorry, whoever finishes the order).
    rerun = attempt.charge_calls >= try_number
    if attempt.state not in SETTLING_STATES:  # a webhook or reconciliation settled it already
        if rerun and not attempt.interrupted:
            PurchaseAttempt.objects.filter(pk=attempt.pk).update(interrupted=True)
        return {"outcome": "settled", "payment": None, "code": "", "error": ""}
    now = timezone.now()
    PurchaseAttempt.objects.filter(pk=attempt.pk, state__in=SETTLING_STATES).update(
        state=AttemptState.CHARGING, charge_calls=F("charge_calls") + 1, updated_at=now,
        charge_started_at=attempt.charge_started_at or now, interrupted=attempt.interrupted or rerun,
    )
    audit(actor="system:checkout", action="charge_requested", reference=attempt.reference,
          before=attempt_snapshot(attempt),
          after={"try": try_number, "idempotency_key": attempt.processor_key, "rerun_after_crash": rerun})
    started = time.perf_counter()
    outcome = _ask_processor(attempt)
    # Kept in the audit trail: what the processor itself cost a checkout (bench/checkout_latency.py reads it).
    outcome["processor_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return outcome


def _ask_processor(attempt: PurchaseAttempt) -> ChargeOutcome:
    try:
        payment = payment_processor().charge(
            amount=attempt.amount_cents, currency=attempt.currency, payment_method=attempt.payment_method,
            email=attempt.email, description=attempt.product.name, idempotency_key=attempt.processor_key,
            metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference, "email": attempt.email,
                      "product": attempt.product.code},
        )
    except CardDeclined as declined:
        if declined.payment_id:
            # A declined confirmation leaves Stripe's PaymentIntent waiting for another card.
            processor_status.record_payment(payment=ProcessorPayment(
                id=declined.payment_id, status=DECLINED_INTENT_STATUS, amount=attempt.amount_cents,
                currency=attempt.currency, created=timezone.now(), email=attempt.email, failure_code=declined.code,
            ), learnt_from=LearntFrom.CHARGE, attempt_id=attempt.pk)
        return {"outcome": "declined", "payment": None, "code": declined.code, "error": declined.message}
    except RequestRefused as refused:
        return {"outcome": "declined", "payment": None, "code": refused.code or "request_refused",
                "error": str(refused)}
    except ProviderThrottled as error:
        return {"outcome": "unknown", "payment": None, "code": "", "error": str(error),
                "retry_after": min(error.retry_after, float(settings.RETRY_AFTER_CAP_SECONDS))}
    except ProviderError as error:
        return {"outcome": "unknown", "payment": None, "code": "", "error": str(error)}
    processor_status.record_payment(payment=payment, learnt_from=LearntFrom.CHARGE, attempt_id=attempt.pk)
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
                      payment_id=charge["payment"].id, before=attempt_snapshot(attempt),
                      after={"state": AttemptState.CHARGED, "payment_id": charge["payment"].id,
                             "replayed_by_processor": charge["payment"].replayed,
                             "processor_ms": charge.get("processor_ms")})
        elif charge["outcome"] == "declined":
            moved = PurchaseAttempt.objects.move(
                attempt_id, from_states=SETTLING_STATES, to=AttemptState.DECLINED, decline_code=charge["code"],
                decline_message=charge["error"][:300], settled_at=now,
            )
            if moved:
                audit(actor="system:checkout", action="charge_declined", reference=attempt.reference,
                      before=attempt_snapshot(attempt), after={"state": AttemptState.DECLINED,
                                                                "code": charge["code"],
                                                                "processor_ms": charge.get("processor_ms")})
                release_plan_claim(attempt_id=attempt_id, actor="system:checkout", reason="declined")
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
                  before=attempt_snapshot(attempt), after={"state": AttemptState.IN_DOUBT,
                                                            "last_error": attempt.last_error})
