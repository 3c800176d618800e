"""The weekly summary emailed to staff: cases opened and resolved, time to a first answer (and how many within the
target for their harm), what automation fixed, and the incidents. One email per staff member per ISO week, for the
week that ended (the key makes a second pass, or a second process, send nothing)."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Min, Q
from django.urls import reverse

from backstop.accounts.models import Account, AccountState
from backstop.notify import services as notify
from backstop.notify.models import Message
from backstop.support import messages
from backstop.support.first_answer import FIRST_ANSWER_TARGETS
from backstop.support.models import ActionOutcome, Case, Incident, Resolution, SupportAction
from backstop.support.notifications import in_quiet_hours


@dataclass(frozen=True)
class IncidentLine:
    provider: str
    started_at: dt.datetime
    customers: int
    state: str


@dataclass(frozen=True)
class WeeklyFigures:
    start: dt.datetime
    end: dt.datetime
    label: str
    opened: int
    resolved: int
    fixed_by_automation: int
    answered: int
    within_target: int
    median_first_answer: str
    incidents: list[IncidentLine]
    desk_url: str


def last_week(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Monday 00:00 UTC to Monday 00:00 UTC of the ISO week before the one ``now`` is in."""
    monday = dt.datetime.combine(now.astimezone(dt.UTC).date() - dt.timedelta(days=now.astimezone(dt.UTC).weekday()),
                                 dt.time.min, tzinfo=dt.UTC)
    return monday - dt.timedelta(days=7), monday


def weekly_figures(*, start: dt.datetime, end: dt.datetime) -> WeeklyFigures:
    in_week = Q(opened_at__gte=start, opened_at__lt=end)
    opened = list(Case.objects.filter(in_week).values_list("pk", "harm", "opened_at"))
    resolved = Case.objects.filter(resolved_at__gte=start, resolved_at__lt=end).exclude(resolution=Resolution.MERGED)
    first = dict(SupportAction.objects.filter(case_id__in=[pk for pk, _, _ in opened], action="reply",
                                              outcome=ActionOutcome.DONE)
                 .values("case_id").annotate(first=Min("created_at")).values_list("case_id", "first"))
    waits = {pk: first[pk] - opened_at for pk, _, opened_at in opened if pk in first}
    harm_of = {pk: harm for pk, harm, _ in opened}
    within = sum(1 for pk, wait in waits.items() if wait <= FIRST_ANSWER_TARGETS[harm_of[pk]])
    median = statistics.median(w.total_seconds() for w in waits.values()) if waits else None
    incidents = [IncidentLine(provider=messages.provider_name(i.provider), started_at=i.started_at,
                              customers=i.customers_affected, state=i.get_state_display())
                 for i in Incident.objects.filter(started_at__gte=start, started_at__lt=end).order_by("started_at")]
    iso = start.isocalendar()
    return WeeklyFigures(
        start=start, end=end, label=messages.WEEKLY_LABEL.format(year=iso.year, week=iso.week, start=start,
                                                                 last=end - dt.timedelta(days=1)),
        opened=len(opened), resolved=resolved.count(),
        fixed_by_automation=resolved.filter(resolution=Resolution.AUTOMATION).count(), answered=len(waits),
        within_target=within,
        median_first_answer=messages.duration_text(median) if median is not None else messages.WEEK_NO_MEDIAN,
        incidents=incidents, desk_url=f"{settings.BASE_URL}{reverse('desk')}")


def send_weekly_summary(*, now: dt.datetime) -> int:
    """Email last week's figures to every staff member who has not had them; returns how many were written now."""
    if in_quiet_hours(now):
        return 0  # the next pass after the quiet hours sends it
    start, end = last_week(now)
    figures = weekly_figures(start=start, end=end)
    iso = start.isocalendar()
    written = 0
    for staff in Account.objects.filter(is_staff=True).exclude(state=AccountState.DISABLED).order_by("pk"):
        key = f"support-weekly:{iso.year}-W{iso.week:02d}:{staff.pk}"
        if Message.objects.filter(key=key).exists():
            continue
        message = notify.create_email(account=None, kind="support_weekly", key=key, to=staff.email,
                                      context={"figures": figures, "targets": _targets_text()})
        notify.send_soon(message)  # the same key from another process is one message, delivered once
        written += 1
    return written


def _targets_text() -> str:
    return ", ".join(f"{messages.HARM_LABELS[harm].lower()} {messages.duration_text(target.total_seconds())}"
                     for harm, target in sorted(FIRST_ANSWER_TARGETS.items(), reverse=True))
