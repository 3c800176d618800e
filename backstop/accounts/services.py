"""Account actions: each one a keyword-only function that writes every model it touches in one go."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import logging
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from dbos import SetWorkflowID
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

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
    VerificationCode,
    setup_workflow_id,
)
from backstop.accounts.validation import SignupData, clean_new_password, clean_signup, normalise_password
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify
from backstop.notify.models import Message
from backstop.ratelimits.services import Limit, check_rate_limit
from backstop.runtime import dispatch, engine
from backstop.runtime.dispatch import LIVE_WORKFLOW_STATUSES
from backstop.runtime.models import CircuitBreaker
from backstop.runtime.retrying import RETRY_NOW, AttemptResult, call_through_breaker, failed_attempt
from backstop.support.models import AttentionKind, AttentionRecord, Signal
from backstop.workspaces.services import provision_workspace

log = logging.getLogger(__name__)

SIGNUP_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
LOGIN_LIMIT = Limit(per_ip=60, per_email=10, window_seconds=900)
RECOVER_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
# The newest codes a guess is compared with: as many as recovery's limit lets one address ask for in an hour.
LIVE_CODES_CHECKED = 5
VERIFY_LIMIT = Limit(per_ip=30, per_email=10, window_seconds=3600)
VERIFY_EMAIL_SALT = "backstop.verify-email"
VERIFY_LINK_MAX_AGE = 7 * 24 * 3600
# A real Argon2 hash to check against when the email is unknown, so both answers take as long.
_TIMING_DECOY = make_password(secrets.token_urlsafe(16))


class EmailTaken(Exception):
    pass


class InvalidCredentials(Exception):
    pass


class AccountDisabled(Exception):
    pass


class CodeRejected(Exception):
    pass


@dataclass(frozen=True)
class SignupResult:
    account: Account
    outcome: Literal["created", "resumed"]


def timeline_entry(account: Account | int, kind: str, text: str) -> AccountEvent:
    """An unsaved entry for the account's timeline (``record_event`` saves one; a step's result saves several)."""
    account_id = account if isinstance(account, int) else account.pk
    return AccountEvent(account_id=account_id, kind=kind, text=text[:500])


def record_event(account: Account | int, kind: str, text: str) -> None:
    timeline_entry(account, kind, text).save()


def signup_account(
    *, name: str, email: str, phone: str, company: str, password: str, ip: str
) -> SignupResult:
    """Create the account and queue its setup; never makes a second account for one address."""
    data = clean_signup(name=name, email=email, phone=phone, company=company, password=password)
    check_rate_limit(action="signup", limit=SIGNUP_LIMIT, ip=ip, email_key=data.email_key)
    existing = Account.objects.by_email_key(data.email_key)
    if existing is not None:
        return _signup_again(existing, data.password)
    hashed = make_password(data.password)
    try:
        account = _create_account(data, hashed)
    except IntegrityError:  # a simultaneous signup for the same address won the unique constraint
        return _signup_again(Account.objects.get(email_key=data.email_key), data.password)
    return SignupResult(account=account, outcome="created")


@transaction.atomic
def _create_account(data: SignupData, hashed_password: str) -> Account:
    account = Account.objects.create(
        email=data.email, email_key=data.email_key, name=data.name, company=data.company, phone=data.phone,
        password=hashed_password, setup_batch="",
    )
    SetupStep.objects.bulk_create([SetupStep(account=account, name=name) for name in StepName.values])
    notify.create_email(
        account=account, kind="welcome", key=_welcome_key(account.pk), to=account.email,
        context={"account": account, "verify_url": email_verification_url(account)},
    )
    record_event(account, "signed_up", f"Signed up as {account.email} for {account.company}.")
    # The process's setup dispatcher starts it (its own workflow, or a batch in a burst) as soon as this commits.
    transaction.on_commit(engine.wake_setup_dispatcher)
    return account


def _signup_again(account: Account, password: str) -> SignupResult:
    same_password = check_password(password, account.password)
    if same_password and account.state in (AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION):
        record_event(account, "signed_up_again", "Signed up again with the same password; setup retried.")
        retry_setup(account=account)
        account.refresh_from_db()
        return SignupResult(account=account, outcome="resumed")
    if not same_password:
        _tell_owner_about_signup_attempt(account)
    raise EmailTaken


def _tell_owner_about_signup_attempt(account: Account) -> None:
    # At most one notice an hour, whatever the number of attempts.
    hour = timezone.now().strftime("%Y%m%d%H")
    context = {"account": account, "login_url": f"{settings.BASE_URL}/login",
               "recover_url": f"{settings.BASE_URL}/recover"}
    with transaction.atomic():
        messages = [notify.create_email(account=account, kind="signup_attempt", to=account.email, context=context,
                                        key=f"signup-attempt:{account.pk}:{hour}")]
        if account.phone:
            messages.append(notify.create_sms(account=account, kind="signup_attempt",
                                              key=f"signup-attempt-sms:{account.pk}:{hour}", to=account.phone,
                                              context=context))
        record_event(account, "signup_attempt", "Someone tried to sign up again with this email and another password.")
        for message in messages:
            notify.send_soon(message)


def authenticate_account(*, email: str, password: str, ip: str) -> Account:
    key = email_key(email)
    check_rate_limit(action="login", limit=LOGIN_LIMIT, ip=ip, email_key=key)
    password = normalise_password(password)
    account = Account.objects.by_email_key(key) if key else None
    if account is None:
        check_password(password, _TIMING_DECOY)
        raise InvalidCredentials
    if not account.check_password(password):
        raise InvalidCredentials
    if account.state == AccountState.DISABLED:
        raise AccountDisabled
    record_event(account, "signed_in", "Signed in with password.")
    return account


def retry_setup(*, account: Account) -> None:
    """Try the unfinished setup steps now: wake the running workflow, start the one that has not started, or start a
    new run when the last one ended or gave up.

    An account whose first attempts are still to come (or under way) in a setup batch has nothing to retry yet.
    """
    if not SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE).exists():
        return
    status = dispatch.workflow_status(account.setup_workflow_id)
    if status in LIVE_WORKFLOW_STATUSES:
        dispatch.send(account.setup_workflow_id, RETRY_NOW, topic="setup")
        return
    if status is None and _in_setup_batch(account):
        _carry_on_from_setup_batch(account)
        return
    if status is None and not SetupStep.objects.filter(account=account, status=StepStatus.FAILED).exists():
        # This run's workflow is being started (the dispatcher took the account a moment ago) or never was, and it
        # still has steps to try: start it under the run's own id, which is one workflow however many start it. A new
        # run here would be a second one beside it. Steps that gave up need a new run: a run does not retry them.
        _enqueue_setup(account.pk, account.setup_run)
        return
    _start_new_setup_run(account)


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
    from backstop.accounts.workflows import setup_workflow

    try:
        dispatch.enqueue(setup_workflow, account_id, first_results, queue_name=engine.SETUP_QUEUE,
                         workflow_id=setup_workflow_id(account_id, run))
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
            engine.queue(engine.SETUP_BATCH_QUEUE).enqueue(setup_batch_workflow, size)
        queued.append(batch_id)
    return queued


def _welcome_key(account_id: int) -> str:
    return f"welcome:{account_id}"


_ALREADY_DONE: AttemptResult = {"status": "done", "retry_in": 0.0, "error": ""}
# Provider calls a setup batch makes at once for one step (threads of the step's own, each holding a database
# connection while it works): with engine.SETUP_BATCHES_AT_ONCE batches, at most 32 per process, fewer than the
# SETUP_CONCURRENCY (50) per-account workflows a process may run.
FIRST_ATTEMPTS_AT_ONCE = 8


def attempt_setup_step(*, account_id: int, step: str, attempt: int) -> AttemptResult:
    """One attempt at one setup step, recorded on the step and the timeline. Safe to run twice."""
    row = SetupStep.objects.select_related("account").get(account_id=account_id, name=step)
    if row.status == StepStatus.DONE:
        return _ALREADY_DONE
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
    return notify.deliver(message=message or Message.objects.get(key=_welcome_key(row.account_id)), attempt=attempt,
                          known_healthy=known_healthy)


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
            AttentionRecord.objects.resolve_for_accounts(account_ids=done_ids, kind=AttentionKind.EMAIL_UNDELIVERED,
                                                         how="email delivered")
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


def _activate(account_ids: list[int], *, delayed: set[int]) -> list[AccountEvent]:
    """Make the accounts active that are not yet; returns the timeline entries to record with it.

    The ``delayed`` accounts (their workspace was not done at its first look) get the "ready" email the setup page
    promises: their owners were told to wait and may have left the page.
    """
    # Rows locked (PostgreSQL) or the write lock held (SQLite): the accounts read here are the ones updated.
    activated = sorted(Account.objects.select_for_update().filter(
        pk__in=account_ids, state__in=(AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
    ).values_list("pk", flat=True))
    if not activated:
        return []
    Account.objects.filter(pk__in=activated).update(state=AccountState.ACTIVE, activated_at=timezone.now())
    AttentionRecord.objects.resolve_for_accounts(account_ids=activated, kind=AttentionKind.SETUP_STALLED,
                                                 how="setup finished")
    waited = [account_id for account_id in activated if account_id in delayed]
    # Support's own "fixed" email, with the outage's times, tells those whose wait it has on a case.
    told_by_support = Signal.objects.accounts_waiting_on_workspace_in_a_case(waited)
    for account in Account.objects.filter(pk__in=set(waited) - told_by_support):
        _tell_owner_the_workspace_is_ready(account)
    return [timeline_entry(account_id, "activated", "Workspace ready: the account is active.")
            for account_id in activated]


def _tell_owner_the_workspace_is_ready(account: Account) -> None:
    message = notify.create_email(account=account, kind="account_ready", key=f"ready:{account.pk}", to=account.email,
                                  context={"account": account, "login_url": f"{settings.BASE_URL}/login"})
    notify.send_soon(message)


def give_up_setup_steps(*, account_id: int, steps: list[str]) -> None:
    """The retry budget is spent: record it and hand the account to the support desk."""
    account = Account.objects.get(pk=account_id)
    now = timezone.now()
    with transaction.atomic():
        # Locked, so a step support completes meanwhile is not recorded as given up after it was done.
        rows = list(SetupStep.objects.select_for_update().filter(account=account, name__in=steps)
                    .exclude(status=StepStatus.DONE))
        SetupStep.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=StepStatus.FAILED, next_attempt_at=None, updated_at=now
        )
        detail = {r.name: {"attempts": r.attempts, "last_error": r.last_error} for r in rows}
        for row in rows:
            record_event(account, "step_gave_up", f"{StepName(row.name).label}: stopped retrying after "
                                                   f"{row.attempts} attempts ({row.last_error}).")
        workspace = detail.get(StepName.WORKSPACE)
        if workspace is not None:
            Account.objects.filter(pk=account.pk, state=AccountState.SETTING_UP).update(
                state=AccountState.NEEDS_ATTENTION
            )
            AttentionRecord.objects.raise_once(
                kind=AttentionKind.SETUP_STALLED, account=account, detail=detail,
                summary=f"Workspace for {account.email} could not be created after "
                        f"{workspace['attempts']} attempts: {workspace['last_error']}",
            )
        if any(r.name == StepName.WELCOME_EMAIL for r in rows):
            # Missing only through a bug (the step's attempts said so): support still hears of the email.
            welcome = Message.objects.filter(key=_welcome_key(account_id)).values_list("pk", flat=True).first()
            if welcome is not None:
                notify.give_up_message(message_id=welcome)
            AttentionRecord.objects.raise_once(
                kind=AttentionKind.EMAIL_UNDELIVERED, account=account, detail=detail,
                summary=f"Welcome email to {account.email} could not be delivered: "
                        f"{detail[StepName.WELCOME_EMAIL]['last_error']}",
            )


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


# --- Email verification and sign-in codes ---------------------------------------------------------

def email_verification_url(account: Account) -> str:
    token = signing.dumps({"a": account.pk, "e": account.email_key}, salt=VERIFY_EMAIL_SALT)
    return f"{settings.BASE_URL}/verify/email/{token}"


def verify_email_token(*, token: str) -> Account | None:
    try:
        data = signing.loads(token, salt=VERIFY_EMAIL_SALT, max_age=VERIFY_LINK_MAX_AGE)
    except signing.BadSignature:
        return None
    account = Account.objects.filter(pk=data.get("a"), email_key=data.get("e")).first()
    if account is not None and account.verify_email():
        record_event(account, "email_verified", "Email address confirmed by link.")
    return account


def _hash_code(account_id: int, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{account_id}:{code}".encode(), hashlib.sha256).hexdigest()


def send_sign_in_code(*, email: str, ip: str) -> None:
    """Send a one-time code by SMS and email. Says nothing about whether the address exists."""
    key = email_key(email)
    check_rate_limit(action="recover", limit=RECOVER_LIMIT, ip=ip, email_key=key)
    account = Account.objects.by_email_key(key) if key else None
    if account is None or account.state == AccountState.DISABLED:
        return
    code = f"{secrets.randbelow(10**6):06d}"
    with transaction.atomic():
        record = VerificationCode.objects.create(
            account=account, code_hash=_hash_code(account.pk, code),
            expires_at=timezone.now() + dt.timedelta(seconds=settings.VERIFICATION_CODE_TTL_SECONDS),
        )
        context: dict[str, Any] = {"account": account, "code": code, "verify_url": f"{settings.BASE_URL}/verify"}
        messages = [notify.create_email(account=account, kind="sign_in_code", key=f"code:{record.pk}:email",
                                        to=account.email, context=context, secret=code)]
        if account.phone:
            messages.append(notify.create_sms(account=account, kind="sign_in_code", key=f"code:{record.pk}:sms",
                                              to=account.phone, context=context, secret=code))
        record_event(account, "code_sent", "A sign-in code was sent by SMS and email.")
        for message in messages:
            notify.send_soon(message)


def redeem_sign_in_code(*, email: str, code: str, ip: str, new_password: str = "") -> Account:
    """Check a code (5 tries, 10 minutes, once). A correct code proves the person: email verified."""
    key = email_key(email)
    check_rate_limit(action="verify", limit=VERIFY_LIMIT, ip=ip, email_key=key)
    new_password = normalise_password(new_password)
    if new_password:
        errors: dict[str, str] = {}
        clean_new_password(new_password, errors, email=email)
        if errors:
            raise InvalidInput({"new_password": errors["password"]})
    account = Account.objects.by_email_key(key) if key else None
    if account is None or account.state == AccountState.DISABLED:
        raise CodeRejected
    now = timezone.now()
    # Every code sent in the last 10 minutes works, not only the newest: an SMS that arrives late, after the person
    # asked again, must not send them round in a circle. The tries are counted on the newest code, so asking again
    # gives five new tries, never five per code still live.
    live = list(VerificationCode.objects.filter(account=account, used_at__isnull=True, expires_at__gt=now)
                .order_by("-created_at")[:LIVE_CODES_CHECKED])
    if not live:
        raise CodeRejected
    # Conditional UPDATE: each guess claims one of the newest code's tries, so parallel guesses cannot exceed them.
    claimed = VerificationCode.objects.filter(
        pk=live[0].pk, tries__lt=settings.VERIFICATION_CODE_MAX_TRIES
    ).update(tries=F("tries") + 1)
    if not claimed:
        raise CodeRejected
    hashed = _hash_code(account.pk, code.strip())
    match = next((record for record in live if hmac.compare_digest(record.code_hash, hashed)), None)
    # Conditional UPDATE: a code signs in once, even if submitted twice at the same moment.
    if match is None or not VerificationCode.objects.filter(pk=match.pk, used_at__isnull=True).update(used_at=now):
        raise CodeRejected
    # Signed in: the other codes still in the person's inbox and phone are spent too.
    VerificationCode.objects.filter(account=account, used_at__isnull=True).update(used_at=now)
    with transaction.atomic():
        if account.verify_email():
            record_event(account, "email_verified", "Identity confirmed with a one-time code.")
        if new_password:
            account.set_password(new_password)
            account.save(update_fields=["password"])
            record_event(account, "password_reset", "Password changed after signing in with a code.")
        record_event(account, "signed_in", "Signed in with a one-time code.")
    account.refresh_from_db()
    return account

