"""The setup workflow in-process: happy path, retry budgets, hand-over to support, new runs, the safety net."""

from __future__ import annotations

from typing import Any

import pytest
from dbos import DBOS
from django.contrib.auth.hashers import make_password

from backstop.accounts import services
from backstop.accounts.models import Account, AccountEvent, AccountState, SetupStep, StepStatus
from backstop.accounts.validation import clean_signup
from backstop.demo.models import FaultSetting
from backstop.notify.models import DeliveryStatus, LocalMailboxItem, Message
from backstop.runtime import engine
from backstop.support.models import AttentionKind, AttentionRecord
from backstop.workspaces.models import LocalProvisionedWorkspace, Workspace
from conftest import wait_for

pytestmark = pytest.mark.usefixtures("engine_db")


@pytest.fixture(autouse=True)
def local_mailbox(settings: Any) -> None:
    # pytest-django swaps in the locmem backend; the demo's local mailbox is what these tests inspect.
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"


def new_account(email: str) -> Account:
    """An account as signup creates it, setup enqueued on commit (no password hashing: not under test here)."""
    data = clean_signup(name="Ann Lee", email=email, phone="+1 415 555 0100", company="Acme",
                        password="correct horse battery")
    return services._create_account(data, make_password(None))


def finished(workflow_id: str, timeout: float = 30) -> Any:
    """The workflow's result once it has ended; the test fails unless it ended successfully."""

    def ended() -> Any:
        status = DBOS.get_workflow_status(workflow_id)
        return status if status is not None and status.status not in services.LIVE_WORKFLOW_STATUSES else None

    status = wait_for(ended, timeout=timeout, message=f"workflow {workflow_id} did not finish")
    assert status.status == "SUCCESS", status.error
    return status.output


def steps_of(account: Account) -> dict[str, SetupStep]:
    return {step.name: step for step in SetupStep.objects.filter(account=account)}


def test_it_activates_the_account_and_sends_one_welcome_email_when_providers_answer() -> None:
    result = services.signup_account(name="Ann Lee", email="Ann@Example.com", phone="+1 415 555 0100",
                                     company="Acme", password="correct horse battery", ip="10.0.0.1")
    account = result.account

    assert finished(account.setup_workflow_id) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    assert account.activated_at is not None
    assert {name: step.status for name, step in steps_of(account).items()} == {
        "workspace": StepStatus.DONE, "welcome_email": StepStatus.DONE}
    assert Workspace.objects.filter(account=account).count() == 1
    assert LocalProvisionedWorkspace.objects.count() == 1
    assert Workspace.objects.get(account=account).name == "Acme"
    welcome = Message.objects.get(key=f"welcome:{account.pk}")
    assert welcome.status == DeliveryStatus.SENT
    assert LocalMailboxItem.objects.filter(to="Ann@example.com").count() == 1
    assert not AttentionRecord.objects.exists()
    assert list(AccountEvent.objects.filter(account=account, kind="activated").values_list("text", flat=True)) == [
        "Workspace ready: the account is active."]


