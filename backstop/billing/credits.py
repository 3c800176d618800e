"""Days of access added to a customer's running plan by support, once per key."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from backstop.accounts.models import Account
from backstop.billing.audit import audit
from backstop.billing.messages import (
    CREDIT_DAYS_OUT_OF_RANGE,
    CREDIT_NO_ACTIVE_PLAN,
)
from backstop.billing.models import (
    Credit,
    Entitlement,
    EntitlementState,
)

log = logging.getLogger(__name__)


class NotCreditable(Exception):
    """There is no plan to add days to, or the number of days is out of range."""



def active_plan(*, email: str, account: Account | None) -> Entitlement | None:
    """The customer's plan running now, the one a credit's days are added to (the latest to end, if several)."""
    return (Entitlement.objects.of_customer(email=email, account=account).filter(state=EntitlementState.ACTIVE)
            .select_related("order").order_by("-ends_at").first())


def grant_credit(*, email: str, account: Account | None, days: int, reason: str, actor: str, key: str) -> bool:
    """Add ``days`` to the customer's current plan. True when this call granted it; the same key again is a no-op."""
    if not 1 <= days <= settings.CREDIT_MAX_DAYS:
        raise NotCreditable(CREDIT_DAYS_OUT_OF_RANGE.format(max_days=settings.CREDIT_MAX_DAYS))
    entitlement = active_plan(email=email, account=account)
    if entitlement is None:
        raise NotCreditable(CREDIT_NO_ACTIVE_PLAN)
    try:
        with transaction.atomic():
            Credit.objects.create(key=key, entitlement=entitlement, days=days, reason=reason[:300], actor=actor)
            # Relative UPDATE: a refund or another credit landing at the same moment is not overwritten.
            Entitlement.objects.filter(pk=entitlement.pk).update(ends_at=F("ends_at") + dt.timedelta(days=days))
            ends_at = Entitlement.objects.values_list("ends_at", flat=True).get(pk=entitlement.pk)
            audit(actor=actor, action="credit_granted", reference=entitlement.order.reference,
                  payment_id=entitlement.order.payment_id, before={"ends_at": entitlement.ends_at.isoformat()},
                  after={"ends_at": ends_at.isoformat(), "days": days, "reason": reason[:300]})
    except IntegrityError:
        return False
    return True
