"""Checkout: record the purchase attempt once per idempotency key, hand it to its workflow, wait for the answer.

Charges nothing itself: the purchase workflow (``workflows.purchase_workflow``) does, through ``charging``. The
hand-over starts that workflow at once under the attempt's own id, in this process when it runs the engine, else in a
worker woken for it (``run_purchase_starter``); the request then waits to be woken by the workflow once the buyer's
answer is in the rows (``wait_for_charge``). See docs/decisions.md, "A checkout starts its workflow at once".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Collection
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
    AttemptState,
    Entitlement,
    Product,
    PurchaseAttempt,
    purchase_workflow_id,
)
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.ratelimits.services import Limit, check_rate_limit
from backstop.runtime import dispatch, registry, wakeup
from backstop.runtime.engine import release_db_connections
from backstop.runtime.guarded import SWEEP_LIMIT, start_stranded

log = logging.getLogger(__name__)


CHECKOUT_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,96}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Wake-up topics (runtime.wakeup): a purchase handed over to a worker, and a checkout whose buyer has an answer.
PURCHASE_TOPIC = "purchase"
CHECKOUT_TOPIC = "checkout"
# The answers a buyer waits for: paid (fulfilled), declined, in doubt. "Charged" is not one: its order is moments away.
ANSWERED_STATES = (AttemptState.FULFILLED, AttemptState.DECLINED, AttemptState.IN_DOUBT)
STARTER_LOOP = "purchase-starter"
_starter_cycle = registry.cycle_lock(STARTER_LOOP)


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
    renewal: bool = False, renews: str = "", again: bool = False, shown_references: Collection[str] = (),
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
    claim, renewed = _claim_for(chosen, customer, account, renewal=renewal, renews=renews.strip(), again=again)
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
    product: Product, customer: str, account: Account | None, *, renewal: bool, renews: str, again: bool = False
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
    recent = None if again else claims.recent_extension(customer=customer, account=account, product=product)
    if recent is not None and recent.plan_claim:
        # Extended moments ago (Back, a reloaded page, another device): that extension is the answer; another year
        # is its own, explicit click ("again").
        return recent.plan_claim, recent.renews
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
    transaction.on_commit(lambda: hand_over_purchase(attempt.pk))
    return attempt


def hand_over_purchase(attempt_id: int) -> None:
    """Start the attempt's workflow now, under the id every other starter uses (so it runs once): in this process
    when it runs the engine; else in a worker, woken for it through the database; else (SQLite, no engine here) in
    the purchase queue, for the next look of a process that runs workflows."""
    from backstop.billing.workflows import purchase_workflow

    try:
        if dispatch.start_here(purchase_workflow, attempt_id, workflow_id=purchase_workflow_id(attempt_id)):
            return
        if wakeup.reaches_other_processes():
            wakeup.notify(PURCHASE_TOPIC, str(attempt_id))
            return
        enqueue_purchase(attempt_id)
    except Exception:  # a worker's starter, when it next looks, or the sweep starts it
        log.exception("could not hand over the purchase workflow of attempt %s; the safety net will", attempt_id)


def enqueue_purchase(attempt_id: int) -> None:
    from backstop.billing.workflows import purchase_workflow

    try:
        dispatch.enqueue(purchase_workflow, attempt_id, queue_name=PURCHASE_QUEUE,
                         workflow_id=purchase_workflow_id(attempt_id))
    except Exception:  # reconciliation restarts a recorded attempt whose workflow never started
        log.exception("could not enqueue the purchase workflow for attempt %s; reconciliation will", attempt_id)


def _start_here(attempt_id: int) -> None:
    from backstop.billing.workflows import purchase_workflow

    dispatch.start_here(purchase_workflow, attempt_id, workflow_id=purchase_workflow_id(attempt_id))


def run_purchase_starter(stop: threading.Event) -> None:
    """A loop in every process that runs workflows (registered by BillingConfig): start the workflow of each purchase
    that a process without the engine (a web process beside its worker) handed over, the moment its wake-up arrives.

    Every worker hears each wake-up and starts the same workflow id: DBOS runs it once. Wake-ups sent while no process
    listened (every worker restarting) are made up for when this loop starts and whenever its listening connection
    comes back: it then starts every attempt still waiting for its workflow. The sweep stays the last safety net.
    """
    with wakeup.subscribe(PURCHASE_TOPIC) as handed_over:
        while not stop.is_set():
            keys, missed = handed_over.wait(timeout=1.0)
            with _starter_cycle:
                if stop.is_set():  # the engine stopped while a hold kept this cycle waiting
                    return
                try:
                    for key in sorted(keys):
                        if key.isdigit():
                            _start_here(int(key))
                    if missed:
                        restart_unstarted_purchases(grace_seconds=0, start=_start_here)
                except Exception:  # the starter must outlive a database hiccup; the sweep covers what it missed
                    log.exception("purchase starter failed; the sweep starts what it could not")
                finally:
                    release_db_connections()


def restart_unstarted_purchases(*, grace_seconds: float, start: Callable[[int], None] = enqueue_purchase) -> int:
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
        start=lambda attempt_id, _: start(attempt_id),
    )


def wait_for_charge(*, attempt: PurchaseAttempt, seconds: float) -> PurchaseAttempt:
    """Wait up to ``seconds`` for the buyer's answer (paid, declined or in doubt), so that a healthy checkout answers
    "paid" in one response. The purchase workflow wakes this wait the moment the answer is in the rows
    (``announce_answer``); the rows are read again every so often anyway, for an answer that came another way."""

    def answered() -> bool:
        # The state alone (one column) at each look; the whole row once, at the end.
        return PurchaseAttempt.objects.filter(pk=attempt.pk).values_list("state", flat=True).first() in ANSWERED_STATES

    if seconds > 0:
        wakeup.wait_until(answered, topic=CHECKOUT_TOPIC, key=str(attempt.pk), timeout=seconds)
        attempt.refresh_from_db()
    return attempt


def announce_answer(attempt_id: int) -> None:
    """The purchase workflow has the buyer's answer in the rows: wake whoever waits for it, in any process."""
    try:
        wakeup.notify(CHECKOUT_TOPIC, str(attempt_id))
    except Exception:  # the waiter reads the rows again shortly anyway
        log.warning("could not announce the answer of attempt %s", attempt_id, exc_info=True)
