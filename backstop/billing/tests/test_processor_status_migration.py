"""The processor's statuses start from what our books already say: a database from before them shows each charged
payment as "succeeded" (and a refunded one with its refund) as of when we learnt it, taken from our books."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backstop.billing.models import ProcessorStatus

BEFORE = ("billing", "0008_fill_plan_claim")  # the migration before ProcessorStatus (0009)


def _migrate(targets: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([(app, name) for app, name in targets if name is not None]).apps


def _latest() -> list[tuple[str, str | None]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _id_sequences() -> dict[str, int]:
    """SQLite's AUTOINCREMENT counters (empty on PostgreSQL, whose sequences a migration does not touch)."""
    if connection.vendor != "sqlite":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, seq FROM sqlite_sequence")
        return dict(cursor.fetchall())


def _restore_id_sequences(before: dict[str, int]) -> None:
    # Going back and forth remakes a SQLite table, and an empty one restarts its ids at 1: a later test's checkout would
    # then get the id, and so the workflow id (purchase:<id>), of an earlier test's finished purchase, and never run.
    with connection.cursor() as cursor:
        for name, seq in before.items():
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s AND seq < %s", [seq, name, seq])
            if not cursor.rowcount:
                cursor.execute("INSERT INTO sqlite_sequence (name, seq) SELECT %s, %s WHERE NOT EXISTS "
                               "(SELECT 1 FROM sqlite_sequence WHERE name = %s)", [name, seq, name])


@pytest.mark.django_db(transaction=True)
def test_it_fills_each_charged_payments_status_from_our_books() -> None:
    charged_at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    refunded_at = dt.datetime(2026, 3, 4, 16, 0, tzinfo=dt.UTC)
    sequences = _id_sequences()
    old = _migrate([BEFORE])
    try:
        product = old.get_model("billing", "Product").objects.get_or_create(
            code="annual", defaults={"name": "Annual", "amount_cents": 24900, "currency": "usd",
                                     "period_days": 365})[0]
        attempts = old.get_model("billing", "PurchaseAttempt").objects
        orders = old.get_model("billing", "Order").objects

        def attempt(key: str, state: str, payment_id: str = "") -> Any:
            return attempts.create(idempotency_key=key, request_fingerprint="x", product=product, amount_cents=24900,
                                   currency="usd", email=f"{key}@example.com", email_key=f"{key}@example.com",
                                   payment_method="pm_card_visa", state=state, payment_id=payment_id,
                                   charged_at=charged_at if payment_id else None)

        paid = attempt("paid", "fulfilled", "pi_paid")
        refunded = attempt("refunded", "fulfilled", "pi_refunded")
        charged = attempt("charged", "charged", "pi_charged")
        attempt("declined", "declined", "pi_declined")
        attempt("recorded", "recorded")
        for row, status in ((paid, "paid"), (refunded, "refunded")):
            orders.create(reference=row.reference, attempt=row, product=product, email=row.email,
                          email_key=row.email_key, amount_cents=24900, currency="usd", payment_id=row.payment_id,
                          payment_created_at=charged_at, status=status, fulfilled_by="checkout",
                          refunded_cents=24900 if status == "refunded" else 0,
                          refunded_at=refunded_at if status == "refunded" else None)
    finally:
        _migrate(_latest())
        _restore_id_sequences(sequences)

    rows = {row.payment_id: row for row in ProcessorStatus.objects.all()}
    assert set(rows) == {"pi_paid", "pi_refunded", "pi_charged"}  # a decline code is not the processor's status
    assert {p: (r.status, r.amount_refunded_cents, r.as_of, r.learnt_from) for p, r in rows.items()} == {
        "pi_paid": ("succeeded", 0, charged_at, "books"),
        "pi_refunded": ("succeeded", 24900, refunded_at, "books"),
        "pi_charged": ("succeeded", 0, charged_at, "books"),
    }
    assert rows["pi_paid"].attempt_id == paid.pk and rows["pi_charged"].attempt_id == charged.pk
