"""A case put aside wakes by itself: when anything new about the customer joins it (they wrote, a payment failed),
and when its snooze ends. Each wake is the ``wake`` action run by automation, so the audit says when and why."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from backstop.support import messages
from backstop.support.actions import run_action
from backstop.support.models import Case, CaseState, Signal

BATCH = 200


def wake_on_signal(signal: Signal) -> None:
    """Registered with support.cases: a signal just joined its case."""
    asleep = Q(waiting_since__isnull=False) | Q(snoozed_until__gt=timezone.now())
    if not Case.objects.filter(asleep, pk=signal.case_id, state=CaseState.OPEN).exists():
        return
    run_action(case_id=signal.case_id, staff=None, action="wake", key=f"wake:signal:{signal.pk}",
               params={"why": messages.WAKE_WHY_SIGNAL.format(summary=signal.summary)})


def wake_snoozes_that_ended() -> int:
    """The sweep: snoozes whose time has come are cleared (the queue already shows them), once each."""
    woken = 0
    due = (Case.objects.filter(state=CaseState.OPEN, snoozed_until__lte=timezone.now())
           .values_list("pk", "snoozed_until")[:BATCH])
    for case_id, until in due:
        run_action(case_id=case_id, staff=None, action="wake", key=f"wake:snooze:{case_id}:{until:%Y%m%d%H%M%S}",
                   params={"why": messages.WAKE_WHY_SNOOZE_OVER})
        woken += 1
    return woken
