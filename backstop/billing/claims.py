"""One purchase per intent: while a customer has a plan running, or a payment for it under way, a new checkout of
that plan charges nothing and answers with the purchase they already have.

The rule is a unique column, ``PurchaseAttempt.plan_claim``. The transaction that records an attempt sets it to
"<customer's email key>|<product>", so of two checkouts at the same moment (other idempotency keys, tabs, devices,
the API) the database records one and the other finds it; the check before the insert only picks the answer. A
claim is released (set NULL by a conditional UPDATE, audited) when it stops standing for a purchase: the attempt
declined or found not charged, its order refunded in full, or its plan ended (found by the next checkout, which
releases it in the transaction that records the new one). An explicit extension claims the plan period it extends
instead ("renew|<entitlement>|<its end>"): a double click on "Extend", or a second tab, is one charge too, and the
next period can be extended once this one is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.billing.audit import audit
from backstop.billing.models import (
    OPEN_ATTEMPT_STATES,
    AttemptState,
    Entitlement,
    EntitlementState,
    Order,
    OrderStatus,
    Product,
    PurchaseAttempt,
)
from backstop.lib.email_identity import email_key
from backstop.notify import services as notify

log = logging.getLogger(__name__)

RENEWAL = "renew"
# At most one "you already have it" email per purchase in this many seconds, however often its address is typed.
TELL_OWNER_EVERY_SECONDS = 15 * 60


@dataclass(frozen=True)
class ExistingPurchase:
    """What a checkout answers with instead of a charge: the purchase the customer already has."""

    attempt: PurchaseAttempt  # its page (/checkout/<reference>) is the link
    under_way: bool  # a payment still being processed; otherwise paid and running
    until: dt.datetime | None  # the end of the customer's plan, extensions bought included (None while under way)
    renewal: bool  # the checkout was an extension, and this one of the same period is held
    shown: bool  # the caller may see it: the signed-in owner, or the browser that bought it


def customer_key(*, address: str, account: Account | None) -> str:
    """Who is buying: an account's email key, else the typed address's."""
    if account is not None and account.email_key:
        return str(account.email_key)
    return email_key(address)


def plan_claim(*, customer: str, product: Product) -> str:
    return f"{customer}|{product.code}"


def period_of(entitlement: Entitlement) -> str:
    """The plan period an extension is tied to, as the checkout page shows it and the claim names it."""
    return f"{entitlement.pk}|{entitlement.ends_at.isoformat()}"


def renewal_claim(period: str) -> str:
    return f"{RENEWAL}|{period}"


def _owned_by(customer: str, account: Account | None) -> Q:
    owner = Q(email_key=customer) if customer else Q(pk__in=[])
    return (owner | Q(account=account)) if account is not None else owner


def running_plan(*, customer: str, account: Account | None, product: Product) -> Entitlement | None:
    """The customer's plan of this product that runs latest (an extension bought ahead included), if one runs."""
    return (Entitlement.objects.filter(_owned_by(customer, account), product=product, state=EntitlementState.ACTIVE,
                                       ends_at__gt=timezone.now())
            .exclude(order__status=OrderStatus.REFUNDED).select_related("order__attempt__product")
            .order_by("-ends_at").first())


def _why_over(attempt: PurchaseAttempt) -> str:
    """Why the claim no longer stands for a purchase, or "" while it does (under way, or paid and running)."""
    if attempt.state in OPEN_ATTEMPT_STATES:
        return ""
    if attempt.state == AttemptState.DECLINED:
        return "declined"
    order = Order.objects.select_related("entitlement").filter(attempt=attempt).first()
    if order is None:  # fulfilled while its order is being rebuilt (reconciliation): the money is in
        return ""
    if order.status == OrderStatus.REFUNDED:
        return "refunded"
    entitlement = getattr(order, "entitlement", None)
    if entitlement is None or entitlement.state != EntitlementState.ACTIVE or entitlement.ends_at <= timezone.now():
        return "plan ended"
    return ""


def release_plan_claim(*, attempt_id: int, actor: str, reason: str) -> bool:
    """The attempt no longer stands for a purchase: its plan may be bought again. Once; True for the caller that
    released it. Call it inside the transaction of the change that ended it (decline, refund)."""
    row = PurchaseAttempt.objects.filter(pk=attempt_id).values_list("plan_claim", "reference", "payment_id").first()
    if row is None or row[0] is None:
        return False
    claim, reference, payment_id = row
    if not PurchaseAttempt.objects.filter(pk=attempt_id, plan_claim=claim).update(plan_claim=None):
        return False  # released by someone else at this moment
    audit(actor=actor, action="plan_claim_released", reference=reference, payment_id=payment_id,
          before={"plan_claim": claim}, after={"plan_claim": None, "reason": reason})
    return True


