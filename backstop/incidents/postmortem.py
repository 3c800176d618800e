"""The post-mortem draft of one incident, after the Google SRE template, with every fact the system knows filled in.

What only a person knows (why the provider failed, what went well) is asked as a question ("**Question:** ..."), never
left as a placeholder. The action items come from the desk (owner, priority, due date, estimate); the capacity
section compares the open P0/P1 hours with what the team said it can give, and asks what to drop or defer when they
exceed it. The responders' section asks the people who handled it how it was for them, naming the newest on-call.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db.models import Sum
from django.utils import timezone

from backstop.accounts.models import Account, AccountState
from backstop.billing.models import Order, OrderStatus
from backstop.incidents import hooks, messages
from backstop.incidents.models import (
    ActionItem,
    AffectedCustomer,
    EventKind,
    Incident,
    IncidentEvent,
    Priority,
    TeamCapacity,
)
from backstop.incidents.timeline import build_timeline, incident_window
from backstop.notify.models import DeliveryStatus, Message

REVIEW_AFTER = dt.timedelta(days=30)
QUESTION = "**Question:**"


def _at(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "not yet"


def _duration(start: dt.datetime, end: dt.datetime | None) -> str:
    if end is None:
        return "still going"
    minutes, seconds = divmod(int((end - start).total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {seconds} s" if hours else f"{minutes} min {seconds} s"


@dataclass(frozen=True)
class CapacityCheck:
    open_hours: int  # open P0/P1 items' estimates
    available_hours: int  # the team's hours until the last of them is due
    exceeded: bool
    capacity_set: bool


def capacity_check(now: dt.datetime | None = None) -> CapacityCheck:
    """Across every incident: do the open P0/P1 items fit in what the team can give before they are due?"""
    today = (now or timezone.now()).date()
    urgent = ActionItem.objects.filter(done_at__isnull=True, priority__in=(Priority.P0, Priority.P1))
    open_hours = urgent.aggregate(total=Sum("estimate_hours"))["total"] or 0
    capacity = TeamCapacity.objects.first()
    if capacity is None:
        return CapacityCheck(open_hours, 0, exceeded=False, capacity_set=False)
    last_due = max([today, *urgent.values_list("due", flat=True)])
    weeks = max(1, -(-(last_due - today).days // 7))
    available = capacity.people * capacity.hours_per_week * weeks
    return CapacityCheck(open_hours, available, exceeded=open_hours > available, capacity_set=True)


def newest_on_call() -> Account | None:
    """The staff member who joined last: the one most likely to have found this hard, and least likely to say."""
    staff = Account.objects.filter(is_staff=True).exclude(state=AccountState.DISABLED)
    return staff.order_by("-created_at", "-pk").first()


def draft_postmortem(incident: Incident) -> str:
    start, end = incident_window(incident)
    ended = incident.resolved_at
    affected = list(AffectedCustomer.objects.filter(incident=incident).select_related("account"))
    accounts = [row.account for row in affected]
    lines: list[str] = [f"# Post-mortem: {incident.title} ({incident.get_severity_display()})", ""]

    lines += ["## Summary", "",
              f"{messages.capability_name(incident.capability)} failed from {_at(incident.started_at)} "
              f"to {_at(incident.mitigated_at)} ({_duration(incident.started_at, incident.mitigated_at)}); "
              f"the incident was resolved at {_at(ended)}. {len(affected)} customers were affected "
              f"(severity {incident.get_severity_display()}: {messages.SEVERITY_RULE_SHORT}).", ""]

    lines += ["## Impact", ""]
    lost = Counter(row.lost for row in affected)
    for what, count in sorted(lost.items()):
        lines.append(f"- {count} customers could not finish: {messages.LOST_NAMES.get(what, what)}")
    still = sum(1 for row in affected if row.recovered_at is None)
    lines.append(f"- {len(affected) - still} of them recovered by themselves; {still} still affected now")
    states = Counter(account.get_state_display() for account in accounts)
    if states:
        lines.append("- Their accounts now: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    paying = Order.objects.filter(account__in=accounts, status=OrderStatus.PAID)
    by_currency = paying.values("currency").annotate(total=Sum("amount_cents")).order_by("currency")
    money = ", ".join(f"{row['total'] / 100:.2f} {row['currency'].upper()}" for row in by_currency) or "0.00"
    lines.append(f"- Money at risk: {paying.values('account').distinct().count()} paying customers, "
                 f"{money} in paid orders")
    emails = Message.objects.filter(created_at__gte=start, created_at__lte=end)
    by_status = Counter(emails.values_list("status", flat=True))
    lines.append(f"- Emails and texts during the incident: {sum(by_status.values())} "
                 f"({by_status.get(DeliveryStatus.SENT, 0)} sent, {by_status.get(DeliveryStatus.FAILED, 0)} failed)")
    contacts = hooks.contacts_between(start, end)
    if contacts is None:
        lines.append(f"- {QUESTION} who wrote to us during the incident? (no desk answered)")
    elif not contacts:
        lines.append("- Nobody wrote to us during the incident.")
    else:
        lines.append(f"- {len(contacts)} customers wrote in:")
        lines += [f"  - {c.at:%H:%M} {c.email}: \"{' '.join(c.text.split())[:140]}\"" for c in contacts]
    lines.append("")

    lines += ["## Timeline", "", "| time (UTC) | source | what |", "| --- | --- | --- |"]
    lines += [f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.source} | {e.text.replace('|', '/')} |"
              for e in build_timeline(incident)]
    lines.append("")

    last_error = incident.last_error or "none recorded"
    deploys = [e.text for e in build_timeline(incident) if e.kind == EventKind.DEPLOY]
    lines += ["## Root cause and trigger", "",
              f"- Recorded: the {incident.capability or 'affected'} provider's last error was \"{last_error}\".",
              f"- Deploys near the start: {'; '.join(deploys) if deploys else 'none recorded'}.",
              f"- {QUESTION} what made the provider fail, and what triggered it at {_at(incident.started_at)}?", ""]

    detected_after = _duration(incident.started_at, incident.detected_at)
    opened = incident.get_opened_by_display()
    first_update = incident.updates.order_by("created_at").first()
    lines += ["## Detection", "",
              f"- Detected at {_at(incident.detected_at)}, {detected_after} after the first failure ({opened}).",
              f"- Customers were first told at {_at(first_update.created_at if first_update else None)}.",
              f"- {QUESTION} could we have known sooner, or told customers sooner?", ""]

    recovery = IncidentEvent.objects.filter(incident=incident, kind=EventKind.FIRST_RECOVERY).first()
    lines += ["## Resolution", "",
              f"- The first call that succeeded again: {_at(recovery.at if recovery else None)}.",
              f"- Mitigated at {_at(incident.mitigated_at)}, resolved at {_at(ended)}.",
              f"- {QUESTION} did we fix it, or did the provider recover by itself?", ""]

    lines += ["## What went well", "", f"- {QUESTION} what worked that we should keep?", "",
              "## What went badly", "", f"- {QUESTION} what slowed us down or hurt customers more than it had to?", "",
              "## Where we got lucky", "", f"- {QUESTION} what could have made this much worse, and did not?", ""]

    items = list(ActionItem.objects.filter(incident=incident).select_related("owner"))
    lines += ["## Action items", ""]
    if items:
        lines += ["| priority | item | owner | due | estimate | done |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {i.priority} | {i.title} | {i.owner.name or i.owner.email} | {i.due:%Y-%m-%d} | "
                  f"{i.estimate_hours} h | {_at(i.done_at) if i.done_at else 'open'} |" for i in items]
    else:
        lines.append(f"- {QUESTION} what will we change so that this does not happen again, or hurts less?")
    check = capacity_check()
    lines += ["", "### Capacity", ""]
    if not check.capacity_set:
        lines.append(f"- {QUESTION} how many people, and how many hours a week each, can the team give this "
                     "follow-up work? (set it once on the desk)")
    elif check.exceeded:
        lines.append(f"- **Warning:** the open P0/P1 items need {check.open_hours} h; the team has "
                     f"{check.available_hours} h before the last of them is due. {QUESTION} which do we drop, "
                     "or defer to P2?")
    else:
        lines.append(f"- The open P0/P1 items need {check.open_hours} h of the team's {check.available_hours} h.")
    lines.append("")

    responders = sorted({e.source.removeprefix("staff:") for e in IncidentEvent.objects.filter(incident=incident)
                         if e.source.startswith("staff:")})
    newest = newest_on_call()
    lines += ["## Responders", "",
              f"- Who responded: {', '.join(responders) if responders else 'nobody acted on the desk'}."]
    if newest is not None:
        lines.append(f"- {newest.name or newest.email} joined on {newest.created_at:%Y-%m-%d}, the newest of us "
                     f"on call. {QUESTION} {newest.name or newest.email}, how was this for you? What did you not "
                     "know, and who could you not reach?")
    lines.append(f"- {QUESTION} how was it for each responder? What would have made it easier?")
    lines.append("")
    return "\n".join(lines)
