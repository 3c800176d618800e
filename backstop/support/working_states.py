"""Working states of an open case: assigned to a member of staff, waiting on the customer, snoozed until a time.

The handlers are staff actions (support.actions.STAFF_ACTIONS), so each click runs once and is audited with the
state before and after like any other. A case put aside leaves the queue (``Case.objects.queue``) and comes back by
itself: when its snooze ends, and when anything new about the customer joins it (support.wakeups).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.support import messages
from backstop.support.models import ActionOutcome, Case, CaseState

MAX_SNOOZE_HOURS = 24 * 30
DEFAULT_SNOOZE_HOURS = 24


def is_asleep(case: Case, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return case.waiting_since is not None or (case.snoozed_until is not None and case.snoozed_until > now)


def assign_to_me(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["assign_to_me"]
    if staff is None or case.assigned_to_id == staff.pk:
        return ActionOutcome.ALREADY_DONE, text.already
    before = case.assigned_to.email if case.assigned_to is not None else ""
    Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(assigned_to=staff)
    return ActionOutcome.DONE, (messages.ASSIGNED_FROM.format(who=before) if before else text.done)


def wait_on_customer(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["wait_on_customer"]
    if not Case.objects.filter(pk=case.pk, state=CaseState.OPEN, waiting_since__isnull=True).update(
            waiting_since=timezone.now(), snoozed_until=None):
        return ActionOutcome.ALREADY_DONE, text.already
    return ActionOutcome.DONE, text.done


def snooze(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["snooze"]
    # The form checked the range (the registry's field); left empty, until this time tomorrow.
    hours = int(params.get("hours") or DEFAULT_SNOOZE_HOURS)
    until = timezone.now() + dt.timedelta(hours=hours)
    Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(snoozed_until=until, waiting_since=None)
    return ActionOutcome.DONE, text.done.format(until=f"{until:%H:%M UTC, %-d %b}")


def wake(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    """Back in the queue now: a person's click, the snooze's end, or something new about the customer (``why``)."""
    text = messages.ACTIONS["wake"]
    asleep = Q(waiting_since__isnull=False) | Q(snoozed_until__isnull=False)
    if not Case.objects.filter(asleep, pk=case.pk).update(waiting_since=None, snoozed_until=None):
        return ActionOutcome.ALREADY_DONE, text.already
    why = str(params.get("why", "")).strip()
    return ActionOutcome.DONE, (messages.WOKEN_BECAUSE.format(why=why) if why else text.done)


def applies_assign(case: Case) -> bool:
    return case.is_open


def applies_put_aside(case: Case) -> bool:
    return case.is_open and not is_asleep(case)


def applies_wake(case: Case) -> bool:
    return case.is_open and is_asleep(case)


def state_text(case: Case, now: dt.datetime | None = None) -> str:
    """The case's working state in words, for its page and the desk's list of cases put aside."""
    now = now or timezone.now()
    parts = []
    if case.assigned_to is not None:
        parts.append(messages.STATE_ASSIGNED.format(who=case.assigned_to.email))
    if case.waiting_since is not None:
        parts.append(messages.STATE_WAITING.format(since=f"{case.waiting_since:%H:%M UTC, %-d %b}"))
    if case.snoozed_until is not None:
        template = messages.STATE_SNOOZED if case.snoozed_until > now else messages.STATE_SNOOZE_OVER
        parts.append(template.format(until=f"{case.snoozed_until:%H:%M UTC, %-d %b}"))
    return " · ".join(parts)


SLEEPING_SHOWN = 50


def sleeping_cases(*, now: dt.datetime | None = None) -> list[tuple[Case, str]]:
    """The cases put aside, each with its state in words (the desk lists them under the queue)."""
    now = now or timezone.now()
    cases = Case.objects.sleeping().select_related("assigned_to")[:SLEEPING_SHOWN]
    return [(case, state_text(case, now)) for case in cases]
