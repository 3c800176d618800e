"""The purchase workflow (charge, record, fulfil, confirm, durably) and the scheduled reconciliation."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from dbos import DBOS
from django.conf import settings

from backstop.billing import charging, checkout, fulfilment, reconcile
from backstop.billing.models import FulfilledBy
from backstop.billing.providers import ProcessorPayment
from backstop.lib.backoff import backoff_delay
from backstop.lib.sqlite_gate import defer_to_foreground
from backstop.runtime.engine import reclaim_request_priority, release_db_connections, yield_cpu_to_requests

log = logging.getLogger(__name__)
RECONCILE_SCHEDULE_NAME = "reconcile-payments"


@DBOS.step()
def charge_payment(attempt_id: int, try_number: int) -> charging.ChargeOutcome:
    return charging.charge_attempt(attempt_id=attempt_id, try_number=try_number)


@DBOS.step()
def record_charge(attempt_id: int, charge: charging.ChargeOutcome) -> str:
    return charging.record_charge(attempt_id=attempt_id, charge=charge)


@DBOS.step()
def mark_in_doubt(attempt_id: int) -> None:
    charging.mark_in_doubt(attempt_id=attempt_id)


@DBOS.step()
def fulfil_order(attempt_id: int, payment: ProcessorPayment) -> bool:
    filled = fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.CHECKOUT, actor="system:checkout",
                                         attempt_id=attempt_id)
    return filled.order is not None


@DBOS.step()
def send_confirmation(attempt_id: int) -> bool:
    return fulfilment.ensure_confirmation_queued(attempt_id=attempt_id)


@DBOS.step()
def charge_and_fulfil(attempt_id: int, try_number: int) -> charging.ChargeOutcome:
    """One try: ask the processor (with the attempt's key), record its answer, and when it succeeded make the order;
    then wake the buyer's request. One step, not three: every part is safe to run again after a crash (the processor
    replays the same key, the state moves only forward, the order is unique per payment), and each step costs the
    engine two commits of its own before the next can start. See docs/decisions.md, "Checkout under load"."""
    charge = charging.charge_attempt(attempt_id=attempt_id, try_number=try_number)
    charging.record_charge(attempt_id=attempt_id, charge=charge)
    if charge["outcome"] == "succeeded" and charge["payment"] is not None:
        fulfilment.fulfil_payment(payment=charge["payment"], source=FulfilledBy.CHECKOUT, actor="system:checkout",
                                  attempt_id=attempt_id)
    if charge["outcome"] != "unknown":
        # Paid, declined, or settled meanwhile by a webhook: the answer is in the rows, so the buyer's request leaves
        # now, not after the engine has recorded this step.
        checkout.announce_answer(attempt_id)
    return charge


@DBOS.workflow(name="purchase")
def purchase_workflow(attempt_id: int) -> str:
    """Charge once (same idempotency key on every try), record it and fulfil (one step), then confirm by email.

    An unknown answer (timeout, processor error) is retried with the same key; when it stays unknown the
    checkout is "in doubt" and reconciliation settles it against the processor. The buyer's request waiting on this
    checkout is woken as soon as their answer (paid, declined, in doubt) is in the rows, before the email step.
    """
    # A buyer waits on this: not at the priority of the background work this pool thread may have run before.
    reclaim_request_priority()
    try:
        try:
            charge = charge_and_fulfil(attempt_id, 1)
            for try_number in range(2, settings.PAYMENT_MAX_ATTEMPTS + 1):
                if charge["outcome"] != "unknown":
                    break
                release_db_connections()
                # Not before the processor's Retry-After, when it gave one (same key on the next try: no double
                # charge).
                DBOS.sleep(max(charge.get("retry_after", 0.0),
                               backoff_delay(try_number - 1, base=settings.RETRY_BASE_SECONDS,
                                             cap=settings.RETRY_CAP_SECONDS)))
                charge = charge_and_fulfil(attempt_id, try_number)
        except Exception:
            # Whatever broke, the buyer's page must not say "processing" forever: "in doubt" until checked.
            mark_in_doubt(attempt_id)
            checkout.announce_answer(attempt_id)
            raise
        if charge["outcome"] == "unknown":
            mark_in_doubt(attempt_id)
            checkout.announce_answer(attempt_id)
            return "in_doubt"
        # The buyer has their answer; their request still records what it showed them (a write). The email step's
        # writes queue behind it, and behind every other web request's, as background work's do. (Not a lower CPU
        # priority: a niced thread holding the write lock would hold up the request instead.)
        defer_to_foreground()
        # Also after "settled": a webhook may have fulfilled the order while this workflow was down.
        send_confirmation(attempt_id)
        return charge["outcome"]
    finally:
        release_db_connections()


# --- The purchase workflow as recorded before December 2026 (four steps) -------------------------------------------
# The engine replays a workflow step by step under the name it was recorded with, and refuses a step whose name differs
# from the recording: a checkout still running across the upgrade finishes under this code. New checkouts never start
# it; remove it (and record_charge, fulfil_order) once no workflow of that name is pending in any deployment.

@DBOS.workflow(name="purchase_workflow")
def four_step_purchase_workflow(attempt_id: int) -> str:
    """The four-step purchase (charge, record, fulfil, confirm), for workflows recorded before the upgrade."""
    reclaim_request_priority()
    try:
        try:
            charge = _charge_with_retries(attempt_id)
        except Exception:
            # Whatever broke, the buyer's page must not say "processing" forever: "in doubt" until checked.
            mark_in_doubt(attempt_id)
            checkout.announce_answer(attempt_id)
            raise
        if charge["outcome"] == "unknown":
            mark_in_doubt(attempt_id)
            checkout.announce_answer(attempt_id)
            return "in_doubt"
        if charge["outcome"] == "succeeded" and charge["payment"] is not None:
            fulfil_order(attempt_id, charge["payment"])
        # Paid, declined, or settled meanwhile by a webhook: the answer is in the rows. (Not a step: a replay wakes
        # a waiter again, which only makes it read the rows.)
        checkout.announce_answer(attempt_id)
        # Also after "settled": a webhook may have fulfilled the order while this workflow was down.
        send_confirmation(attempt_id)
        return charge["outcome"]
    finally:
        release_db_connections()


def _charge_with_retries(attempt_id: int) -> charging.ChargeOutcome:
    charge = charge_payment(attempt_id, 1)
    record_charge(attempt_id, charge)
    for try_number in range(2, settings.PAYMENT_MAX_ATTEMPTS + 1):
        if charge["outcome"] != "unknown":
            break
        release_db_connections()
        # Not before the processor's Retry-After, when it gave one (same key on the next try: no double charge).
        DBOS.sleep(max(charge.get("retry_after", 0.0), backoff_delay(try_number - 1, base=settings.RETRY_BASE_SECONDS,
                                                                     cap=settings.RETRY_CAP_SECONDS)))
        charge = charge_payment(attempt_id, try_number)
        record_charge(attempt_id, charge)
    return charge


@DBOS.step()
def reconcile_recent_payments() -> dict[str, Any]:
    return reconcile.reconcile_payments(actor="system:reconciler").as_dict()


@DBOS.workflow()
def reconcile_workflow(scheduled_at: dt.datetime, context: Any) -> None:
    """Every few minutes (one run per scheduled time across all processes): incremental reconciliation.

    Its summary is the step's recorded output; problems are logged for whoever watches the logs.
    """
    yield_cpu_to_requests()
    try:
        summary = reconcile_recent_payments()
        for problem in summary["problems"]:
            log.warning("scheduled reconciliation at %s: %s", scheduled_at.isoformat(), problem)
    finally:
        release_db_connections()


def apply_reconcile_schedule() -> None:
    if not settings.RECONCILE_SCHEDULE:
        DBOS.delete_schedule(RECONCILE_SCHEDULE_NAME)
        return
    DBOS.apply_schedules([{"schedule_name": RECONCILE_SCHEDULE_NAME, "workflow_fn": reconcile_workflow,
                           "schedule": settings.RECONCILE_SCHEDULE}])
