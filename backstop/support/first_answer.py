"""How long each customer in the queue has waited for a first answer from a person, against a target per harm.

The clock starts when the case opened (the customer's trouble began then, whether or not they wrote) and stops at
the first reply staff sent on the case. The targets are a registry: one per harm level, each tested present."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Min

from backstop.attention.models import Harm
from backstop.support import messages
from backstop.support.models import ActionOutcome, Case, SupportAction

FIRST_ANSWER_TARGETS: dict[int, dt.timedelta] = {
    Harm.MONEY: dt.timedelta(hours=1),
    Harm.LOCKED_OUT: dt.timedelta(hours=2),
    Harm.DEGRADED: dt.timedelta(hours=8),
    Harm.QUESTION: dt.timedelta(hours=24),
}


@dataclass(frozen=True)
class FirstAnswer:
    text: str
    over_target: bool


def first_answers(cases: Iterable[Case], *, now: dt.datetime) -> dict[int, FirstAnswer]:
    """For each case: waiting so long (or answered after so long), and whether that is past its harm's target."""
    cases = list(cases)
    answered = dict(SupportAction.objects.filter(case__in=cases, action="reply", outcome=ActionOutcome.DONE)
                    .values("case_id").annotate(first=Min("created_at")).values_list("case_id", "first"))
    result = {}
    for case in cases:
        target = FIRST_ANSWER_TARGETS[case.harm]
        first = answered.get(case.pk)
        waited = (first or now) - case.opened_at
        template = messages.FIRST_ANSWER_GIVEN if first else messages.FIRST_ANSWER_WAITING
        result[case.pk] = FirstAnswer(
            text=template.format(waited=messages.duration_text(waited.total_seconds()),
                                 target=messages.duration_text(target.total_seconds())),
            over_target=waited > target)
    return result
