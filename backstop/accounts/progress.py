"""The one read model of an account's setup, used by the pages, the JSON API and (later) support."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from backstop.accounts.messages import (
    NEEDS_ATTENTION_WAITING_ON_PROVIDER,
    NEXT_ATTEMPT_AT,
    NEXT_ATTEMPT_NOW,
    PROVIDER_NAMES,
    RETRY_PROVIDER_DOWN,
    RETRY_STARTED,
    STEP_BUDGET_SPENT_TEXT,
    STEP_FAILED_WAITING_ON_PROVIDER,
    STEP_RETRYING_PROVIDER_DOWN,
    STEP_STATUS_TEXT,
    VERIFY_EMAIL_BANNER,
    VERIFY_EMAIL_BANNER_SENDING,
    VERIFY_EMAIL_BANNER_UNSENT,
    notice,
)
from backstop.accounts.models import STEP_PROVIDERS, Account, AccountState, SetupStep, StepName, StepStatus
from backstop.attention import hooks as attention_hooks
from backstop.runtime.models import BreakerState, CircuitBreaker

# Who hears of a promise the setup page makes the customer: a next-try time ("retry_at"), or "our support team has
# it" for a step that stopped retrying ("handed_over"). The support desk keeps each as a commitment on their case.
# Apps above accounts register in their ready(); registration is idempotent.
PromiseListener = Callable[..., None]
_promise_listeners: list[PromiseListener] = []


def on_setup_promise(listener: PromiseListener) -> None:
    """Call ``listener(account=, step=, promise=, due_at=)`` for each promise the customer is shown."""
    if listener not in _promise_listeners:
        _promise_listeners.append(listener)


@dataclass(frozen=True)
class StepProgress:
    name: str
    label: str
    status: str
    status_text: str
    attempts: int
    last_error: str
    next_attempt_at: dt.datetime | None


@dataclass(frozen=True)
class SetupProgress:
    state: str
    state_label: str
    steps: list[StepProgress]
    email_verified: bool
    banner: str
    message: str
    can_retry: bool
    # The welcome email has not gone and is not on its first try: the banner offers to send it again.
    welcome_email_unsent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_spent(step: SetupStep) -> bool:
    """The step's last automatic attempt failed; the run has not handed it over yet (another step still runs)."""
    return step.status == StepStatus.RETRYING and step.attempts >= int(settings.SETUP_MAX_ATTEMPTS)


def next_attempt_text(at: dt.datetime | None, *, now: dt.datetime) -> str:
    """A time still ahead, or "now": a next try already due (or under way) is never shown as a time in the past."""
    if at is None or at <= now:
        return NEXT_ATTEMPT_NOW
    return NEXT_ATTEMPT_AT.format(at=at.strftime("%H:%M:%S UTC"))


def providers_down(steps: list[SetupStep]) -> set[str]:
    """The providers (``STEP_PROVIDERS`` values) of these unfinished steps whose breaker is not closed: calls to them
    are paused, so no try of those steps happens before the provider answers again."""
    providers = {STEP_PROVIDERS[step.name] for step in steps if step.status != StepStatus.DONE}
    if not providers:
        return set()
    return set(CircuitBreaker.objects.filter(pk__in=providers).exclude(state=BreakerState.CLOSED)
               .values_list("pk", flat=True))


def _waits_for_provider(step: Any, down: set[str]) -> bool:
    return step.status in (StepStatus.RETRYING, StepStatus.WAITING) and STEP_PROVIDERS[step.name] in down


def _status_text(step: Any, *, now: dt.datetime, waiting_on_incident: bool = False,
                 down: frozenset[str] | set[str] = frozenset()) -> str:
    if budget_spent(step):
        text = STEP_BUDGET_SPENT_TEXT
    elif step.status == StepStatus.RETRYING and STEP_PROVIDERS[step.name] in down:
        text = STEP_RETRYING_PROVIDER_DOWN
    elif step.status == StepStatus.FAILED and waiting_on_incident:
        text = STEP_FAILED_WAITING_ON_PROVIDER
    else:
        text = STEP_STATUS_TEXT[step.status]
    return text.format(
        attempts=step.attempts, error=step.last_error or "no answer",
        next_attempt=next_attempt_text(step.next_attempt_at, now=now), provider=PROVIDER_NAMES[step.name],
    )


