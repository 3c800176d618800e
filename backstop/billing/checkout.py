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
from collections.abc import Collection
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.accounts.validation import clean_email
from backstop.billing import claims
from backstop.billing.audit import attempt_snapshot, audit
from backstop.billing.claims import ExistingPurchase
from backstop.billing.messages import (
    FIELD_ERRORS,
)
from backstop.billing.models import (
    PURCHASE_QUEUE,
    SETTLING_STATES,
    AttemptState,
    Entitlement,
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
    # Set when nothing was recorded or charged: the customer already has this purchase (``attempt`` is it).
    already: ExistingPurchase | None = None


# Rounds of "record, or find who holds the claim": a holder released at that very moment costs one more.
_CLAIM_ROUNDS = 3


def start_checkout(
    *, product: str, email: str, account: Account | None, payment_method: str, idempotency_key: str, ip: str,
    renewal: bool = False, renews: str = "", shown_references: Collection[str] = (),
) -> CheckoutResult:
    """Record the purchase attempt (once per idempotency key) and queue its durable workflow. Charges nothing.

    One purchase per intent (``claims``): while the customer has this plan running or a payment for it under way,
    nothing is recorded and the result's ``already`` is that purchase; the owner is emailed its link unless the
    caller may see it (signed in, or its reference is in ``shown_references``: this browser bought it). ``renewal``
    extends the signed-in customer's running plan by one period, once per period (``renews``: the period the page
    showed, ``claims.period_of``; empty for the one running now).
    """
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
    if renewal and account is None:
        errors["renewal"] = FIELD_ERRORS["renewal_sign_in"]
    if errors or chosen is None:
        raise InvalidInput(errors)
    buyer = account or Account.objects.by_email_key(email_key(address))
    customer = claims.customer_key(address=address, account=account)
    request = [chosen.code, email_key(address), buyer.pk if buyer else None, method]
    # A renewal is another request than a purchase under the same key (a purchase's fingerprint is unchanged).
    fingerprint = hashlib.sha256(json.dumps([*request, "renewal"] if renewal else request).encode()).hexdigest()
    existing = PurchaseAttempt.objects.by_idempotency_key(key)
    if existing is not None:
        return _replay(existing, fingerprint)
    check_rate_limit(action="checkout", limit=CHECKOUT_LIMIT, ip=ip, email_key=email_key(address))
    claim, renewed = _claim_for(chosen, customer, account, renewal=renewal, renews=renews.strip())
    intent = _Intent(product=chosen, email=address, account=buyer, method=method, key=key, fingerprint=fingerprint,
                     claim=claim, renews=renewed, customer=customer, caller=account,
                     shown_references=shown_references)
    for _ in range(_CLAIM_ROUNDS):
        try:
            recorded = _record_attempt(intent)
        except IntegrityError:
            # The same key at the same moment (the other request recorded it), or the same claim: the next round
            # finds the attempt that holds it.
            same_key = PurchaseAttempt.objects.by_idempotency_key(key)
            if same_key is not None:
                return _replay(same_key, fingerprint)
            continue
        if isinstance(recorded, PurchaseAttempt):
            return CheckoutResult(attempt=recorded, replayed=False)
        same_key = PurchaseAttempt.objects.by_idempotency_key(key)
        if same_key is not None:  # the same key at the same moment: what holds the claim is this very request
            return _replay(same_key, fingerprint)
        if not recorded.shown:
            claims.tell_owner(existing=recorded, to=buyer.email if buyer is not None else recorded.attempt.email,
                              account=buyer)
        return CheckoutResult(attempt=recorded.attempt, replayed=False, already=recorded)
    raise RuntimeError(f"checkout of {claim!r} neither recorded nor found its claim's holder")


def _claim_for(
    product: Product, customer: str, account: Account | None, *, renewal: bool, renews: str
) -> tuple[str, Entitlement | None]:
    """The claim this checkout takes, and for an extension the plan period it extends."""
    if not renewal:
        return claims.plan_claim(customer=customer, product=product), None
    assert account is not None  # refused above: only a signed-in customer extends a plan
    plan = claims.extension_offer(account=account, product=product)
    if plan is None:
        raise InvalidInput({"renewal": FIELD_ERRORS["renewal_nothing_to_extend"]})
    if renews and renews != claims.period_of(plan):
        # The page showed another period: that extension was bought meanwhile (another tab) or the plan changed.
        shown = claims.existing_purchase(claim=claims.renewal_claim(renews), customer=customer, account=account,
                                         product=product, shown_references=(), release=False)
        if shown is None:
            raise InvalidInput({"renewal": FIELD_ERRORS["renewal_plan_changed"]})
        return claims.renewal_claim(renews), shown.attempt.renews
    return claims.renewal_claim(claims.period_of(plan)), plan


def _replay(attempt: PurchaseAttempt, fingerprint: str) -> CheckoutResult:
    if attempt.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused
    return CheckoutResult(attempt=attempt, replayed=True)


@dataclass(frozen=True)
class _Intent:
    product: Product
    email: str
    account: Account | None  # the buyer's account (signed in, or the one the typed address names)
    method: str
    key: str
    fingerprint: str
    claim: str
    renews: Entitlement | None
    customer: str
    caller: Account | None  # the signed-in account, if any
    shown_references: Collection[str]


@transaction.atomic
def _record_attempt(intent: _Intent) -> PurchaseAttempt | ExistingPurchase:
    """Record the attempt with its claim, or find the purchase the claim already stands for. The unique claim is
    what makes two simultaneous checkouts one: the check before the insert only chooses the answer."""
    held = claims.existing_purchase(
        claim=intent.claim, customer=intent.customer, account=intent.caller, product=intent.product,
        shown_references=intent.shown_references, release=True, actor=f"buyer:{intent.email}",
    )
    if held is not None:
        return held
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=intent.key, request_fingerprint=intent.fingerprint, product=intent.product,
        amount_cents=intent.product.amount_cents, currency=intent.product.currency, email=intent.email,
        account=intent.account, payment_method=intent.method, plan_claim=intent.claim, renews=intent.renews,
    )
    audit(actor=f"buyer:{intent.email}", action="checkout_recorded", reference=attempt.reference,
          after=attempt_snapshot(attempt) | {"plan_claim": intent.claim})
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
