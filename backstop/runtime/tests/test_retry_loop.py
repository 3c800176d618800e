"""The shared retry loop, driven through the setup workflow: budgets, backoff, breaker waits, "try again now"."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from dbos import DBOS
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from backstop.accounts import setup, signup
from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepStatus
from backstop.accounts.validation import clean_signup
from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.demo.models import FaultSetting
from backstop.lib.errors import ProviderError
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.workspaces import services as workspace_services
from backstop.workspaces.providers import LocalProvisioner
from conftest import setup_finished, wait_for

pytestmark = pytest.mark.usefixtures("local_mailbox", "engine_db")


@pytest.fixture
def long_backoff(settings: Any) -> Any:
    """The first retry waits at least 30 s: anything finishing sooner was woken, not timed out."""
    settings.RETRY_BASE_SECONDS = 60
    settings.RETRY_CAP_SECONDS = 120
    return settings


def new_account(email: str) -> Account:
    data = clean_signup(name="Ann Lee", email=email, phone="+1 415 555 0100", company="Acme",
                        password="correct horse battery")
    return signup._create_account(data, make_password(None))


def workspace_step(account: Account) -> SetupStep:
    return SetupStep.objects.get(account=account, name="workspace")


class FlakyProvisioner:
    """The local provisioner, failing its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def provision(self, *, idempotency_key: str, name: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProviderError(f"the workspace service refused the request (call {self.calls})")
        return LocalProvisioner().provision(idempotency_key=idempotency_key, name=name)


def test_it_wakes_a_waiting_workflow_when_the_customer_presses_try_again(long_backoff: Any) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("fay@example.com")
    wait_for(lambda: workspace_step(account).status == StepStatus.RETRYING, timeout=15,
             message="the workspace step never failed")
    wait_for(lambda: DBOS.get_workflow_status(account.setup_workflow_id), timeout=15,
             message="the setup batch did not hand the account to its own workflow")

    FaultSetting.objects.set_modes({"workspace": "ok"})
    setup.retry_setup(account=account)

    wait_for(lambda: Account.objects.get(pk=account.pk).state == AccountState.ACTIVE, timeout=20,
             message="try again now did not wake the waiting workflow")
    account.refresh_from_db()
    assert account.setup_run == 1  # the same workflow finished: no new run
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    assert workspace_step(account).attempts == 2


def test_it_waits_out_a_backoff_without_polling(long_backoff: Any) -> None:
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("gil@example.com")
    wait_for(lambda: workspace_step(account).status == StepStatus.RETRYING, timeout=15)
    time.sleep(1)

    # Both attempts and the durable wait: a handful of recorded steps, not one per spin of a loop that forgot to sleep.
    assert len(DBOS.list_workflow_steps(account.setup_workflow_id)) < 12

    FaultSetting.objects.set_modes({"workspace": "ok"})
    setup.retry_setup(account=account)
    assert setup_finished(account, timeout=20) == {"workspace": True, "welcome_email": True}


def test_it_records_only_the_two_attempts_when_both_succeed_at_once() -> None:
    account = new_account("ines@example.com")

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    # The loop schedules from recorded results: no clock reads or other bookkeeping steps on the happy path.
    assert [step["function_name"] for step in DBOS.list_workflow_steps(account.setup_workflow_id)] == [
        "provision_workspace", "send_welcome_email"]


def test_it_retries_a_failing_step_until_it_succeeds(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.SETUP_MAX_ATTEMPTS = 5
    flaky = FlakyProvisioner(failures=2)
    monkeypatch.setattr(workspace_services, "provisioner", lambda: flaky)
    account = new_account("hana@example.com")

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}

    step = workspace_step(account)
    assert (step.status, step.attempts, step.last_error) == (StepStatus.DONE, 3, "")
    assert flaky.calls == 3
    assert list(AccountEvent.objects.filter(account=account, kind__in=["step_failed", "step_done"])
                .filter(text__startswith="Your workspace").values_list("text", flat=True)) == [
        "Your workspace: attempt 1 failed: the workspace service refused the request (call 1).",
        "Your workspace: attempt 2 failed: the workspace service refused the request (call 2).",
        "Your workspace: done on attempt 3.",
    ]


def test_it_gives_each_step_its_own_retry_budget(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    FaultSetting.objects.set_modes({"workspace": "error", "email": "error"})
    account = new_account("ida@example.com")

    assert setup_finished(account) == {"workspace": False, "welcome_email": False}

    assert {s.name: (s.status, s.attempts) for s in SetupStep.objects.filter(account=account)} == {
        "workspace": (StepStatus.FAILED, 3), "welcome_email": (StepStatus.FAILED, 3)}
    welcome = Message.objects.get(key=f"welcome:{account.pk}")
    assert (welcome.status, welcome.attempts) == (DeliveryStatus.FAILED, 3)
    assert sorted(AttentionRecord.objects.filter(account=account).values_list("kind", flat=True)) == [
        AttentionKind.EMAIL_UNDELIVERED, AttentionKind.SETUP_STALLED]


def test_it_does_not_spend_the_budget_while_the_breaker_keeps_callers_away(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1
    CircuitBreaker.objects.create(provider="workspace", state=BreakerState.OPEN, consecutive_failures=50,
                                  retry_at=timezone.now() + dt.timedelta(seconds=60))
    account = new_account("jo@example.com")

    wait_for(lambda: workspace_step(account).status == StepStatus.WAITING, timeout=15,
             message="the step did not report that it waits for the provider")
    assert workspace_step(account).attempts == 0
    # The cool-down ends; "try again now" saves the test from waiting out the minute.
    CircuitBreaker.objects.filter(pk="workspace").update(retry_at=timezone.now())
    setup.retry_setup(account=account)

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    step = workspace_step(account)
    assert (step.status, step.attempts) == (StepStatus.DONE, 1)
    assert CircuitBreaker.objects.get(pk="workspace").state == BreakerState.CLOSED
