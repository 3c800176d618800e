"""Setting an account up: its steps attempted (alone or in a batch), retried, restarted, given up, and swept.

Each step's result is recorded with the account's timeline in one short transaction; the workspace step done
activates the account (``activation``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

from dbos import SetWorkflowID
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from backstop.accounts.activation import _activate
from backstop.accounts.dispatcher import SETUP_BATCH_QUEUE
from backstop.accounts.messages import STEP_UNEXPECTED_ERROR
from backstop.accounts.models import (
    OWN_SETUP_WORKFLOW,
    STEP_PROVIDERS,
    Account,
    AccountEvent,
    AccountState,
    SetupStep,
    StepName,
    StepStatus,
)
from backstop.accounts.timeline import record_event, timeline_entry
from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, Harm, provider_cause
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime import dispatch, engine
from backstop.runtime.dispatch import LIVE_WORKFLOW_STATUSES
from backstop.runtime.guarded import Attention
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.retrying import RETRY_NOW, AttemptResult, call_through_breaker, failed_attempt
from backstop.workspaces.services import provision_workspace

log = logging.getLogger(__name__)


def retry_setup(*, account: Account) -> None:
    """Try the unfinished setup steps now: wake the running workflow, start the one that has not started, or start a
    new run when the last one ended or gave up.

    An account whose first attempts are still to come (or under way) in a setup batch has nothing to retry yet.
    """
    if not SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE).exists():
        return
    status = dispatch.workflow_status(account.setup_workflow_id)
    gave_up = SetupStep.objects.filter(account=account, status=StepStatus.FAILED).exists()
    if status in LIVE_WORKFLOW_STATUSES and not gave_up:
        if _ask_running_setup_to_retry(account):
            return
        gave_up = True  # the run gave up between the two looks: the next run starts below
    if status is None and _in_setup_batch(account):
        _carry_on_from_setup_batch(account)
        return
    if status is None and not gave_up:
        # This run's workflow is being started (the dispatcher took the account a moment ago) or never was, and it
        # still has steps to try: start it under the run's own id, which is one workflow however many start it. A new
        # run here would be a second one beside it. Steps that gave up need a new run: a run does not retry them.
        _enqueue_setup(account.pk, account.setup_run)
        return
    _start_new_setup_run(account)


def _ask_running_setup_to_retry(account: Account) -> bool:
    """Ask the account's running setup to try every step not done now; False when it gave up meanwhile.

    The run's loop tries them on the message, a step whose budget it spent meanwhile included. But the run reads its
    messages only between attempts: pressed while the final attempt is in flight, the message would find no reader.
    So the press is first written on the steps, then the steps are looked at again. The give-up reads the mark under
    the steps' lock: a run that ends out of budget after the mark starts the next run instead; one that gave up before
    it shows here as a step given up, and the caller starts the next run.
    """
    SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE).update(retry_requested=True)
    if SetupStep.objects.filter(account=account, status=StepStatus.FAILED).exists():
        return False
    dispatch.send(account.setup_workflow_id, RETRY_NOW, topic="setup")
    return True


def retry_setups_waiting_on(*, provider: str) -> int:
    """``provider`` works again: every account whose setup step on it is waiting, retrying or given up (its budget
    spent during the outage) tries again now, as if its owner had pressed "Try again now". Returns how many."""
    steps = [step for step, step_provider in STEP_PROVIDERS.items() if step_provider == provider]
    if not steps:
        return 0
    waiting = (Account.objects.exclude(state=AccountState.DISABLED)
               .filter(Exists(SetupStep.objects.filter(account=OuterRef("pk"), name__in=steps, status__in=(
                   StepStatus.WAITING, StepStatus.RETRYING, StepStatus.FAILED))))
               .order_by("pk"))
    retried = 0
    for account in list(waiting):
        try:
            retry_setup(account=account)
        except Exception:  # one account's trouble must not keep the others waiting; the sweep still has them
            log.exception("could not retry the setup of account %s after %s recovered", account.pk, provider)
            continue
        retried += 1
    return retried


def _carry_on_from_setup_batch(account: Account) -> None:
    """"Try again now" while the account's setup batch runs: once the batch has tried every step, start the
    account's own workflow now from those results (the batch's hand-over then finds it started).

    Before that the batch's first attempt is under way or seconds away, and a second caller could only race it.
    """
    rows = list(SetupStep.objects.filter(account=account))
    if any(row.status == StepStatus.PENDING for row in rows):
        return
    # From the batch that has it (or from waiting for one) to its own workflow, in one conditional UPDATE: a batch
    # handing the account back to wait for a later batch then matches nothing, and no later batch tries it beside its
    # own workflow.
    if not _take_off_setup_batches(account, from_batch=account.setup_batch):
        return  # a batch claimed it meanwhile: its attempt is under way
    _enqueue_setup(account.pk, account.setup_run, first_results={row.name: row.result_so_far() for row in rows})


def _in_setup_batch(account: Account) -> bool:
    """Whether a setup batch is yet to claim the account, or has claimed it and is still running."""
    if account.setup_run != 1 or account.setup_batch == OWN_SETUP_WORKFLOW:
        return False
    if not account.setup_batch:
        return True
    return dispatch.is_live(account.setup_batch_id)


def _take_off_setup_batches(account: Account, *, from_batch: str = "") -> bool:
    """Set the account up on its own from now on; False when a setup batch claimed it first.

    ``from_batch``: the batch whose attempts are over and that has yet to hand the account on ("" when none has it).
    """
    return bool(Account.objects.filter(pk=account.pk, setup_batch=from_batch).update(setup_batch=OWN_SETUP_WORKFLOW))


def _start_new_setup_run(account: Account) -> None:
    with transaction.atomic():
        # Conditional UPDATE: of two simultaneous retries exactly one starts the next run.
        won = Account.objects.filter(pk=account.pk, setup_run=account.setup_run).update(setup_run=F("setup_run") + 1)
        if not won:
            return
        _take_off_setup_batches(account)
        Account.objects.filter(pk=account.pk, state=AccountState.NEEDS_ATTENTION).update(
            state=AccountState.SETTING_UP
        )
        SetupStep.objects.filter(account=account, status=StepStatus.FAILED).update(
            status=StepStatus.PENDING, next_attempt_at=None, updated_at=timezone.now()
        )
        run = account.setup_run + 1
        record_event(account, "setup_restarted", "Setup started again.")
        transaction.on_commit(lambda: _enqueue_setup(account.pk, run))


def _enqueue_setup(account_id: int, run: int, first_results: dict[str, AttemptResult] | None = None) -> None:
    from backstop.accounts.workflows import setup_key, setup_operation

    try:
        setup_operation.start(account_id, setup_key(account_id, run), first_results=first_results)
    except Exception:  # the sweep restarts any setup whose workflow never started
        log.exception("could not enqueue setup for account %s; the sweep will retry", account_id)


def start_first_setups(*, size: int, at_most: int, already_queued: int = 0) -> list[str]:
    """Start the setup of accounts waiting for it: a lone account in its own workflow, several in batches.

    A batch pays a claim and a hand-over on top of what one account's own workflow costs, so it is worth it only when
    there are several to share them; under load, accounts pile up between two looks and go in batches. A backlog
    gets as many batches of ``size`` as it fills, up to ``at_most`` besides the ``already_queued`` ones that will claim
    their share first, so the queue runs them side by side instead of one per look (a batch queued while earlier ones
    are starting may find nothing left to claim, and ends). Returns the queued batches' ids.
    """
    from backstop.accounts.workflows import setup_batch_workflow

    waiting = Account.objects.awaiting_setup_batch()[: size * (already_queued + at_most)].count()
    if waiting == 1 and not already_queued:
        lone = Account.objects.awaiting_setup_batch().first()
        if lone is not None and _take_off_setup_batches(lone):
            _enqueue_setup(lone.pk, lone.setup_run)
        return []
    queued = []
    for _ in range(max(0, -(-waiting // size) - already_queued)):
        batch_id = f"setup-batch:{uuid.uuid4()}"
        with SetWorkflowID(batch_id):
            engine.queue(SETUP_BATCH_QUEUE).enqueue(setup_batch_workflow, size)
        queued.append(batch_id)
    return queued


def _welcome_key(account_id: int) -> str:
    return f"welcome:{account_id}"


_ALREADY_DONE: AttemptResult = {"status": "done", "retry_in": 0.0, "error": ""}
# Provider calls a setup batch makes at once for one step (threads of the step's own, each holding a database
# connection while it works): with dispatcher.SETUP_BATCHES_AT_ONCE batches, at most 32 per process, fewer than the
# SETUP_CONCURRENCY (50) per-account workflows a process may run.
FIRST_ATTEMPTS_AT_ONCE = 8


def attempt_setup_step(*, account_id: int, step: str, attempt: int) -> AttemptResult:
    """One attempt at one setup step, recorded on the step and the timeline. Safe to run twice."""
    row = SetupStep.objects.select_related("account").get(account_id=account_id, name=step)
    if row.status == StepStatus.DONE:
        return _ALREADY_DONE
    if row.retry_requested:  # this attempt answers the press; one pressed from now on waits for the next
        SetupStep.objects.filter(pk=row.pk).update(retry_requested=False)
    result = _attempt_or_failure(row, attempt)
    _record_step_results([row], attempt, {account_id: result})
    return result


def claim_setup_batch(*, batch_id: str, size: int) -> list[int]:
    """Claim up to ``size`` accounts waiting and due for a setup batch; safe to run twice (same answer or more).

    Two batches may read the same waiting accounts: the conditional UPDATE gives each account to one of them.
    """
    waiting = list(Account.objects.awaiting_setup_batch().values_list("pk", flat=True)[:size])
    if waiting:
        Account.objects.filter(pk__in=waiting, setup_batch="").update(setup_batch=batch_id)
    return list(Account.objects.filter(setup_batch=batch_id).order_by("pk").values_list("pk", flat=True))


def return_to_setup_batches(*, batch_id: str, account_ids: list[int]) -> None:
    """Accounts a batch found waiting on an open breaker wait for a later batch; safe to run twice."""
    Account.objects.filter(pk__in=account_ids, setup_batch=batch_id).update(setup_batch="")


def attempt_first_setup_steps(*, account_ids: list[int], step: str) -> dict[int, AttemptResult]:
    """The first attempt at ``step`` for a batch of accounts, recorded together. Safe to run twice.

    The provider calls run FIRST_ATTEMPTS_AT_ONCE at a time, so a slow provider delays a batch by its latency times
    batch size / that, not times batch size. One account's unexpected error is that account's failed attempt, not the
    batch's: its own workflow takes it on.
    """
    rows = list(SetupStep.objects.select_related("account").filter(account_id__in=account_ids, name=step))
    to_try = [row for row in rows if row.status != StepStatus.DONE]
    results: dict[int, AttemptResult] = {row.account_id: _ALREADY_DONE for row in rows if row.status == StepStatus.DONE}
    shares = [to_try[start::FIRST_ATTEMPTS_AT_ONCE] for start in range(min(FIRST_ATTEMPTS_AT_ONCE, len(to_try)))]
    if shares:
        # The welcome emails in one query, not one each: the batch path runs for every signup.
        welcome = (Message.objects.in_bulk([_welcome_key(row.account_id) for row in to_try], field_name="key")
                   if step == StepName.WELCOME_EMAIL else {})
        with ThreadPoolExecutor(max_workers=len(shares), initializer=engine.yield_cpu_to_requests) as pool:
            for share_results in pool.map(functools.partial(_first_attempts, welcome=welcome), shares):
                results.update(share_results)
    _record_step_results(to_try, 1, results)
    return results


def _first_attempts(rows: list[SetupStep], *, welcome: dict[str, Message]) -> dict[int, AttemptResult]:
    """One thread's share of a batch's first attempts (its database connections closed when done).

    The share reads its provider's breaker once: while it is closed with no failures and none of the share's calls
    fails, it stays so as far as this share can tell (another process's failures are seen at the next share, or
    after this share's own first failure, from which on every call reads the breaker again).
    """
    results: dict[int, AttemptResult] = {}
    healthy = bool(rows) and CircuitBreaker.objects.is_healthy(STEP_PROVIDERS[rows[0].name])
    try:
        for row in rows:
            results[row.account_id] = _attempt_or_failure(row, 1, known_healthy=healthy,
                                                          message=welcome.get(_welcome_key(row.account_id)))
            healthy = healthy and results[row.account_id]["status"] == "done"
    finally:
        engine.release_db_connections()
    return results


def _attempt_or_failure(row: SetupStep, attempt: int, *, known_healthy: bool = False,
                        message: Message | None = None) -> AttemptResult:
    """An attempt whose unexpected error (a bug, not a provider's answer) is a failed attempt like any other.

    It spends the retry budget and, once that is spent, reaches the support desk. Raised out of the step instead, it
    would end the workflow in error, and the safety net would start a new run that fails the same way, without end.
    """
    try:
        return _attempt(row, attempt, known_healthy=known_healthy, message=message)
    except Exception:
        log.exception("%s attempt %s for account %s failed unexpectedly", row.name, attempt, row.account_id)
        return failed_attempt(attempt, STEP_UNEXPECTED_ERROR)


def _attempt(row: SetupStep, attempt: int, *, known_healthy: bool = False,
             message: Message | None = None) -> AttemptResult:
    """``known_healthy`` as in ``call_through_breaker``; ``message``: the welcome email, when already read."""
    if row.name == StepName.WORKSPACE:
        provision = functools.partial(_provision, row.account)
        return call_through_breaker(STEP_PROVIDERS[StepName.WORKSPACE], attempt, provision, known_healthy=known_healthy)
    message = message or Message.objects.get(key=_welcome_key(row.account_id))
    if attempt > 1 or message.created_at < timezone.now() - LATE_WELCOME_AFTER:
        _say_sorry_if_late(row.account, message)
    return notify.deliver(message=message, attempt=attempt, known_healthy=known_healthy)


# A welcome email first tried this long after the signup may have waited through an outage (a first try moments after
# the signup has not: it skips the breaker's read).
LATE_WELCOME_AFTER = dt.timedelta(seconds=10)


def _say_sorry_if_late(account: Account, message: Message) -> None:
    """A welcome email that waited through an outage of the email provider now over says so itself, with the outage's
    window: one email keeps the banner's promise ("we'll send it when our email provider is back") and owns the
    delay, instead of a second one from support competing for the provider's rate (docs/decisions.md). Not when the
    provider may already hold its first words under its key (``reword_late_email``)."""
    from backstop.accounts.signup import email_verification_url

    if message.status not in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING):
        return
    breaker = (CircuitBreaker.objects.filter(pk=STEP_PROVIDERS[StepName.WELCOME_EMAIL], failing_since__isnull=False)
               .values_list("state", "failing_since", "recovered_at").first())
    if breaker is None:
        return
    state, since, until = breaker
    if state == BreakerState.HALF_OPEN:
        # This send may be the breaker's trial call: if it goes through, the outage ends now. If it does not, the
        # next attempt words it again with the window as it then stands (the words are decided at each attempt).
        until = timezone.now()
    elif state != BreakerState.CLOSED or until is None or until < message.created_at:
        return
    if since is None or until is None:  # failing_since is set (the filter); the check tells the type checker
        return
    notify.reword_late_email(message=message, template="welcome_late", context={
        "account": account, "verify_url": email_verification_url(account),
        "signed_up": _utc_text(account.created_at), "since": _utc_text(since), "until": _utc_text(until)})


def _utc_text(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%H:%M} UTC on {moment.astimezone(dt.UTC):%-d %b}"


def _provision(account: Account) -> None:
    provision_workspace(account_id=account.pk, name=account.company)


def _record_step_results(rows: list[SetupStep], attempt: int, results: dict[int, AttemptResult]) -> None:
    """Record one step's attempt for several accounts in one short transaction: a batch writes as much as one account.

    Only rows not done meanwhile change (a step recorded done by an earlier run of this attempt, or completed by
    support, gets no second entry). Few statements, whatever the number of rows: on SQLite the write lock this holds
    keeps web requests waiting.
    """
    if not rows:
        return
    now = timezone.now()
    step = StepName(rows[0].name)
    events: list[AccountEvent] = []
    with transaction.atomic():
        still_open = set(SetupStep.objects.select_for_update().filter(pk__in=[row.pk for row in rows])
                         .exclude(status=StepStatus.DONE).values_list("pk", flat=True))
        done = [row for row in rows if results[row.account_id]["status"] == "done"]
        SetupStep.objects.filter(pk__in=[row.pk for row in done if row.pk in still_open]).update(
            status=StepStatus.DONE, done_at=now, next_attempt_at=None, last_error="", attempts=attempt, updated_at=now
        )
        events += [timeline_entry(row.account_id, "step_done", f"{step.label}: done on attempt {attempt}.")
                   for row in done if row.pk in still_open]
        done_ids = [row.account_id for row in done]
        if step == StepName.WORKSPACE:
            events += _activate(done_ids, delayed={row.account_id for row in done if row.was_delayed()})
        else:
            attention.resolve(kind=AttentionKind.EMAIL_UNDELIVERED, account_ids=done_ids, how="email delivered")
        unfinished = [row for row in rows if row.pk in still_open and results[row.account_id]["status"] != "done"]
        for row in unfinished:
            result = results[row.account_id]
            row.next_attempt_at, row.updated_at = now + dt.timedelta(seconds=result["retry_in"]), now
            if result["status"] == "failed":
                row.status, row.attempts, row.last_error = StepStatus.RETRYING, attempt, result["error"]
                events.append(timeline_entry(row.account_id, "step_failed",
                                             f"{step.label}: attempt {attempt} failed: {result['error']}."))
            else:
                row.status = StepStatus.WAITING
        SetupStep.objects.bulk_update(unfinished, ["status", "attempts", "last_error", "next_attempt_at", "updated_at"])
        # One INSERT for all the timeline entries: this runs once per attempt of every signup.
        AccountEvent.objects.bulk_create(events)


def give_up_setup_steps(*, account_id: int, steps: list[str], workflow_id: str) -> list[Attention]:
    """The retry budget of the run ``workflow_id`` is spent: record it, and return what the support desk must hear
    (the records the setup operation raises in this transaction's stead: its give-up runs this inside its own).

    "Try again now" pressed during the run's final attempt starts the next run instead; a run already followed by
    another (this give-up replayed after it started the next one) records nothing.
    """
    account = Account.objects.get(pk=account_id)
    if account.setup_workflow_id != workflow_id:
        return []
    now = timezone.now()
    with transaction.atomic():
        # Locked, so a step support completes meanwhile is not recorded as given up after it was done, and a press
        # of "Try again now" is either seen here or finds the steps given up (``_ask_running_setup_to_retry``).
        rows = list(SetupStep.objects.select_for_update().filter(account=account, name__in=steps)
                    .exclude(status=StepStatus.DONE))
        if any(row.retry_requested for row in rows):
            _start_new_setup_run(account)
            return []
        SetupStep.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=StepStatus.FAILED, next_attempt_at=None, updated_at=now
        )
        detail = {r.name: {"attempts": r.attempts, "last_error": r.last_error} for r in rows}
        for row in rows:
            record_event(account, "step_gave_up", f"{StepName(row.name).label}: stopped retrying after "
                                                   f"{row.attempts} attempts ({row.last_error}).")
        records = []
        workspace = detail.get(StepName.WORKSPACE)
        if workspace is not None:
            Account.objects.filter(pk=account.pk, state=AccountState.SETTING_UP).update(
                state=AccountState.NEEDS_ATTENTION
            )
            records.append(Attention(
                kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause=provider_cause("workspace"),
                account=account, detail=detail,
                summary=f"Workspace for {account.email} could not be created after "
                        f"{workspace['attempts']} attempts: {workspace['last_error']}",
            ))
        if any(r.name == StepName.WELCOME_EMAIL for r in rows):
            # Missing only through a bug (the step's attempts said so): support still hears of the email.
            welcome = Message.objects.filter(key=_welcome_key(account_id)).values_list("pk", flat=True).first()
            if welcome is not None:
                notify.give_up_message(message_id=welcome)
            records.append(Attention(
                kind=AttentionKind.EMAIL_UNDELIVERED, harm=Harm.DEGRADED, cause=provider_cause("email"),
                account=account, detail=detail,
                summary=f"Welcome email to {account.email} could not be delivered: "
                        f"{detail[StepName.WELCOME_EMAIL]['last_error']}",
            ))
    return records


def restart_stalled_setups(*, grace_seconds: float, limit: int = 200) -> int:
    """Safety net: restart setup for accounts whose steps are open but whose workflow is not running.

    That covers an account no setup batch claimed in time, and one whose batch ended without handing it on.
    """
    cutoff = timezone.now() - dt.timedelta(seconds=grace_seconds)
    accounts = list(Account.objects.with_open_setup_since(cutoff)[:limit])
    # One look at the engine for every workflow in question: during an outage's backlog the sweep meets hundreds.
    statuses = dispatch.workflow_statuses(
        {account.setup_workflow_id for account in accounts}
        | {account.setup_batch_id for account in accounts if account.setup_batch_id}
    )
    restarted = 0
    for account in accounts:
        status = statuses.get(account.setup_workflow_id)
        if status in LIVE_WORKFLOW_STATUSES:
            continue
        if status is None and statuses.get(account.setup_batch_id) in LIVE_WORKFLOW_STATUSES:
            continue  # its setup batch is still at work on it
        if status is None and not account.setup_batch and not _take_off_setup_batches(account):
            continue  # a setup batch claimed it meanwhile
        record_event(account, "setup_swept", "Setup was not running; the safety net restarted it.")
        if status is None:
            _enqueue_setup(account.pk, account.setup_run)
        else:
            _start_new_setup_run(account)
        restarted += 1
    return restarted