def test_it_hands_the_account_to_support_when_the_workspace_provider_keeps_failing(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("bob@example.com")

    assert finished(account.setup_workflow_id) == {"workspace": False, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.NEEDS_ATTENTION
    workspace_step = steps_of(account)["workspace"]
    assert workspace_step.status == StepStatus.FAILED
    assert workspace_step.attempts == 3
    assert workspace_step.last_error == "the workspace provider answered with an error"
    assert not Workspace.objects.exists()
    # The steps interleave: the welcome email went out while the workspace kept failing.
    assert steps_of(account)["welcome_email"].status == StepStatus.DONE
    assert LocalMailboxItem.objects.filter(to="bob@example.com").count() == 1

    record = AttentionRecord.objects.get(account=account, resolved_at__isnull=True)
    assert record.kind == AttentionKind.SETUP_STALLED
    assert record.detail == {
        "workspace": {"attempts": 3, "last_error": "the workspace provider answered with an error"}}
    assert "could not be created after 3 attempts" in record.summary
    assert AccountEvent.objects.filter(account=account, kind="step_failed").count() == 3


def test_it_keeps_the_account_usable_when_only_the_welcome_email_fails(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    settings.EMAIL_TIMEOUT = 0.2
    FaultSetting.objects.set_modes({"email": "timeout"})
    account = new_account("cleo@example.com")

    assert finished(account.setup_workflow_id) == {"workspace": True, "welcome_email": False}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    email_step = steps_of(account)["welcome_email"]
    assert email_step.status == StepStatus.FAILED
    assert email_step.attempts == 2
    assert email_step.last_error == "the email provider did not answer within 0.2 seconds"
    assert Message.objects.get(key=f"welcome:{account.pk}").status == DeliveryStatus.FAILED
    record = AttentionRecord.objects.get(account=account, resolved_at__isnull=True)
    assert record.kind == AttentionKind.EMAIL_UNDELIVERED
    assert record.detail["welcome_email"]["attempts"] == 2
    assert not LocalMailboxItem.objects.exists()


def test_it_starts_a_new_run_on_retry_after_support_took_over(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("dan@example.com")
    finished(account.setup_workflow_id)
    account.refresh_from_db()
    assert account.state == AccountState.NEEDS_ATTENTION

    FaultSetting.objects.set_modes({"workspace": "ok"})
    services.retry_setup(account=account)

    account.refresh_from_db()
    assert account.setup_run == 2
    # The welcome email was sent in run 1: run 2 finds it done and sends nothing (one mailbox item below).
    assert finished(account.setup_workflow_id) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    record = AttentionRecord.objects.get(account=account, kind=AttentionKind.SETUP_STALLED)
    assert record.resolved_at is not None
    assert record.resolution == "setup finished"
    assert Workspace.objects.filter(account=account).count() == 1
    assert LocalMailboxItem.objects.filter(to="dan@example.com").count() == 1
    # Nothing is left to do: another retry starts nothing.
    services.retry_setup(account=account)
    account.refresh_from_db()
    assert account.setup_run == 2


def test_it_resolves_the_undelivered_email_record_once_a_retry_delivers_it(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    FaultSetting.objects.set_modes({"email": "error"})
    account = new_account("eve@example.com")
    finished(account.setup_workflow_id)
    assert AttentionRecord.objects.filter(kind=AttentionKind.EMAIL_UNDELIVERED, resolved_at__isnull=True).exists()

    FaultSetting.objects.set_modes({"email": "ok"})
    account.refresh_from_db()
    services.retry_setup(account=account)
    account.refresh_from_db()
    assert finished(account.setup_workflow_id) == {"workspace": True, "welcome_email": True}
    assert Workspace.objects.filter(account=account).count() == 1

    assert Message.objects.get(key=f"welcome:{account.pk}").status == DeliveryStatus.SENT
    assert LocalMailboxItem.objects.filter(to="eve@example.com").count() == 1
    assert not AttentionRecord.objects.filter(resolved_at__isnull=True).exists()


def test_it_restarts_a_setup_whose_workflow_never_started(monkeypatch: pytest.MonkeyPatch) -> None:
    def queue_unavailable(name: str) -> Any:
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr(engine, "queue", queue_unavailable)
    stranded = new_account("gus@example.com")
    monkeypatch.undo()
    assert DBOS.get_workflow_status(stranded.setup_workflow_id) is None

    assert services.restart_stalled_setups(grace_seconds=0) == 1

    assert finished(stranded.setup_workflow_id) == {"workspace": True, "welcome_email": True}
    stranded.refresh_from_db()
    assert stranded.state == AccountState.ACTIVE
    assert stranded.setup_run == 1
    assert AccountEvent.objects.filter(account=stranded, kind="setup_swept").count() == 1
    assert services.restart_stalled_setups(grace_seconds=0) == 0


def test_it_leaves_a_live_setup_alone(settings: Any) -> None:
    settings.RETRY_BASE_SECONDS = 60
    settings.RETRY_CAP_SECONDS = 120
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("hal@example.com")
    wait_for(lambda: steps_of(account)["workspace"].status == StepStatus.RETRYING, timeout=15)

    assert services.restart_stalled_setups(grace_seconds=0) == 0

    account.refresh_from_db()
    assert account.setup_run == 1
    assert not AccountEvent.objects.filter(account=account, kind="setup_swept").exists()
    FaultSetting.objects.set_modes({"workspace": "ok"})
    services.retry_setup(account=account)
    assert finished(account.setup_workflow_id, timeout=20) == {"workspace": True, "welcome_email": True}


def test_it_starts_a_new_run_when_the_workflow_ended_with_steps_open(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1000
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("ivy@example.com")
    wait_for(lambda: steps_of(account)["workspace"].attempts >= 1
             and steps_of(account)["welcome_email"].status == StepStatus.DONE, timeout=15)
    DBOS.cancel_workflow(account.setup_workflow_id)

    assert services.restart_stalled_setups(grace_seconds=0) == 1

    account.refresh_from_db()
    assert account.setup_run == 2
    # The provider recovers only once the new run is trying, so the cancelled run cannot be the one that finishes.
    wait_for(lambda: any(step["function_name"] == "provision_workspace"
                         for step in DBOS.list_workflow_steps(account.setup_workflow_id)), timeout=15)
    FaultSetting.objects.set_modes({"workspace": "ok"})
    # The welcome email was sent in run 1: run 2 finds it done and sends nothing (one mailbox item below).
    assert finished(account.setup_workflow_id) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    assert Workspace.objects.filter(account=account).count() == 1
    assert LocalProvisionedWorkspace.objects.count() == 1
