"""Step 2 of 2: a claim for every purchase that would block a new checkout of its plan today.

Checkouts under way (recorded, charging, charged, in doubt, or fulfilled while their order is rebuilt) claim first,
oldest first; then paid plans still running, the one that ends last first. One claim per customer and plan: a
customer who already holds two plans (the double charge this column ends) has the later one claimed, and the other
stays NULL (it keeps its access; a new checkout finds the customer's running plan either way). Rows without an email
key (left for a person by the key's change) claim nothing unless they have an account.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.utils import timezone

IN_FLIGHT = ("recorded", "charging", "charged", "in_doubt")


def fill_plan_claim(apps: Any, schema_editor: Any) -> None:
    attempts = apps.get_model("billing", "PurchaseAttempt").objects
    entitlements = apps.get_model("billing", "Entitlement").objects
    now = timezone.now()
    in_flight = attempts.filter(state__in=IN_FLIGHT) | attempts.filter(state="fulfilled", order__isnull=True)
    running = (entitlements.filter(state="active", ends_at__gt=now).exclude(order__status="refunded")
               .order_by("-ends_at").values_list("order__attempt_id", flat=True))
    paid = {pk: n for n, pk in enumerate(running)}
    ordered = [*in_flight.order_by("id").select_related("product", "account"),
               *sorted(attempts.filter(pk__in=list(paid)).select_related("product", "account"),
                       key=lambda attempt: paid[attempt.pk])]
    taken: set[str] = set()
    for attempt in ordered:
        customer = attempt.account.email_key if attempt.account_id else attempt.email_key
        claim = f"{customer}|{attempt.product.code}"
        if not customer or claim in taken:
            continue
        taken.add(claim)
        attempts.filter(pk=attempt.pk, plan_claim__isnull=True).update(plan_claim=claim)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_purchase_plan_claim"),
    ]

    operations = [
        migrations.RunPython(fill_plan_claim, migrations.RunPython.noop, elidable=False),
    ]
