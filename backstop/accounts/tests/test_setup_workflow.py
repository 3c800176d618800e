"""The setup workflow in-process: happy path, retry budgets, hand-over to support, new runs, the safety net."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from dbos import DBOS
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from backstop.accounts import setup, signup
from backstop.accounts.dispatcher import SETUP_BATCH_QUEUE, SETUP_BATCHES_AT_ONCE
from backstop.accounts.messages import STEP_UNEXPECTED_ERROR
from backstop.accounts.models import OWN_SETUP_WORKFLOW, Account, AccountEvent, AccountState, SetupStep, StepStatus
from backstop.accounts.validation import clean_signup
from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.demo.models import FaultSetting
from backstop.lib.errors import ProviderError
from backstop.notify.models import DeliveryStatus, LocalMailboxItem, Message
from backstop.runtime import engine
from backstop.runtime.models import BreakerReading, BreakerState, CircuitBreaker, CircuitBreakerManager
from backstop.support.tests.helpers import open_breaker
from backstop.workspaces.models import LocalProvisionedWorkspace, Workspace
from conftest import setup_finished, wait_for

pytestmark = pytest.mark.usefixtures("local_mailbox", "engine_db")


def new_account(email: str) -> Account:
    """An account as signup creates it, setup enqueued on commit (no password hashing: not under test here)."""
    data = clean_signup(name="Ann Lee", email=email, phone="+1 415 555 0100", company="Acme",
                        password="correct horse battery")
    return signup._create_account(data, make_password(None))


def steps_of(account: Account) -> dict[str, SetupStep]:
    return {step.name: step for step in SetupStep.objects.filter(account=account)}


def test_it_activates_the_account_and_sends_one_welcome_email_when_providers_answer() -> None:
    result = signup.signup_account(name="Ann Lee", email="Ann@Example.com", phone="+1 415 555 0100",
                                     company="Acme", password="correct horse battery", ip="10.0.0.1")
    account = result.account

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
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
    assert not Message.objects.filter(kind="account_ready").exists()  # ready at once: the welcome email is enough
    assert not AttentionRecord.objects.exists()
    assert list(AccountEvent.objects.filter(account=account, kind="activated").values_list("text", flat=True)) == [
        "Workspace ready: the account is active."]


def test_it_hands_the_account_to_support_when_the_workspace_provider_keeps_failing(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("bob@example.com")

    assert setup_finished(account) == {"workspace": False, "welcome_email": True}
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


def test_it_hands_the_account_to_support_when_a_step_keeps_failing_unexpectedly(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug, not a provider's answer: it spends the retry budget like any failure, then support sees it."""
    settings.SETUP_MAX_ATTEMPTS = 3

    def broken(account: Account) -> None:
        raise LookupError("a bug in our own code")

    monkeypatch.setattr(setup, "_provision", broken)
    account = new_account("cy@example.com")

    assert setup_finished(account) == {"workspace": False, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.NEEDS_ATTENTION
    workspace_step = steps_of(account)["workspace"]
    assert (workspace_step.status, workspace_step.attempts, workspace_step.last_error) == (
        StepStatus.FAILED, 3, STEP_UNEXPECTED_ERROR)
    record = AttentionRecord.objects.get(account=account, resolved_at__isnull=True)
    assert record.kind == AttentionKind.SETUP_STALLED
    assert account.setup_run == 1  # no safety-net restart: the run ended by handing the account over


def test_it_hands_an_email_that_cannot_be_sent_for_a_bug_to_support(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    with transaction.atomic():
        account = new_account("di@example.com")
        Message.objects.filter(key=f"welcome:{account.pk}").delete()  # a bug's doing: nothing to send

    assert setup_finished(account) == {"workspace": True, "welcome_email": False}
    email = steps_of(account)["welcome_email"]
    assert (email.status, email.attempts, email.last_error) == (StepStatus.FAILED, 3, STEP_UNEXPECTED_ERROR)
    record = AttentionRecord.objects.get(account=account, resolved_at__isnull=True)
    assert record.kind == AttentionKind.EMAIL_UNDELIVERED
    assert Account.objects.get(pk=account.pk).state == AccountState.ACTIVE


def mailbox_subjects(address: str) -> list[str]:
    return sorted(LocalMailboxItem.objects.filter(to=address).values_list("subject", flat=True))


def test_it_emails_the_owner_once_when_a_workspace_that_failed_is_ready(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1000
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("late@example.com")
    wait_for(lambda: steps_of(account)["workspace"].attempts >= 2, message="the workspace was not retried")

    FaultSetting.objects.set_modes({"workspace": "ok"})

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    subjects = wait_for(lambda: len(found := mailbox_subjects("late@example.com")) == 2 and found,
                        message="no ready email arrived")
    assert subjects == ["Welcome to Backstop, Ann Lee: please confirm your email", "Your Backstop workspace is ready"]
    ready = LocalMailboxItem.objects.get(to="late@example.com", subject="Your Backstop workspace is ready")
    assert "Your workspace for Acme is ready" in ready.text
    assert "That was our fault, not yours" in ready.text
    assert "http://" in ready.text and "/login" in ready.text
    time.sleep(5 * settings.QUEUE_POLL_SECONDS)
    assert len(mailbox_subjects("late@example.com")) == 2  # once, however many attempts it took


def test_it_keeps_the_account_usable_when_only_the_welcome_email_fails(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    settings.EMAIL_TIMEOUT = 0.2
    FaultSetting.objects.set_modes({"email": "timeout"})
    account = new_account("cleo@example.com")

    assert setup_finished(account) == {"workspace": True, "welcome_email": False}
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
    setup_finished(account)
    account.refresh_from_db()
    assert account.state == AccountState.NEEDS_ATTENTION

    FaultSetting.objects.set_modes({"workspace": "ok"})
    setup.retry_setup(account=account)

    account.refresh_from_db()
    assert account.setup_run == 2
    # The welcome email was sent in run 1: run 2 finds it done and does not send it again (one welcome below).
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    record = AttentionRecord.objects.get(account=account, kind=AttentionKind.SETUP_STALLED)
    assert record.resolved_at is not None
    assert record.resolution == "setup finished"
    assert Workspace.objects.filter(account=account).count() == 1
    assert LocalMailboxItem.objects.filter(to="dan@example.com").count() == 1
    # Support's case for the stalled setup tells the owner it is fixed when it settles (support's tests): setup sends
    # no "ready" email of its own.
    assert not Message.objects.filter(kind="account_ready").exists()
    # Nothing is left to do: another retry starts nothing.
    setup.retry_setup(account=account)
    account.refresh_from_db()
    assert account.setup_run == 2


def workspace_provider_answering(monkeypatch: pytest.MonkeyPatch, answers: dict[int, Any]) -> list[int]:
    """The workspace provider's calls, numbered from 1: call n runs ``answers[n]`` (if any) before answering, and
    answers with an error unless ``answers`` has a later call. Returns the calls made so far."""
    calls: list[int] = []
    provision = setup._provision

    def answering(account: Account) -> None:
        calls.append(len(calls) + 1)
        if calls[-1] in answers:
            answers[calls[-1]]()
        if calls[-1] <= max(answers):
            raise ProviderError("the workspace provider answered with an error")
        provision(account)

    monkeypatch.setattr(setup, "_provision", answering)
    return calls


def pressed_try_again_now(account: Account) -> None:
    """The owner presses "Try again now" from their browser (another thread) and gets the answer."""
    press = threading.Thread(target=lambda: setup.retry_setup(account=Account.objects.get(pk=account.pk)))
    press.start()
    press.join(timeout=30)


def test_it_starts_the_next_run_when_try_again_lands_during_the_final_attempt(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run reads its messages only between attempts: this press lands while the last one is at the provider.
    settings.SETUP_MAX_ATTEMPTS = 2
    account = new_account("fay@example.com")
    calls = workspace_provider_answering(monkeypatch, {2: lambda: pressed_try_again_now(account)})

    assert wait_for(lambda: steps_of(account)["workspace"].status == StepStatus.DONE, timeout=30)
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert (account.setup_run, account.state) == (2, AccountState.ACTIVE)
    assert calls == [1, 2, 3]
    assert not AccountEvent.objects.filter(account=account, kind="step_gave_up").exists()
    assert not AttentionRecord.objects.filter(account=account).exists()
    assert not SetupStep.objects.filter(account=account, retry_requested=True).exists()


def test_it_gives_up_when_the_attempts_a_press_asked_for_fail_too(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pressed during the second attempt: the attempt that follows answers the press, and its failure ends the run.
    settings.SETUP_MAX_ATTEMPTS = 3
    account = new_account("gil@example.com")
    calls = workspace_provider_answering(monkeypatch, {2: lambda: pressed_try_again_now(account), 3: lambda: None})

    assert setup_finished(account) == {"workspace": False, "welcome_email": True}
    account.refresh_from_db()
    assert (account.setup_run, account.state) == (1, AccountState.NEEDS_ATTENTION)
    assert calls == [1, 2, 3]  # the third attempt, made at once for the press, was the last: no run after it
    assert AttentionRecord.objects.filter(account=account, kind=AttentionKind.SETUP_STALLED).count() == 1


def test_it_records_nothing_when_a_run_that_was_followed_by_another_gives_up_again(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("hui@example.com")
    setup_finished(account)
    setup.retry_setup(account=Account.objects.get(pk=account.pk))
    setup_finished(account)
    account.refresh_from_db()
    assert account.setup_run == 2
    SetupStep.objects.filter(account=account).update(status=StepStatus.RETRYING)
    records = AttentionRecord.objects.count()

    # Run 1's give-up replayed (the process died after it had started run 2, before its step was recorded).
    assert setup.give_up_setup_steps(account_id=account.pk, steps=["workspace"], workflow_id="setup:0:1".replace(
        "0", str(account.pk))) == []

    assert steps_of(account)["workspace"].status == StepStatus.RETRYING
    assert AttentionRecord.objects.count() == records


def test_it_resolves_the_undelivered_email_record_once_a_retry_delivers_it(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    FaultSetting.objects.set_modes({"email": "error"})
    account = new_account("eve@example.com")
    setup_finished(account)
    assert AttentionRecord.objects.filter(kind=AttentionKind.EMAIL_UNDELIVERED, resolved_at__isnull=True).exists()

    FaultSetting.objects.set_modes({"email": "ok"})
    account.refresh_from_db()
    setup.retry_setup(account=account)
    account.refresh_from_db()
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    assert Workspace.objects.filter(account=account).count() == 1

    assert Message.objects.get(key=f"welcome:{account.pk}").status == DeliveryStatus.SENT
    assert LocalMailboxItem.objects.filter(to="eve@example.com").count() == 1
    assert not AttentionRecord.objects.filter(resolved_at__isnull=True).exists()


@pytest.fixture
def held_setup_batches(settings: Any) -> Iterator[None]:
    """Setup batches are queued but none starts until the test releases them (or ends)."""
    batches = engine.queue(SETUP_BATCH_QUEUE)
    batches.set_worker_concurrency(0)
    time.sleep(3 * settings.QUEUE_POLL_SECONDS)  # the queue's runner rereads its limits once per poll
    yield
    release_setup_batches()


def release_setup_batches() -> None:
    engine.queue(SETUP_BATCH_QUEUE).set_worker_concurrency(SETUP_BATCHES_AT_ONCE)


def accounts_signed_up_together(*emails: str) -> list[Account]:
    """Accounts whose signups commit at once: the dispatcher sees them waiting together (a lone one gets its own
    workflow straight away)."""
    with transaction.atomic():
        return [new_account(email) for email in emails]


def wait_for_a_held_batch() -> str:
    """Until the dispatcher has queued the one batch a small burst fills (held), whose id it returns: it starts
    nothing else for those accounts while that batch waits to start."""
    (batch,) = wait_for(lambda: DBOS.list_workflows(status=["ENQUEUED"], queue_name=SETUP_BATCH_QUEUE,
                                                    load_input=False, load_output=False),
                        timeout=15, message="the dispatcher queued no batch")
    return str(batch.workflow_id)


def test_it_sets_up_a_lone_signup_in_its_own_workflow() -> None:
    account = new_account("solo@example.com")

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert (account.setup_run, account.setup_batch) == (1, OWN_SETUP_WORKFLOW)


def test_it_starts_no_setup_while_the_background_threads_are_held_and_catches_up_after(settings: Any) -> None:
    with engine.hold_background_threads():
        account = new_account("held@example.com")
        time.sleep(10 * settings.QUEUE_POLL_SECONDS)  # the dispatcher was woken and would have looked several times
        account.refresh_from_db()
        assert account.setup_batch == ""  # not claimed by any workflow

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}


@pytest.mark.usefixtures("held_setup_batches")
def test_it_makes_the_first_attempts_of_accounts_waiting_together_in_one_batch() -> None:
    accounts = accounts_signed_up_together(*(f"batch{i}@example.com" for i in range(5)))
    assert set(Account.objects.values_list("setup_batch", flat=True)) == {""}

    release_setup_batches()

    for account in accounts:
        assert setup_finished(account) == {"workspace": True, "welcome_email": True}
        assert DBOS.get_workflow_status(account.setup_workflow_id) is None  # nothing to retry: no workflow of its own
    (batch,) = set(Account.objects.values_list("setup_batch", flat=True))
    status = DBOS.get_workflow_status(batch)
    assert status is not None and status.output == {"accounts": 5, "handed_on": 0, "waiting": 0}
    assert [step["function_name"] for step in DBOS.list_workflow_steps(batch)] == [
        "claim_setup_batch", "provision_workspaces", "send_welcome_emails"]
    assert Workspace.objects.count() == LocalMailboxItem.objects.count() == 5
    assert AccountEvent.objects.filter(kind="activated").count() == 5


@pytest.mark.usefixtures("held_setup_batches")
def test_it_queues_as_many_batches_as_a_backlog_fills_to_run_side_by_side(settings: Any) -> None:
    settings.SETUP_BATCH_SIZE = 2
    accounts = accounts_signed_up_together(*(f"backlog{i}@example.com" for i in range(5)))

    held = wait_for(lambda: len(found := DBOS.list_workflows(
        status=["ENQUEUED"], queue_name=SETUP_BATCH_QUEUE, load_input=False, load_output=False)) == 3 and found,
        timeout=15, message="the dispatcher did not queue one batch per two waiting accounts")
    time.sleep(5 * settings.QUEUE_POLL_SECONDS)  # a few more looks: the queued batches are enough, no more are added
    still_held = DBOS.list_workflows(status=["ENQUEUED"], queue_name=SETUP_BATCH_QUEUE, load_input=False,
                                     load_output=False)
    assert {batch.workflow_id for batch in still_held} == {batch.workflow_id for batch in held}
    release_setup_batches()

    for account in accounts:
        assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    # Each account is claimed once and each batch claims at most its size. Once released batches have left the queue
    # but not yet claimed, the dispatcher sees accounts still waiting: a batch (or, for a lone one, its own workflow)
    # queued then may get there first. Claims are exclusive, so that costs a batch that finds nothing, not a second
    # setup.
    claims = Counter(Account.objects.values_list("setup_batch", flat=True))
    assert max(count for batch, count in claims.items() if batch != OWN_SETUP_WORKFLOW) <= 2
    assert Workspace.objects.count() == LocalMailboxItem.objects.count() == 5


@pytest.mark.usefixtures("held_setup_batches")
def test_it_puts_a_burst_held_up_by_an_open_breaker_back_to_wait_for_a_later_batch() -> None:
    open_breaker("workspace")  # next look in an hour
    accounts = accounts_signed_up_together("wait1@example.com", "wait2@example.com", "wait3@example.com")

    release_setup_batches()

    wait_for(lambda: all(steps_of(account)["workspace"].status == StepStatus.WAITING for account in accounts)
             and set(Account.objects.values_list("setup_batch", flat=True)) == {""}, timeout=15,
             message="the batch did not put the accounts back to wait")
    assert not Account.objects.awaiting_setup_batch().exists()  # not due before the breaker's next look
    assert all(steps_of(account)["welcome_email"].status == StepStatus.DONE for account in accounts)
    # Waiting costs no workflow of their own: a later batch looks again.
    assert all(DBOS.get_workflow_status(account.setup_workflow_id) is None for account in accounts)

    CircuitBreaker.objects.filter(provider="workspace").update(state=BreakerState.CLOSED, consecutive_failures=0,
                                                                 retry_at=None)
    SetupStep.objects.filter(name="workspace").update(next_attempt_at=timezone.now())  # the next look is due

    for account in accounts:
        assert setup_finished(account) == {"workspace": True, "welcome_email": True}
        assert DBOS.get_workflow_status(account.setup_workflow_id) is None
    assert Workspace.objects.count() == 3


@pytest.mark.usefixtures("held_setup_batches")
def test_it_gives_each_waiting_account_to_one_batch_and_claims_the_same_ones_when_run_again() -> None:
    accounts = accounts_signed_up_together(*(f"claim{i}@example.com" for i in range(3)))
    wait_for_a_held_batch()

    first = setup.claim_setup_batch(batch_id="setup-batch:first", size=2)
    second = setup.claim_setup_batch(batch_id="setup-batch:second", size=5)

    assert first == [accounts[0].pk, accounts[1].pk]
    assert second == [accounts[2].pk]
    assert setup.claim_setup_batch(batch_id="setup-batch:first", size=2) == first
    assert not Account.objects.awaiting_setup_batch().exists()


@pytest.mark.usefixtures("held_setup_batches")
def test_it_keeps_an_account_try_again_took_from_its_batch_out_of_later_batches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """"Try again now" between a batch's attempts (every step waiting on a breaker) and its hand-back."""
    open_breaker("workspace")  # the account's own workflow waits on it: the test looks only at who has the account
    account, _ = accounts_signed_up_together("try1@example.com", "try2@example.com")
    wait_for_a_held_batch()
    assert setup.claim_setup_batch(batch_id="setup-batch:mine", size=1) == [account.pk]
    SetupStep.objects.filter(account=account).update(status=StepStatus.WAITING, next_attempt_at=timezone.now())
    is_live = setup.dispatch.is_live
    monkeypatch.setattr(setup.dispatch, "is_live", lambda workflow_id: workflow_id == "setup-batch:mine"
                        or is_live(workflow_id))

    setup.retry_setup(account=Account.objects.get(pk=account.pk))
    setup.return_to_setup_batches(batch_id="setup-batch:mine", account_ids=[account.pk])

    assert Account.objects.get(pk=account.pk).setup_batch == OWN_SETUP_WORKFLOW
    assert account.pk not in setup.claim_setup_batch(batch_id="setup-batch:later", size=10)
    assert DBOS.get_workflow_status(account.setup_workflow_id) is not None


@pytest.mark.usefixtures("held_setup_batches")
def test_it_keeps_one_accounts_unexpected_error_to_that_account() -> None:
    broken, fine = accounts_signed_up_together("broken@example.com", "fine@example.com")
    Message.objects.filter(key=f"welcome:{broken.pk}").delete()  # a bug's doing: nothing to send

    release_setup_batches()

    assert setup_finished(fine) == {"workspace": True, "welcome_email": True}
    email = wait_for(lambda: (step := steps_of(broken)["welcome_email"]).attempts and step, timeout=15)
    assert (email.status, email.last_error) == (StepStatus.RETRYING, STEP_UNEXPECTED_ERROR)
    broken.refresh_from_db()
    assert broken.state == AccountState.ACTIVE  # its workspace was made in the same batch


@pytest.mark.usefixtures("held_setup_batches")
def test_it_reads_a_healthy_breaker_once_per_share_of_a_batch_not_once_per_account(
        monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = accounts_signed_up_together(*(f"share{i}@example.com" for i in range(12)))
    reads: Counter[str] = Counter()
    read_before_call = CircuitBreakerManager.read_before_call

    def counted(manager: CircuitBreakerManager, provider: str) -> BreakerReading:
        reads[provider] += 1
        return read_before_call(manager, provider)

    monkeypatch.setattr(CircuitBreakerManager, "read_before_call", counted)

    results = setup.attempt_first_setup_steps(account_ids=[account.pk for account in accounts],
                                                 step="welcome_email")

    assert {result["status"] for result in results.values()} == {"done"}
    assert LocalMailboxItem.objects.count() == 12
    assert reads["email"] == 0  # each share's one look at a healthy breaker is a plain read


@pytest.mark.usefixtures("held_setup_batches")
def test_it_stops_calling_a_provider_whose_breaker_opens_during_a_batch(settings: Any) -> None:
    # One failure opens it, inside the failing call's own recording: a share that has failed finds it open. (With a
    # higher threshold, shares failing at the same moment may each still read it closed and call once more.)
    settings.BREAKER_THRESHOLD = 1
    settings.BREAKER_COOLDOWN_SECONDS = 600  # no probe during the test
    FaultSetting.objects.set_modes({"email": "error"})
    accounts = accounts_signed_up_together(*(f"outage{i}@example.com" for i in range(24)))  # three per share

    results = setup.attempt_first_setup_steps(account_ids=[account.pk for account in accounts],
                                                 step="welcome_email")

    statuses = Counter(result["status"] for result in results.values())
    # Each share trusts the healthy breaker it read only until its own first failure: after that it asks the breaker,
    # open by then, and its remaining accounts wait instead of calling.
    assert statuses["failed"] <= setup.FIRST_ATTEMPTS_AT_ONCE
    assert statuses["failed"] + statuses["waiting"] == 24
    assert CircuitBreaker.objects.get(provider="email").consecutive_failures == statuses["failed"]
    assert not LocalMailboxItem.objects.exists()


@pytest.mark.usefixtures("held_setup_batches")
def test_it_restarts_setups_no_batch_has_claimed() -> None:
    stranded = accounts_signed_up_together("gus@example.com", "guy@example.com")
    wait_for_a_held_batch()

    assert setup.restart_stalled_setups(grace_seconds=0) == 2

    for account in stranded:
        assert setup_finished(account) == {"workspace": True, "welcome_email": True}
        account.refresh_from_db()
        assert account.state == AccountState.ACTIVE
        assert (account.setup_run, account.setup_batch) == (1, OWN_SETUP_WORKFLOW)  # no batch may claim it now
        assert AccountEvent.objects.filter(account=account, kind="setup_swept").count() == 1
    assert setup.restart_stalled_setups(grace_seconds=0) == 0


@pytest.mark.usefixtures("held_setup_batches")
def test_it_leaves_accounts_a_live_batch_has_claimed_to_that_batch() -> None:
    claimed = accounts_signed_up_together("ida@example.com", "ike@example.com")
    batch_id = wait_for_a_held_batch()
    assert setup.claim_setup_batch(batch_id=batch_id, size=5) == [account.pk for account in claimed]

    assert setup.restart_stalled_setups(grace_seconds=0) == 0

    assert set(Account.objects.values_list("setup_batch", flat=True)) == {batch_id}
    release_setup_batches()
    for account in claimed:
        assert setup_finished(account) == {"workspace": True, "welcome_email": True}
        assert DBOS.get_workflow_status(account.setup_workflow_id) is None  # the batch did it all
    assert not AccountEvent.objects.filter(kind="setup_swept").exists()


def account_taken_for_a_workflow_never_queued(monkeypatch: pytest.MonkeyPatch, email: str) -> Account:
    """An account the dispatcher took for its own workflow whose enqueue failed (a queue that refuses, then restored):
    the moment between the two, held open."""
    def queue_unavailable(name: str) -> Any:
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr(engine, "queue", queue_unavailable)
    account = new_account(email)
    wait_for(lambda: Account.objects.get(pk=account.pk).setup_batch == OWN_SETUP_WORKFLOW, timeout=15,
             message="the dispatcher never picked the account up")
    monkeypatch.undo()
    return Account.objects.get(pk=account.pk)


def test_it_restarts_a_setup_whose_workflow_never_started(monkeypatch: pytest.MonkeyPatch) -> None:
    stranded = account_taken_for_a_workflow_never_queued(monkeypatch, "gus@example.com")
    assert DBOS.get_workflow_status(stranded.setup_workflow_id) is None

    assert setup.restart_stalled_setups(grace_seconds=0) == 1

    assert setup_finished(stranded) == {"workspace": True, "welcome_email": True}
    assert Account.objects.get(pk=stranded.pk).setup_run == 1
    assert AccountEvent.objects.filter(account=stranded, kind="setup_swept").count() == 1
    assert setup.restart_stalled_setups(grace_seconds=0) == 0


def test_it_starts_the_runs_own_workflow_when_try_again_finds_it_not_started_yet(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second browser's same-password signup presses "try again" in that moment.
    account = account_taken_for_a_workflow_never_queued(monkeypatch, "hal@example.com")

    setup.retry_setup(account=account)

    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    assert Account.objects.get(pk=account.pk).setup_run == 1  # the same run, not a second one beside it


def test_it_leaves_a_live_setup_alone(settings: Any) -> None:
    settings.RETRY_BASE_SECONDS = 60
    settings.RETRY_CAP_SECONDS = 120
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("hal@example.com")
    wait_for(lambda: steps_of(account)["workspace"].status == StepStatus.RETRYING, timeout=15)

    assert setup.restart_stalled_setups(grace_seconds=0) == 0

    account.refresh_from_db()
    assert account.setup_run == 1
    assert not AccountEvent.objects.filter(account=account, kind="setup_swept").exists()
    FaultSetting.objects.set_modes({"workspace": "ok"})
    setup.retry_setup(account=account)
    assert setup_finished(account, timeout=20) == {"workspace": True, "welcome_email": True}


def test_it_starts_a_new_run_when_the_workflow_ended_with_steps_open(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1000
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("ivy@example.com")
    wait_for(lambda: steps_of(account)["workspace"].attempts >= 1
             and steps_of(account)["welcome_email"].status == StepStatus.DONE, timeout=15)
    DBOS.cancel_workflow(account.setup_workflow_id)

    assert setup.restart_stalled_setups(grace_seconds=0) == 1

    account.refresh_from_db()
    assert account.setup_run == 2
    # The provider recovers only once the new run is trying, so the cancelled run cannot be the one that finishes.
    wait_for(lambda: any(step["function_name"] == "provision_workspace"
                         for step in DBOS.list_workflow_steps(account.setup_workflow_id)), timeout=15)
    FaultSetting.objects.set_modes({"workspace": "ok"})
    # The welcome email was sent in run 1: run 2 finds it done and does not send it again (one welcome below).
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    assert Workspace.objects.filter(account=account).count() == 1
    assert LocalProvisionedWorkspace.objects.count() == 1
