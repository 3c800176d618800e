"""The purchase workflow's engine steps: two per healthy checkout, and the four-step form still runs for checkouts
recorded before it (the engine replays a workflow under the step names it was recorded with)."""

from __future__ import annotations

from typing import Any

from dbos import DBOS, SetWorkflowID

from backstop.billing import workflows
from backstop.billing.models import AttemptState, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan, buy, processor, settled  # noqa: F401
from conftest import wait_for


def _step_names(workflow_id: str) -> list[str]:
    return [step["function_name"] for step in DBOS.list_workflow_steps(workflow_id)]


def _finished(workflow_id: str) -> bool:
    status = DBOS.get_workflow_status(workflow_id)
    return status is not None and status.status == "SUCCESS"


def test_it_charges_records_and_fulfils_a_checkout_in_one_engine_step(engine_db: str, processor: Any) -> None:  # noqa: F811
    attempt = buy("ann@example.com")

    assert settled(attempt).state == AttemptState.FULFILLED
    wait_for(lambda: _finished(attempt.workflow_id), timeout=30, message="the purchase workflow never finished")

    assert DBOS.get_workflow_status(attempt.workflow_id).name == "purchase"  # type: ignore[union-attr]
    assert _step_names(attempt.workflow_id) == ["charge_and_fulfil", "send_confirmation"]
    assert attempt.order is not None
    assert PurchaseAttempt.objects.get(pk=attempt.pk).charge_calls == 1


def test_it_finishes_a_four_step_purchase_recorded_before_the_upgrade(engine_db: str, processor: Any) -> None:  # noqa: F811
    # Written down with no hand-over, then started as the previous release started it: under the old workflow's name.
    attempt = PurchaseAttempt.objects.create(
        idempotency_key="before-upgrade-1", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email="bo@example.com", payment_method="pm_card_visa",
    )
    with SetWorkflowID(attempt.workflow_id):
        DBOS.start_workflow(workflows.four_step_purchase_workflow, attempt.pk)

    assert settled(attempt).state == AttemptState.FULFILLED
    wait_for(lambda: _finished(attempt.workflow_id), timeout=30, message="the old purchase workflow never finished")
    assert DBOS.get_workflow_status(attempt.workflow_id).name == "purchase_workflow"  # type: ignore[union-attr]
    assert _step_names(attempt.workflow_id) == ["charge_payment", "record_charge", "fulfil_order", "send_confirmation"]


def test_it_runs_the_buyers_workflow_at_request_priority_on_threads_that_ran_background_work(
    engine_db: str, processor: Any, monkeypatch: Any, settings: Any,  # noqa: F811
) -> None:
    import os
    import threading

    from dbos._dbos import _get_dbos_instance

    from backstop.billing import charging
    from backstop.lib import sqlite_gate
    from backstop.runtime.engine import yield_cpu_to_requests

    settings.BACKGROUND_NICE = 10
    # Every idle thread of the engine's pool runs background work first (a delivery, a setup), as in a long-lived
    # process: DBOS reuses them for the next workflow, the buyer's included.
    pool = _get_dbos_instance()._executor
    marked = threading.Barrier(4)

    def background_work() -> None:
        yield_cpu_to_requests()
        marked.wait(timeout=10)

    for future in [pool.submit(background_work) for _ in range(4)]:
        future.result(timeout=30)
    seen: list[tuple[int, bool]] = []
    charge_attempt = charging.charge_attempt

    def charge_and_note(**kwargs: Any) -> Any:
        seen.append((os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                     getattr(sqlite_gate._thread_role, "background", False)))
        return charge_attempt(**kwargs)

    monkeypatch.setattr(charging, "charge_attempt", charge_and_note)  # a spy: the real charge runs
    attempt = buy("cy@example.com")

    assert settled(attempt).state == AttemptState.FULFILLED
    process_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
    assert seen and seen[0][1] is False  # in the foreground line for the write lock
    if os.geteuid() == 0:  # raising a nice value back needs the privilege to
        assert seen[0][0] == process_nice


def test_it_queues_the_confirmation_steps_writes_behind_web_requests_once_the_buyer_has_an_answer(
    engine_db: str, processor: Any, monkeypatch: Any,  # noqa: F811
) -> None:
    import os
    import threading

    from backstop.billing import fulfilment
    from backstop.lib import sqlite_gate

    seen: list[tuple[str, int, bool]] = []
    charge_attempt, confirm = workflows.charging.charge_attempt, fulfilment.ensure_confirmation_queued

    def note(step: str) -> None:
        seen.append((step, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                     getattr(sqlite_gate._thread_role, "background", False)))

    def charge_and_note(**kwargs: Any) -> Any:
        note("charge")
        return charge_attempt(**kwargs)

    def confirm_and_note(**kwargs: Any) -> Any:
        note("confirm")
        return confirm(**kwargs)

    # Spies: the real steps run.
    monkeypatch.setattr(workflows.charging, "charge_attempt", charge_and_note)
    monkeypatch.setattr(fulfilment, "ensure_confirmation_queued", confirm_and_note)
    attempt = buy("di@example.com")

    assert settled(attempt).state == AttemptState.FULFILLED
    wait_for(lambda: len(seen) == 2, timeout=30, message="the confirmation step never ran")
    (_, charge_nice, charge_behind), (_, confirm_nice, confirm_behind) = seen
    assert (charge_behind, confirm_behind) == (False, True)
    assert confirm_nice == charge_nice  # behind in the write line only: a niced thread holding the lock would stall
