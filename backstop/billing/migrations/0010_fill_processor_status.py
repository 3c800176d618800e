"""Step 2 of 2: what our books already say about each payment's status at the processor.

Every checkout we recorded as charged or fulfilled learnt "succeeded" from the processor (its charge answer, a
webhook, reconciliation or a lookup) at ``charged_at``; a refunded order learnt the refund at ``refunded_at``. Those
become the first statuses, marked as taken from our books, so the desk shows them from the start instead of "nothing
recorded yet"; the next answer from the processor replaces them. Declined checkouts are left out: the books keep a
decline code, not the processor's status.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

BATCH = 2000


def fill_processor_status(apps: Any, schema_editor: Any) -> None:
    attempts = apps.get_model("billing", "PurchaseAttempt")
    status = apps.get_model("billing", "ProcessorStatus")
    rows = (attempts.objects.filter(state__in=("charged", "fulfilled")).exclude(payment_id="")
            .values_list("pk", "payment_id", "amount_cents", "currency", "charged_at", "updated_at",
                         "order__status", "order__refunded_cents", "order__refunded_at")
            .order_by("pk"))
    batch = []
    for pk, payment_id, amount, currency, charged_at, updated_at, order_status, refunded, refunded_at in (
            rows.iterator(chunk_size=BATCH)):
        was_refunded = order_status == "refunded" and refunded_at is not None
        batch.append(status(
            payment_id=payment_id, attempt_id=pk, status="succeeded", amount_cents=amount, currency=currency,
            amount_refunded_cents=(refunded or 0) if was_refunded else 0,
            as_of=refunded_at if was_refunded else (charged_at or updated_at), learnt_from="books"))
        if len(batch) >= BATCH:
            status.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    status.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0009_processor_status"),
    ]

    operations = [
        migrations.RunPython(fill_processor_status, migrations.RunPython.noop, elidable=False),
    ]
