"""Checkout: record the purchase attempt once per idempotency key and hand it to its durable workflow.

Charges nothing itself: the purchase workflow (``workflows.purchase_workflow``) does, through ``charging``.
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

from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.accounts.validation import clean_email
from backstop.billing.audit import attempt_snapshot, audit
from backstop.billing.messages import (
    FIELD_ERRORS,
)
from backstop.billing.models import (
    PURCHASE_QUEUE,
    SETTLING_STATES,
    AttemptState,
    Product,
    PurchaseAttempt,
    purchase_workflow_id,
)
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.ratelimits.services import Limit, check_rate_limit
from backstop.runtime import dispatch
from backstop.runtime.guarded import SWEEP_LIMIT, start_stranded

log = logging.getLogger(__name__)


CHECKOUT_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,96}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different purchase."""



@dataclass(frozen=True)
class CheckoutResult:
    attempt: PurchaseAttempt
    replayed: bool



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
          after=attempt_snapshot(attempt))
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
