"""The safety net for a checkout recorded whose workflow never started: a sweep the billing app registers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dbos import DBOS
from django.utils import timezone

from backstop.billing import checkout
from backstop.billing.models import AttemptState, PurchaseAttempt
from backstop.billing.tests.conftest import annual_plan, mailbox, settled
from backstop.runtime import engine, registry
from conftest import wait_for


def _recorded(email: str, *, age: dt.timedelta) -> PurchaseAttempt:
    """"Pay" pressed and written down; the process stopped before it handed the attempt to its workflow."""
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"unstarted-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa",
    )
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(updated_at=timezone.now() - age)
    return attempt


def test_it_starts_the_checkout_of_an_attempt_whose_workflow_never_started_once(engine_db: str,
                                                                               processor: Any) -> None:
    # This process's own supervisor runs the same sweep: held, so the calls below are the only ones.
    with engine.hold_background_threads():
        stranded = _recorded("ann@example.com", age=dt.timedelta(minutes=5))
        fresh = _recorded("bo@example.com", age=dt.timedelta(seconds=0))  # its hand-over may be under way
        charging = _recorded("cy@example.com", age=dt.timedelta(minutes=5))
        PurchaseAttempt.objects.filter(pk=charging.pk).update(state=AttemptState.CHARGING, charge_calls=1)

        assert checkout.restart_unstarted_purchases(grace_seconds=60) == 1
        assert checkout.restart_unstarted_purchases(grace_seconds=60) == 0  # started: its workflow exists

        assert settled(stranded).interrupted is False
        wait_for(lambda: mailbox("ann@example.com"), message="no confirmation email")
        assert DBOS.get_workflow_status(fresh.workflow_id) is None
        assert DBOS.get_workflow_status(charging.workflow_id) is None  # it reached the processor: reconciliation's
        assert PurchaseAttempt.objects.get(pk=fresh.pk).state == AttemptState.RECORDED


def test_it_is_registered_as_a_sweep_the_supervisor_runs(engine_db: str, processor: Any) -> None:
    with engine.hold_background_threads():
        stranded = _recorded("dee@example.com", age=dt.timedelta(minutes=5))

        assert dict(registry.sweeps())["unstarted-purchases"](60) == 1

        settled(stranded)
