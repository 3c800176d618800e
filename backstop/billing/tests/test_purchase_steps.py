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