def existing_purchase(
    *, claim: str, customer: str, account: Account | None, product: Product, shown_references: Collection[str],
    release: bool, actor: str = "",
) -> ExistingPurchase | None:
    """The purchase that ``claim`` (or, for a new plan, the customer's running plan) already stands for.

    With ``release``, a holder whose purchase is over (declined, refunded, plan ended) is released on the way, in the
    caller's transaction, so the caller may record the next one.
    """
    renewal = claim.startswith(f"{RENEWAL}|")
    holder = PurchaseAttempt.objects.select_related("product").filter(plan_claim=claim).first()
    if holder is not None and not _belongs_to(holder, customer, account):
        return None  # a period of another customer's plan, named by a page we did not render
    if holder is not None and (reason := _why_over(holder)):
        if release:
            release_plan_claim(attempt_id=holder.pk, actor=actor, reason=reason)
        holder = None
    plan = None if renewal and holder is None else running_plan(customer=customer, account=account, product=product)
    if holder is None and plan is not None:
        # Paid and running without a claim: bought before claims existed, or declined and then paid after all.
        holder = plan.order.attempt
    if holder is None:
        return None
    under_way = holder.state != AttemptState.FULFILLED or not Order.objects.filter(attempt=holder).exists()
    return ExistingPurchase(
        attempt=holder, under_way=under_way, until=plan.ends_at if plan is not None and not under_way else None,
        renewal=renewal,
        shown=account is not None or holder.reference in shown_references,
    )


def _belongs_to(attempt: PurchaseAttempt, customer: str, account: Account | None) -> bool:
    if account is not None and attempt.account_id == account.pk:
        return True
    return bool(customer) and attempt.email_key == customer


def held_purchase(*, account: Account, product: Product) -> ExistingPurchase | None:
    """For the checkout page of a signed-in customer: what they hold of this plan, if anything (reads only)."""
    customer = customer_key(address=account.email, account=account)
    recent = recent_extension(customer=customer, account=account, product=product)
    claim = recent.plan_claim if recent is not None and recent.plan_claim else plan_claim(customer=customer,
                                                                                          product=product)
    return existing_purchase(claim=claim, customer=customer, account=account, product=product, shown_references=(),
                             release=False)


# An extension recorded this recently is shown, not sold again (Back, a reloaded page, a second device), unless the
# customer asks for another year in so many words ("again").
RECENT_EXTENSION = dt.timedelta(minutes=10)


def recent_extension(*, customer: str, account: Account | None, product: Product) -> PurchaseAttempt | None:
    """The customer's latest extension of this plan recorded within RECENT_EXTENSION that still stands (its claim
    held: under way, or paid and running)."""
    return (PurchaseAttempt.objects.filter(_owned_by(customer, account), product=product, renews__isnull=False,
                                           plan_claim__isnull=False,
                                           created_at__gte=timezone.now() - RECENT_EXTENSION)
            .order_by("-id").first())


def extension_offer(*, account: Account, product: Product) -> Entitlement | None:
    """The plan period a signed-in customer may extend (the one that ends last), if one runs."""
    return running_plan(customer=customer_key(address=account.email, account=account), account=account,
                        product=product)


def plan_period(*, attempt: PurchaseAttempt, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """When the plan an order buys runs: from now, or, for an extension, from the end of the period it extends (no
    overlapping years). A period refunded meanwhile has ended, so its extension starts now."""
    starts = now
    if attempt.renews_id is not None:
        extended = (Entitlement.objects.filter(pk=attempt.renews_id, state=EntitlementState.ACTIVE)
                    .values_list("ends_at", flat=True).first())
        if extended is not None and extended > now:
            starts = extended
    return starts, starts + dt.timedelta(days=attempt.product.period_days)


def tell_owner(*, existing: ExistingPurchase, to: str, account: Account | None) -> None:
    """Someone who may not be the owner typed the address of a customer who already has this plan: the answer they
    see names nothing, and the owner gets the order's link by email (at most one per purchase every 15 minutes)."""
    attempt = existing.attempt
    window = int(timezone.now().timestamp() // TELL_OWNER_EVERY_SECONDS)
    with transaction.atomic():
        message = notify.create_email(
            account=account, kind="purchase_exists", key=f"purchase-exists:{attempt.pk}:{window}", to=to,
            context={"product": attempt.product, "reference": attempt.reference, "under_way": existing.under_way,
                     "until": existing.until, "renewal": existing.renewal,
                     "status_url": f"{settings.BASE_URL}/checkout/{attempt.reference}",
                     "checkout_url": f"{settings.BASE_URL}/checkout?product={attempt.product.code}"},
        )
        notify.send_soon(message)
