"""Reconciliation against a real fakepay process: both directions, in-doubt checkouts, watermark, command."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import time
from typing import Any

from dbos import DBOS
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from backstop.attention.models import AttentionKind, AttentionRecord, Harm
from backstop.billing import fulfilment, reconcile
from backstop.billing.models import (
    NOT_CHARGED,
    AttemptState,
    AuditEntry,
    Entitlement,
    Order,
    PurchaseAttempt,
    ReconciliationWatermark,
)
from backstop.billing.providers import StripePayments
from backstop.billing.reconcile import WATERMARK, reconcile_payments
from backstop.billing.tests.conftest import annual_plan, buy, mailbox, settled, stripe_client
from backstop.billing.workflows import reconcile_workflow
from backstop.fakepay.store import insert_payment_intents_bulk
from backstop.notify.models import Message
from conftest import FAST_ENV, ROOT, wait_for


def _charge_at_processor(attempt: PurchaseAttempt) -> str:
    """What a checkout that died mid-charge leaves behind: the processor took the money, we wrote nothing."""
    payment = stripe_client().charge(
        amount=attempt.amount_cents, currency=attempt.currency, payment_method="pm_card_visa", email=attempt.email,
        description="Backstop annual plan", idempotency_key=attempt.processor_key,
        metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference, "email": attempt.email},
    )
    return payment.id


def _in_doubt_attempt(email: str) -> PurchaseAttempt:
    """A checkout whose charge never got a clear answer (recorded straight, without running its workflow)."""
    return PurchaseAttempt.objects.create(
        idempotency_key=f"doubt-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa", state=AttemptState.IN_DOUBT,
    )


def test_it_rebuilds_an_order_whose_row_was_lost_without_a_second_email(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("ann@example.com"))
    wait_for(lambda: mailbox("ann@example.com"), message="no confirmation email")
    Order.objects.filter(attempt=attempt).delete()  # the entitlement goes with it
    assert Entitlement.objects.count() == 0

    summary = reconcile_payments(actor="test", full=True)

    assert summary.orders_recreated == 1
    assert summary.payments_seen == 1
    order = Order.objects.get(attempt=attempt)
    assert order.payment_id == attempt.payment_id
    assert order.fulfilled_by == "reconciliation"
    assert Entitlement.objects.filter(order=order, state="active").count() == 1
    assert Message.objects.filter(key=fulfilment.confirmation_key(attempt.reference)).count() == 1
    assert len(mailbox("ann@example.com")) == 1
    # Nothing left to do: a second run finds the books agree.
    again = reconcile_payments(actor="test", full=True)
    assert (again.orders_recreated, again.orders_matched, again.payments_unmatched) == (0, 1, 0)


def test_it_fulfils_a_charge_the_checkout_never_recorded_and_apologises(engine_db: str, processor: Any) -> None:
    attempt = _in_doubt_attempt("bob@example.com")
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.CHARGING, charge_calls=1)
    payment_id = _charge_at_processor(attempt)

    summary = reconcile_payments(actor="test")

    attempt.refresh_from_db()
    assert attempt.state == AttemptState.FULFILLED
    assert attempt.payment_id == payment_id
    assert summary.in_doubt_charged == 1
    mail = wait_for(lambda: mailbox("bob@example.com"), message="the buyer was not told")
    assert len(mail) == 1 and "You were charged once" in mail[0].subject


def test_it_tells_an_in_doubt_buyer_the_truth_either_way(engine_db: str, processor: Any) -> None:
    charged = _in_doubt_attempt("cat@example.com")
    payment_id = _charge_at_processor(charged)
    never_charged = _in_doubt_attempt("dan@example.com")

    summary = reconcile_payments(actor="test")

    assert (summary.in_doubt_charged, summary.in_doubt_not_charged) == (1, 1)
    charged.refresh_from_db()
    assert charged.state == AttemptState.FULFILLED
    assert Order.objects.get(payment_id=payment_id).attempt_id == charged.pk
    never_charged.refresh_from_db()
    assert (never_charged.state, never_charged.decline_code) == (AttemptState.DECLINED, NOT_CHARGED)
    assert not Order.objects.filter(attempt=never_charged).exists()
    wait_for(lambda: mailbox("cat@example.com") and mailbox("dan@example.com"),
             message="an in-doubt buyer was not told")
    assert "charged once" in mailbox("cat@example.com")[0].subject
    assert "not charged" in mailbox("dan@example.com")[0].subject


def test_it_keeps_an_in_doubt_checkout_open_while_a_late_charge_could_still_land(
    engine_db: str, processor: Any
) -> None:
    attempt = _in_doubt_attempt("eve@example.com")
    with override_settings(RECONCILE_SETTLE_SECONDS=600.0):
        summary = reconcile_payments(actor="test")
    assert summary.still_unresolved == 1
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.IN_DOUBT


def test_it_hands_support_a_payment_no_checkout_explains(engine_db: str, processor: Any) -> None:
    stranger = stripe_client().charge(
        amount=4900, currency="usd", payment_method="pm_card_visa", email="stranger@example.com",
        description="made in the processor's dashboard", idempotency_key="dashboard-1", metadata={},
    )

    summary = reconcile_payments(actor="test", full=True)
    reconcile_payments(actor="test", full=True)  # a second run opens nothing new

    assert summary.payments_unmatched == 1
    record = AttentionRecord.objects.get(kind=AttentionKind.PAYMENT_UNMATCHED)
    assert record.subject == f"payment:{stranger.id}"
    assert record.detail["payment_id"] == stranger.id
    assert record.detail["amount_cents"] == 4900
    assert record.detail["email"] == "stranger@example.com"
    assert record.detail["created_at"] == stranger.created.isoformat()
    assert "$49" in record.summary and "stranger@example.com" in record.summary
    assert Order.objects.count() == 0


def test_it_flags_an_order_the_processor_has_no_payment_for(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("fay@example.com"))
    Order.objects.filter(attempt=attempt).update(payment_id="pi_does_not_exist")

    summary = reconcile_payments(actor="test", full=True)

    assert summary.orders_without_payment == 1
    record = AttentionRecord.objects.get(kind=AttentionKind.ORDER_WITHOUT_PAYMENT)
    assert record.detail["payment_id"] == "pi_does_not_exist"
    assert record.detail["reference"] == attempt.reference


def test_it_moves_the_watermark_and_reads_only_the_recent_window(engine_db: str, processor: Any) -> None:
    settled(buy("gus@example.com"))
    time.sleep(1.1)  # the processor's clock has whole seconds: the watermark lands in a later one than gus
    first = reconcile_payments(actor="test")
    assert first.mode == "incremental" and first.since is None  # no watermark yet: everything
    watermark = ReconciliationWatermark.objects.reconciled_until(WATERMARK)
    assert watermark == first.until

    with override_settings(RECONCILE_OVERLAP_SECONDS=0.0):
        settled(buy("hal@example.com"))
        second = reconcile_payments(actor="test")
    assert second.since == watermark
    assert second.payments_seen == 1  # only what is newer than the watermark
    assert ReconciliationWatermark.objects.reconciled_until(WATERMARK) == second.until


def test_it_runs_as_a_command_and_prints_a_summary(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("ivy@example.com"))
    Order.objects.filter(attempt=attempt).delete()
    out = io.StringIO()

    call_command("reconcile", "--full", stdout=out)

    text = out.getvalue()
    assert "paid without an order, now fulfilled:   1" in text
    assert "processor payments checked:             1" in text
    assert Order.objects.filter(attempt=attempt).exists()


def test_it_reconciles_from_the_scheduled_workflow(engine_db: str, processor: Any) -> None:
    attempt = _in_doubt_attempt("jon@example.com")
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.CHARGING, charge_calls=1)
    _charge_at_processor(attempt)

    DBOS.start_workflow(reconcile_workflow, timezone.now(), None).get_result()

    attempt.refresh_from_db()
    assert attempt.state == AttemptState.FULFILLED
    wait_for(lambda: mailbox("jon@example.com"), message="the buyer was not told")


def test_it_walks_many_pages_of_payments_against_the_orders(engine_db: str, processor: Any) -> None:
    product = annual_plan()
    start = int(timezone.now().timestamp()) - 3600
    count, missing = 250, {17, 203}  # three pages; two orders lost
    attempts = PurchaseAttempt.objects.bulk_create([
        PurchaseAttempt(idempotency_key=f"many-{n}", request_fingerprint="x", product=product, amount_cents=24900,
                        currency="usd", email=f"m{n}@example.com", payment_method="pm_card_visa",
                        state=AttemptState.FULFILLED, payment_id=f"pi_many{n:04d}")
        for n in range(count)
    ])
    # Several payments share each creation second, as they do on a busy day.
    created = {n: start + n // 3 for n in range(count)}
    insert_payment_intents_bulk(processor.db_path, [
        {"id": f"pi_many{n:04d}", "amount": 24900, "created": created[n], "receipt_email": f"m{n}@example.com",
         "metadata": {"attempt_id": str(attempt.pk)}} for n, attempt in enumerate(attempts)
    ])
    Order.objects.bulk_create([
        Order(reference=attempt.reference, attempt=attempt, product=product, email=attempt.email,
              amount_cents=24900, currency="usd", payment_id=attempt.payment_id, fulfilled_by="checkout",
              payment_created_at=dt.datetime.fromtimestamp(created[n], tz=dt.UTC))
        for n, attempt in enumerate(attempts) if n not in missing
    ])

    summary = reconcile_payments(actor="test", full=True)

    assert len(reconcile._slices(None, summary.until)) == 2, "this window is long enough to walk in two halves"
    assert summary.payments_seen == count
    assert (summary.orders_matched, summary.orders_recreated) == (count - len(missing), len(missing))
    assert (summary.payments_unmatched, summary.orders_without_payment) == (0, 0)
    assert Order.objects.count() == count


def test_it_exits_non_zero_from_the_real_command_when_something_needs_a_person(
    server_database: Any, fakepay: Any
) -> None:
    fakepay.start()
    env = {**os.environ, **FAST_ENV, "BACKSTOP_DATA_DIR": str(server_database.data_dir),
           "DATABASE_URL": server_database.url, "STRIPE_API_BASE": fakepay.url, "BACKSTOP_PAYMENT_TIMEOUT": "2",
           "BACKSTOP_RECONCILE_SETTLE_SECONDS": "0", "BACKSTOP_LOG_LEVEL": "WARNING"}

    def backstop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "backstop.cli", *args], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=120)

    assert backstop("migrate", "--verbosity", "0").returncode == 0
    agree = backstop("reconcile", "--full", "--no-progress")
    # Somebody paid the processor directly (no checkout of ours): only a person can match or refund it.
    StripePayments(api_key="sk_test_fakepay", api_base=fakepay.url, timeout=10).charge(
        amount=24900, currency="usd", payment_method="pm_card_visa", email="zed@example.com",
        description="paid outside our checkout", metadata={}, idempotency_key="outside-1")
    unmatched = backstop("reconcile", "--full", "--no-progress")
    fakepay.stop()
    unreachable = backstop("reconcile", "--full", "--no-progress")
    misused = backstop("reconcile", "--full", "--since", "2024-01-01")

    assert agree.returncode == 0, agree.stdout + agree.stderr
    assert unmatched.returncode == 1, unmatched.stdout + unmatched.stderr
    assert "payments matching no checkout (support): 1" in unmatched.stdout
    assert "needs a person: 1 payment matching no checkout" in unmatched.stderr
    assert unreachable.returncode == 2, unreachable.stdout + unreachable.stderr
    assert "the processor's payment list failed" in unreachable.stdout
    assert misused.returncode == 2
    assert server_database.scalar("SELECT COUNT(*) FROM support_attentionrecord WHERE kind = 'payment_unmatched'") == 1
def test_it_finds_and_repairs_a_refund_backstop_missed_with_a_full_run(engine_db: str, processor: Any) -> None:
    whole = settled(buy("kim@example.com"))
    part = settled(buy("lou@example.com"))
    untouched = settled(buy("max@example.com"))
    # Refunded in the processor's dashboard while our webhook endpoint was down: no event ever reached us.
    stripe_client().refund(payment_id=whole.payment_id, amount=24900, idempotency_key="missed-whole")
    stripe_client().refund(payment_id=part.payment_id, amount=9900, idempotency_key="missed-part")
    out = io.StringIO()

    call_command("reconcile", "--full", stdout=out)

    assert "refunds at the processor, now applied:  2" in out.getvalue()
    for attempt in (whole, part, untouched):
        order = Order.objects.get(attempt=attempt)
        assert stripe_client().retrieve(attempt.payment_id).amount_refunded == order.refunded_cents, attempt.email
    refunded = Order.objects.get(attempt=whole)
    assert refunded.status == "refunded" and Entitlement.objects.get(order=refunded).state == "revoked"
    partly = Order.objects.get(attempt=part)
    assert (partly.status, partly.refunded_cents) == ("paid", 9900)
    assert AttentionRecord.objects.get(kind=AttentionKind.REFUND_PARTIAL).detail["reference"] == part.reference
    assert {e.actor for e in AuditEntry.objects.filter(action__in=("order_refunded", "order_partially_refunded"))} \
        == {"staff:reconcile-command"}
    again = reconcile_payments(actor="test", full=True)
    assert (again.refunds_applied, again.refunds_unconfirmed) == (0, 0)


def test_it_finds_a_refund_of_an_old_payment_in_an_incremental_run(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("ned@example.com"))
    time.sleep(1.1)
    reconcile_payments(actor="test")  # the watermark moves past the payment
    stripe_client().refund(payment_id=attempt.payment_id, amount=24900, idempotency_key="missed-later")

    with override_settings(RECONCILE_OVERLAP_SECONDS=0.0):
        summary = reconcile_payments(actor="test")

    assert summary.payments_seen == 0  # no payment is new: the refund is found by its own time
    assert summary.refunds_applied == 1
    order = Order.objects.get(attempt=attempt)
    assert order.status == "refunded"
    assert stripe_client().retrieve(attempt.payment_id).amount_refunded == order.refunded_cents


def test_it_hands_a_person_an_order_refunded_here_but_not_at_the_processor(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("ora@example.com"))
    Order.objects.filter(attempt=attempt).update(status="refunded", refunded_cents=24900, refunded_at=timezone.now())

    summary = reconcile_payments(actor="test", full=True)

    assert summary.refunds_unconfirmed == 1
    record = AttentionRecord.objects.get(kind=AttentionKind.REFUND_UNCONFIRMED)
    assert record.harm == Harm.MONEY
    assert (record.detail["our_refunded_cents"], record.detail["processor_refunded_cents"]) == (24900, 0)
    assert attempt.reference in record.summary
    # Never undone by a machine: the order still says refunded until a person acts.
    assert Order.objects.get(attempt=attempt).status == "refunded"
    assert reconcile_payments(actor="test", full=True).refunds_unconfirmed == 1
    assert AttentionRecord.objects.filter(kind=AttentionKind.REFUND_UNCONFIRMED).count() == 1