def _welcome_banner(account: Account, welcome: Any, *, waiting_on_incident: bool) -> tuple[str, bool]:
    """The verification banner as true as the welcome email's state: (text, whether it is unsent past its first try).

    Only an email that went can be pointed at; one that could not be sent yet is said to be so, with what we do about
    it: retrying, waiting for the provider (whose recovery sends it: ``setup.retry_setups_waiting_on``), or a person's.
    """
    if welcome is None or welcome.status == StepStatus.DONE:
        return VERIFY_EMAIL_BANNER.format(email=account.email), False
    if welcome.status == StepStatus.PENDING and welcome.attempts == 0:
        return VERIFY_EMAIL_BANNER_SENDING.format(email=account.email), False
    if welcome.status in (StepStatus.PENDING, StepStatus.RETRYING):
        why = "retrying"
    elif welcome.status == StepStatus.WAITING or waiting_on_incident or CircuitBreaker.objects.filter(
            pk=STEP_PROVIDERS[StepName.WELCOME_EMAIL]).exclude(state=BreakerState.CLOSED).exists():
        why = "provider_down"
    else:
        why = "gave_up"
    return VERIFY_EMAIL_BANNER_UNSENT[why].format(email=account.email), True


def _promised_at(step: SetupStep, *, now: dt.datetime, down: set[str]) -> dt.datetime | None:
    """The next-try time the page names, or None (it says "now", or names no time: none while the step waits for its
    provider, whose breaker holds the try until it answers again)."""
    if budget_spent(step) or _waits_for_provider(step, down):
        return None
    return step.next_attempt_at if step.next_attempt_at is not None and step.next_attempt_at > now else None


def retry_answer(account: Account) -> str:
    """What "Try again now" did, truthfully: when the provider of every step left is down, nothing was tried (its
    recovery tries them), so the answer says that rather than "trying again now" (``RETRY_STARTED``)."""
    rows = [row for row in account.setup_steps.all() if row.status != StepStatus.DONE]
    down = providers_down(rows)
    if rows and all(STEP_PROVIDERS[row.name] in down for row in rows):
        provider = PROVIDER_NAMES[next(row.name for row in rows)]
        return RETRY_PROVIDER_DOWN.text.format(provider=provider)
    return RETRY_STARTED.text


def setup_progress(account: Account, *, action: str = "setup_page", for_customer: bool = True) -> SetupProgress:
    """``for_customer``: shown to the customer (a time named there is a promise); False for staff's view."""
    now = timezone.now()
    rows = list(account.setup_steps.all())
    # What the desk shows for this customer decides who the page says is handling a step that gave up: a case
    # waiting on an incident is automation's ("no action needed"), one in the queue a person's.
    waiting_on_incident = (any(row.status == StepStatus.FAILED for row in rows)
                           and account.pk in attention_hooks.accounts_waiting_on_an_incident([account.pk]))
    down = providers_down(rows)
    steps = [
        StepProgress(
            name=step.name, label=StepName(step.name).label, status=step.status,
            status_text=_status_text(step, now=now, waiting_on_incident=waiting_on_incident, down=down),
            attempts=step.attempts, last_error=step.last_error, next_attempt_at=_promised_at(step, now=now, down=down),
        )
        for step in rows
    ]
    if for_customer:
        for step in rows:
            due = _promised_at(step, now=now, down=down)
            handed_over = step.status == StepStatus.FAILED and not waiting_on_incident
            promise = "retry_at" if due is not None else "handed_over" if handed_over else ""
            for listener in _promise_listeners if promise else ():
                listener(account=account, step=step, promise=promise, due_at=due)
    verified = account.email_verified_at is not None
    banner, unsent = _welcome_banner(account, next((r for r in rows if r.name == StepName.WELCOME_EMAIL), None),
                                     waiting_on_incident=waiting_on_incident)
    message = notice(account.state, action).text
    if account.state == AccountState.NEEDS_ATTENTION and waiting_on_incident:
        # Only the workspace step giving up makes an account need attention.
        message = NEEDS_ATTENTION_WAITING_ON_PROVIDER.text.format(provider=PROVIDER_NAMES[StepName.WORKSPACE])
    return SetupProgress(
        state=account.state,
        state_label=account.get_state_display(),
        steps=steps,
        email_verified=verified,
        banner="" if verified else banner,
        message=message,
        can_retry=any(step.status != "done" for step in steps),
        welcome_email_unsent=unsent and not verified,
    )
