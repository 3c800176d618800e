"""Making amends at scale: one message per affected customer naming what they lost, and an optional credit of days
to each affected paying customer. Previewed first; idempotent per click and per customer; audited and counted."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from backstop.billing.credits import NotCreditable, active_plan, grant_credit
from backstop.incidents import messages
from backstop.incidents.lifecycle import record_event, staff_source
from backstop.incidents.models import AffectedCustomer, AmendsAction, EventKind, Incident
from backstop.notify import services as notify
from backstop.notify.models import Message


@dataclass(frozen=True)
class Amend:
    customer: AffectedCustomer
    text: str
    paying: bool


def _minutes(start: dt.datetime, end: dt.datetime) -> int:
    return max(1, round((end - start).total_seconds() / 60))


def message_key(incident: Incident, account_id: int) -> str:
    return f"incident-amends:{incident.pk}:{account_id}"


def amend_for(incident: Incident, row: AffectedCustomer, *, credit_days: int, now: dt.datetime) -> Amend:
    account = row.account
    paying = active_plan(email=account.email, account=account) is not None
    since = max(row.first_seen_at, incident.started_at) if row.first_seen_at else incident.started_at
    until = row.recovered_at or now
    finished = (messages.AMENDS_FINISHED.format(at=f"{row.recovered_at:%H:%M} UTC") if row.recovered_at
                else messages.AMENDS_NOT_FINISHED)
    credit = messages.AMENDS_CREDIT.format(days=credit_days) if credit_days and paying else ""
    text = messages.AMENDS_TEXT.format(
        name=account.name or account.email, capability=messages.capability_name(incident.capability),
        start=f"{incident.started_at:%Y-%m-%d %H:%M}", end=f"{(incident.mitigated_at or now):%H:%M}",
        lost=messages.LOST_NAMES.get(row.lost, row.lost), minutes=_minutes(incident.started_at, until),
        finished=finished, credit=credit, since=f"{since:%H:%M}")
    return Amend(customer=row, text=text, paying=paying)


def preview_amends(*, incident_id: int, credit_days: int) -> list[Amend]:
    incident = Incident.objects.get(pk=incident_id)
    now = timezone.now()
    rows = AffectedCustomer.objects.filter(incident=incident).select_related("account").order_by("first_seen_at", "pk")
    return [amend_for(incident, row, credit_days=credit_days, now=now) for row in rows]


def request_amends(*, incident_id: int, credit_days: int, staff: Any, idempotency_key: str) -> AmendsAction:
    """Write the click down (once per key) and hand it to its workflow (``incidents.workflows``) once committed: the
    request answers at once however many customers there are. A second click with the same key is the first one."""
    from backstop.incidents.workflows import amends_operation

    try:
        with transaction.atomic():
            action = AmendsAction.objects.create(incident_id=incident_id, idempotency_key=idempotency_key,
                                                 staff=staff, credit_days=credit_days)
    except IntegrityError:
        return AmendsAction.objects.get(idempotency_key=idempotency_key)
    amends_operation.start_after_commit(action.pk, idempotency_key)
    return action


def carry_out_amends(*, action_id: int) -> AmendsAction:
    """Tell (and credit) every affected customer of the action's incident once: each message and credit has its
    customer's key, so a run interrupted half-way and run again, or another action, tells nobody twice."""
    action = AmendsAction.objects.select_related("incident", "staff").get(pk=action_id)
    if action.finished_at is not None:
        return action
    incident, staff, credit_days = action.incident, action.staff, action.credit_days
    sent = credited = already = 0
    for amend in preview_amends(incident_id=incident.pk, credit_days=credit_days):
        account = amend.customer.account
        key = message_key(incident, account.pk)
        if Message.objects.filter(key=key).exists():
            already += 1
        else:
            message = notify.create_email(account=account, kind="incident_amends", key=key, to=account.email,
                                          context={"subject": messages.AMENDS_SUBJECT.format(
                                              capability=messages.capability_name(incident.capability)),
                                              "text": amend.text})
            notify.send_soon(message)
            sent += 1
        if credit_days and amend.paying:
            try:
                credited += grant_credit(email=account.email, account=account, days=credit_days,
                                         reason=messages.AMENDS_CREDIT_REASON.format(incident=incident.title),
                                         actor=f"staff:{getattr(staff, 'email', 'automation')}",
                                         key=f"incident-credit:{incident.pk}:{account.pk}")
            except NotCreditable:
                pass  # the plan ended between the preview and the click: nothing to extend
    finished = timezone.now()
    if AmendsAction.objects.filter(pk=action.pk, finished_at__isnull=True).update(
            messages_sent=sent, credits_granted=credited, already_done=already, finished_at=finished):
        record_event(incident=incident, kind=EventKind.AMENDS_SENT, source=staff_source(staff), at=finished,
                     text=messages.AMENDS_EVENT.format(sent=sent, credited=credited, days=credit_days,
                                                       already=already),
                     detail={"action": action.pk})
    action.refresh_from_db()
    return action


def unfinished_amends(grace_seconds: float) -> list[tuple[int, str]]:
    """Clicks whose workflow may never have started (the process stopped after the commit): the sweep starts them."""
    before = timezone.now() - dt.timedelta(seconds=grace_seconds)
    return list(AmendsAction.objects.filter(finished_at__isnull=True, created_at__lt=before)
                .order_by("created_at").values_list("pk", "idempotency_key")[:200])


def amends_counts(incident: Incident) -> dict[str, int]:
    totals = AmendsAction.objects.filter(incident=incident).aggregate(sent=Sum("messages_sent"),
                                                                       credited=Sum("credits_granted"))
    return {"messages": totals["sent"] or 0, "credits": totals["credited"] or 0,
            "actions": AmendsAction.objects.filter(incident=incident).count()}
