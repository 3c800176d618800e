"""Read models of the desk: the queue, incident cards, the case page, the reply draft and the week. No writes."""

from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db.models import Count, Model, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from backstop.accounts.models import Account, AccountEvent, StepStatus
from backstop.accounts.progress import SetupProgress, setup_progress
from backstop.lib.email_identity import email_key
from backstop.notify.models import Message
from backstop.runtime.models import CircuitBreaker, Executor
from backstop.support import charts, messages, payments, triage
from backstop.support.actions import StaffAction, offered_on
from backstop.support.first_answer import FirstAnswer, first_answers
from backstop.support.models import (
    SETUP_KINDS,
    ActionOutcome,
    Case,
    CaseNote,
    CaseState,
    Commitment,
    CommitmentKind,
    Contact,
    InboundAttachment,
    InboundMessage,
    Incident,
    Resolution,
    SavedReply,
    Signal,
    SupportAction,
)
from backstop.workspaces.models import Workspace

QUEUE_PAGE = 50
# What we wrote to the customer ourselves is shown word for word on the timeline.
SHOWN_IN_FULL = frozenset({"support_reply", "support_ack", "support_resolved"})
# The case page shows the newest entries of the timeline; "show earlier" pages back through all of it.
TIMELINE_PAGE = 50
# The case page's panels (their rows feed the timeline's first page too).
CONTACTS_SHOWN = 50
ACTIONS_SHOWN = 100
MESSAGES_SHOWN = 100
INBOUND_SHOWN = 100
DID_ACTIONS = frozenset(messages.DID_TEXT)


def _hhmm(moment: dt.datetime | None) -> str:
    return f"{moment:%H:%M}" if moment else ""


def age_text(since: dt.datetime, now: dt.datetime) -> str:
    return messages.duration_text((now - since).total_seconds())


# --- Incidents -----------------------------------------------------------------------------------------

def incident_card_text(incident: Incident, *, waiting: int | None = None) -> str:
    if waiting is None:
        waiting = Case.objects.filter(incident=incident, state=CaseState.OPEN).count()
    doing = messages.INCIDENT_DOING[incident.state].format(
        cleared=_hhmm(incident.cleared_at), resolved=_hhmm(incident.resolved_at))
    return messages.INCIDENT_CARD.format(
        provider=messages.provider_name(incident.provider).capitalize(), how=messages.failing_how(incident.last_error),
        since=_hhmm(incident.started_at), count=waiting, s=messages.plural(waiting), doing=doing)


@dataclass(frozen=True)
class IncidentCard:
    incident: Incident
    text: str
    waiting: int
    needs_hand: int
    needs_hand_text: str
    # The incident records of the same outage (status page, timeline, post-mortem): the card links to them.
    records: list[Any]


def incident_cards() -> list[IncidentCard]:
    cards = []
    for incident in Incident.objects.active().prefetch_related("records"):
        waiting = Case.objects.filter(incident=incident, state=CaseState.OPEN).count()
        needs_hand = Case.objects.filter(left_incident=incident, state=CaseState.OPEN).count()
        cards.append(IncidentCard(
            incident=incident, text=incident_card_text(incident, waiting=waiting), waiting=waiting,
            needs_hand=needs_hand,
            needs_hand_text=messages.INCIDENT_NEEDS_HAND.format(count=needs_hand) if needs_hand else "",
            records=list(incident.records.all()),
        ))
    return cards


# --- The queue ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueRow:
    case: Case
    harm_label: str
    suggestion: triage.Suggestion
    age: str
    # The first promise to this customer not kept yet, due soonest (empty when none), and when it is due (the page
    # shows that moment in the reader's zone).
    promise: str = ""
    promise_due: dt.datetime | None = None
    # How long they have waited for a first answer from a person, and whether past the target for the harm.
    first_answer: FirstAnswer | None = None


def _promises_due(cases: list[Case], now: dt.datetime) -> dict[int, tuple[str, dt.datetime]]:
    """For each case, the unkept promise due soonest, in words: what a person owes the customer, and by when."""
    due: dict[int, tuple[str, dt.datetime]] = {}
    open_ones = (Commitment.objects.filter(case__in=cases, kept_at__isnull=True, due_at__isnull=False)
                 .order_by("due_at", "id"))
    for commitment in open_ones:
        if commitment.case_id in due or commitment.due_at is None:
            continue
        text = messages.QUEUE_PROMISE_OVERDUE if commitment.due_at < now else messages.QUEUE_PROMISE
        due[commitment.case_id] = (text.format(text=commitment.text, due=f"{commitment.due_at:%H:%M, %-d %b}"),
                                   commitment.due_at)
    return due


def _suggestion_for(case: Case, failing: dict[str, CircuitBreaker], *, person_promised: bool) -> triage.Suggestion:
    account = case.account
    suggestion = triage.suggest(kinds=case.kinds, failing=failing, has_phone=bool(account and account.phone))
    if suggestion.action == "wait" and person_promised:
        # "No action needed" would contradict what the customer was told (a person finishes it): automation still
        # retries, and the person owes them word of where it stands.
        return triage.Suggestion("reply", messages.SUGGESTION_REASONS["reply_person_promised"])
    return suggestion


def _person_promised(case_ids: list[int]) -> set[int]:
    """The cases holding an open "a person will finish it"."""
    return set(Commitment.objects.filter(case_id__in=case_ids, kind=CommitmentKind.PERSON_FINISHES,
                                         kept_at__isnull=True).values_list("case_id", flat=True))


@dataclass(frozen=True)
class DeskHome:
    incidents: list[IncidentCard]
    rows: list[QueueRow]
    total: int
    week: WeekPicture
    runner_warning: str
    record_link: str = messages.RECORD_LINK


def runner_warning(*, now: dt.datetime) -> str:
    """A card when no process has run workflows lately: the one outage the support cycle cannot report, as it runs
    in those processes."""
    last = Executor.objects.last_heartbeat()
    if last is not None and now - last < dt.timedelta(seconds=settings.EXECUTOR_DEAD_AFTER_SECONDS):
        return ""
    since = (messages.NO_WORKFLOW_RUNNER_EVER if last is None
             else messages.NO_WORKFLOW_RUNNER_SINCE.format(moment=last.strftime("%Y-%m-%d %H:%M")))
    return messages.NO_WORKFLOW_RUNNER.format(since=since)


def desk_home(*, now: dt.datetime | None = None) -> DeskHome:
    now = now or timezone.now()
    failing = triage.failing_providers()
    queue = Case.objects.queue()
    cases = list(queue.select_related("account", "assigned_to")[:QUEUE_PAGE])
    promises = _promises_due(cases, now)
    promised = _person_promised([c.pk for c in cases])
    answers = first_answers(cases, now=now)
    rows = [QueueRow(case=c, harm_label=messages.HARM_LABELS[c.harm],
                     suggestion=_suggestion_for(c, failing, person_promised=c.pk in promised),
                     age=age_text(c.opened_at, now), promise=promises.get(c.pk, ("", None))[0],
                     promise_due=promises.get(c.pk, ("", None))[1], first_answer=answers[c.pk])
            for c in cases]
    total = len(rows) if len(rows) < QUEUE_PAGE else queue.count()
    return DeskHome(incidents=incident_cards(), rows=rows, total=total, week=week_picture(now=now),
                    runner_warning=runner_warning(now=now))


# --- The week ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayStat:
    day: dt.date
    opened: int
    resolved: int


@dataclass(frozen=True)
class WeekPicture:
    days: list[DayStat]
    opened: int
    resolved: int
    median_seconds: float | None
    automated: int
    summary: str
    svg: str


def _median_seconds(cases: QuerySet[Case], *, count: int) -> float | None:
    """The middle of the sorted resolution times (the mean of the two middle ones for an even count), in SQL."""
    if not count:
        return None
    middle = list(cases.order_by("resolution_seconds").values_list("resolution_seconds", flat=True)
                  [(count - 1) // 2: count // 2 + 1])
    return float(statistics.mean(v for v in middle if v is not None))


def week_picture(*, now: dt.datetime) -> WeekPicture:
    first_day = (now - dt.timedelta(days=6)).date()
    starts = [dt.datetime.combine(first_day + dt.timedelta(days=i), dt.time.min, tzinfo=dt.UTC) for i in range(8)]
    # Opened: one index range count per day (each reads only its day's entries of support_case_opened; one pass
    # with seven filtered counts evaluated all seven conditions on every case of the week, ten times slower).
    # Resolved: one pass with a filtered count per day over the covering support_case_resolved_v2 index.
    # Range conditions on indexed columns, no per-row date casts.
    opened = {f"d{i}": Case.objects.filter(opened_at__gte=starts[i], opened_at__lt=starts[i + 1]).count()
              for i in range(7)}
    resolved_cases = Case.objects.filter(resolved_at__gte=starts[0]).exclude(resolution=Resolution.MERGED)
    resolved = resolved_cases.aggregate(
        automated=Count("id", filter=Q(resolution=Resolution.AUTOMATION)),
        timed=Count("id", filter=Q(resolution_seconds__isnull=False)),
        **{f"d{i}": Count("id", filter=Q(resolved_at__gte=starts[i], resolved_at__lt=starts[i + 1]))
           for i in range(7)})
    median = _median_seconds(resolved_cases.exclude(resolution_seconds=None), count=resolved["timed"])
    automated = resolved["automated"]
    days = [DayStat(day=first_day + dt.timedelta(days=i), opened=opened[f"d{i}"], resolved=resolved[f"d{i}"])
            for i in range(7)]
    total_opened, total_resolved = sum(d.opened for d in days), sum(d.resolved for d in days)
    summary = messages.WEEK_SUMMARY.format(
        opened=total_opened, resolved=total_resolved, automated=automated,
        median=messages.duration_text(median) if median is not None else messages.WEEK_NO_MEDIAN)
    svg = charts.week_chart([(d.day, d.opened, d.resolved) for d in days])
    return WeekPicture(days=days, opened=total_opened, resolved=total_resolved, median_seconds=median,
                       automated=automated, summary=summary, svg=svg)


# --- The case page ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    source: str
    text: str
    who: str = ""
    status: str = ""
    body: str = ""
    # An email the customer sent: ``body`` is what they typed above the quote, ``full`` the whole text as received,
    # ``files`` its attachments (stored, or refused with why).
    full: str = ""
    files: list[InboundAttachment] = field(default_factory=list)
    inbound_kind: str = ""
    # Where the entry comes from (TIMELINE_ROWS) and that row's id; ``part`` tells apart two entries of one row (a
    # contact and its automatic answer, a signal and its clearing). Pages are cut on (at, row, row_id), so entries
    # at one moment, however many, have an order every page agrees on.
    row: str = ""
    row_id: int = 0
    part: int = 0

    @property
    def key(self) -> TimelineKey:
        return TimelineKey(self.at, self.row, self.row_id)


@dataclass(frozen=True, order=True)
class TimelineKey:
    """A place in the timeline: entries are shown newest key first; "show earlier" asks for the keys below one."""
    at: dt.datetime
    row: str
    row_id: int

    @property
    def param(self) -> str:
        return f"{self.row}:{self.row_id}"


# The rows a timeline entry comes from, as a cursor names them ("show earlier"'s ``key=<row>:<id>``).
TIMELINE_ROWS = ("action", "contact", "event", "inbound", "message", "signal")
# The largest id a cursor may name (a bigint): a larger one would overflow the query's parameter.
_MAX_ROW_ID = 2**63 - 1


def timeline_key(*, before: dt.datetime, key: str | None) -> TimelineKey:
    """The cursor of a "show earlier" link; ValueError when ``key`` is not one a page wrote. A link with no key (as
    written before keys) means everything strictly before the moment."""
    if key is None:
        return TimelineKey(before, "", 0)
    row, _, row_id = key.partition(":")
    if row not in TIMELINE_ROWS or not row_id.isascii() or not row_id.isdigit() or int(row_id) > _MAX_ROW_ID:
        raise ValueError(f"not a timeline key: {key!r}")
    return TimelineKey(before, row, int(row_id))


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    # The last entry shown: the next page ("show earlier") starts below it; None when nothing earlier is left.
    earlier_than_key: TimelineKey | None = None

    @property
    def earlier_than(self) -> dt.datetime | None:
        return self.earlier_than_key.at if self.earlier_than_key else None

    @property
    def earlier_text(self) -> str:
        return messages.TIMELINE_EARLIER

    @property
    def none_text(self) -> str:
        return messages.TIMELINE_NONE_EARLIER


@dataclass(frozen=True)
class MessageRow:
    message: Message
    status_label: str
    delivered: bool


def _message_row(message: Message) -> MessageRow:
    return MessageRow(message, message.get_status_display(), message.status == "sent")


@dataclass
class CaseView:
    case: Case
    account: Account | None
    workspace: Workspace | None
    progress: SetupProgress | None
    signals: list[Signal]
    suggestion: triage.Suggestion
    messages: list[MessageRow]
    contacts: list[Contact]
    actions: list[SupportAction]
    payments: list[payments.PaymentRow]
    timeline: TimelinePage
    earlier_cases: list[Case]
    reply_subject: str
    reply_body: str
    saved_replies: list[SavedReply]
    # The actions offered on the case (support.actions.STAFF_ACTIONS whose predicate holds): the suggested one, when
    # it is among them, gets the primary button; the others are under "Other actions".
    suggested_action: StaffAction | None = None
    other_actions: list[StaffAction] = field(default_factory=list)
    notes: list[CaseNote] = field(default_factory=list)
    commitments: list[Commitment] = field(default_factory=list)

    # The page's own words (a property: the field "messages" above hides the module in the class body).
    @property
    def resolved_badge(self) -> str:
        return messages.CASE_RESOLVED_BADGE

    @property
    def close_anyway(self) -> str:
        return messages.CLOSE_ANYWAY

    @property
    def commitment_open(self) -> str:
        return messages.COMMITMENT_OPEN

    @property
    def commitment_overdue(self) -> str:
        return messages.COMMITMENT_OVERDUE


def case_view(*, case_id: int, staff: Account, saved_reply_id: int | None = None) -> CaseView:
    case = Case.objects.select_related("account", "incident", "resolved_by", "assigned_to").get(pk=case_id)
    account = case.account
    if account is not None:
        # Read once for the setup panel, the actions offered (retry setup) and the draft ("is it working now?").
        prefetch_related_objects([account], "setup_steps")
    failing = triage.failing_providers()
    signals = list(Signal.objects.filter(case=case).order_by("cleared_at", "-harm", "id"))
    customer_cases = Case.objects.filter(customer_key=case.customer_key)
    # Newest by time, then id (the timeline's order: its first page is built from these rows).
    contacts = list(Contact.objects.filter(customer_key=case.customer_key)
                    .order_by("-created_at", "-id")[:CONTACTS_SHOWN])
    actions = list(SupportAction.objects.filter(case__in=customer_cases).select_related("staff", "message")
                   .order_by("-created_at", "-id")[:ACTIONS_SHOWN])
    message_rows = [_message_row(m) for m in _messages_for(case, account)]
    money = payments.payments_for(email=case.email, account=account)
    suggestion = (_suggestion_for(case, failing, person_promised=bool(_person_promised([case.pk])))
                  if case.is_open else triage.Suggestion("close", ""))
    saved = SavedReply.objects.filter(pk=saved_reply_id).first() if saved_reply_id else None
    subject, body = draft_reply(case=case, staff=staff, signals=signals, actions=actions, saved=saved)
    workspace = Workspace.objects.filter(account=account).first() if account else None
    offered = offered_on(case, known={"has_workspace": workspace is not None})
    return CaseView(
        case=case, account=account, workspace=workspace,
        progress=setup_progress(account, for_customer=False) if account else None,
        signals=signals, suggestion=suggestion, messages=message_rows, contacts=contacts, actions=actions,
        payments=money, timeline=_timeline(case, account, signals, contacts, actions, message_rows),
        earlier_cases=list(customer_cases.exclude(pk=case.pk).order_by("-opened_at")[:20]),
        reply_subject=subject, reply_body=body, saved_replies=list(SavedReply.objects.all()[:100]),
        suggested_action=next((a for a in offered if a.name == suggestion.action), None),
        other_actions=[a for a in offered if a.name != suggestion.action],
        notes=list(CaseNote.objects.filter(case=case).select_related("staff")[:100]),
        commitments=list(Commitment.objects.filter(case=case).select_related("kept_by")),
    )


def _messages_for(case: Case, account: Account | None) -> list[Message]:
    if account is not None:
        return list(Message.objects.filter(account=account).order_by("-created_at", "-id")[:MESSAGES_SHOWN])
    return list(Message.objects.to_customer(case.email).order_by("-created_at", "-id")[:MESSAGES_SHOWN])


def _inbound_sender(from_email: str, customer_key: str) -> str:
    """Who an email says it is from, flagged when that is not the case's customer: a From is not verified, and a
    reply address forwarded or leaked threads anyone's mail onto the case."""
    if email_key(from_email) == customer_key:
        return from_email
    return messages.INBOUND_OTHER_SENDER.format(email=from_email or "no address")


def _timeline(
    case: Case, account: Account | None, signals: list[Signal], contacts: list[Contact],
    actions: list[SupportAction], message_rows: list[MessageRow],
) -> TimelinePage:
    """The newest page of the case's timeline, from the rows the page's panels read already (each newest first, at
    most their panel's limit) and a page of the account's events."""
    events = (list(AccountEvent.objects.filter(account=account).order_by("-created_at", "-id")[:TIMELINE_PAGE + 1])
              if account is not None else [])
    inbound = list(_inbound_of(case).order_by("-received_at", "-id")[:INBOUND_SHOWN])
    entries = _entries(case, events=events, message_rows=message_rows, contacts=contacts, actions=actions,
                       inbound=inbound, signals=signals, before=None)
    # Older rows than these lists hold may exist when a list came back full: "show earlier" asks for them.
    full = (len(events) > TIMELINE_PAGE or len(contacts) >= CONTACTS_SHOWN or len(actions) >= ACTIONS_SHOWN
            or len(message_rows) >= MESSAGES_SHOWN or len(inbound) >= INBOUND_SHOWN)
    return _page_of(entries, more=full)


def earlier_timeline(*, case_id: int, before: TimelineKey) -> TimelinePage:
    """The page of the case's timeline below the key ``before`` (the case page's "show earlier", then this page's
    own): each source asked for its rows below that key, a page of each, so any depth of history can be read, and
    entries sharing one moment are split between pages by (row, id) rather than lost."""
    case = Case.objects.select_related("account").get(pk=case_id)
    account = case.account
    page = TIMELINE_PAGE + 1
    events = (list(_below(AccountEvent.objects.filter(account=account), "event", "created_at", before)[:page])
              if account is not None else [])
    sent = (Message.objects.filter(account=account) if account is not None
            else Message.objects.to_customer(case.email))
    message_rows = [_message_row(m) for m in _below(sent, "message", "created_at", before)[:page]]
    contacts = list(_below(Contact.objects.filter(customer_key=case.customer_key), "contact", "created_at",
                           before)[:page])
    actions = list(_below(SupportAction.objects.filter(case__customer_key=case.customer_key).select_related("staff"),
                          "action", "created_at", before)[:page])
    inbound = list(_below(_inbound_of(case), "inbound", "received_at", before)[:page])
    signals = list(Signal.objects.filter(case=case).filter(Q(created_at__lte=before.at) | Q(cleared_at__lte=before.at)))
    entries = _entries(case, events=events, message_rows=message_rows, contacts=contacts, actions=actions,
                       inbound=inbound, signals=signals, before=before)
    full = any(len(rows) >= page for rows in (events, message_rows, contacts, actions, inbound))
    return _page_of(entries, more=full)


_M = TypeVar("_M", bound=Model)


def _below(rows: QuerySet[_M], row: str, at: str, before: TimelineKey) -> QuerySet[_M]:
    """``rows`` whose key (their moment, ``row``, their id) is below ``before``, newest key first: at the cursor's
    own moment a source named before the cursor's row comes entirely after it, one named after it not at all, and
    the cursor's own source continues below its id."""
    if row < before.row:
        below = Q(**{f"{at}__lte": before.at})
    elif row > before.row:
        below = Q(**{f"{at}__lt": before.at})
    else:
        below = Q(**{f"{at}__lt": before.at}) | Q(**{at: before.at, "id__lt": before.row_id})
    return rows.filter(below).order_by(f"-{at}", "-id")


def _inbound_of(case: Case) -> QuerySet[InboundMessage]:
    return (InboundMessage.objects.filter(case__customer_key=case.customer_key).defer("raw", "html")
            .prefetch_related("attachments"))


def _page_of(entries: list[TimelineEntry], *, more: bool) -> TimelinePage:
    """The newest ``TIMELINE_PAGE`` entries by key, and the other entries of the last one's row (a contact's
    automatic answer): the next page starts below that row's key, so no entry falls between two pages or is on two."""
    entries.sort(key=lambda e: (e.key, e.part), reverse=True)
    cut = min(len(entries), TIMELINE_PAGE)
    while 0 < cut < len(entries) and entries[cut].key == entries[cut - 1].key:
        cut += 1
    shown = entries[:cut]
    has_earlier = bool(shown) and (cut < len(entries) or more)
    return TimelinePage(entries=shown, earlier_than_key=shown[-1].key if has_earlier else None)


def _entries(
    case: Case, *, events: list[AccountEvent], message_rows: list[MessageRow], contacts: list[Contact],
    actions: list[SupportAction], inbound: list[InboundMessage], signals: list[Signal], before: TimelineKey | None,
) -> list[TimelineEntry]:
    entries = [TimelineEntry(e.created_at, "account", e.text, row="event", row_id=e.pk) for e in events]
    for row in message_rows:
        m = row.message
        detail = f" ({m.last_error})" if m.last_error and not row.delivered else ""
        entries.append(TimelineEntry(m.created_at, m.channel, f"{m.subject or m.kind} to {m.to}{detail}",
                                     status=row.status_label, body=m.text if m.kind in SHOWN_IN_FULL else "",
                                     row="message", row_id=m.pk))
    for contact in contacts:
        entries.append(TimelineEntry(contact.created_at, "contact", f"Wrote: “{contact.text}”", who=contact.email,
                                     row="contact", row_id=contact.pk, part=1))
        if contact.finding:
            entries.append(TimelineEntry(contact.created_at, "answer",
                                         f"Answered automatically ({contact.get_finding_display()}).",
                                         row="contact", row_id=contact.pk, part=0))
    for action in actions:
        who = action.staff.email if action.staff else "automation"
        label = messages.ACTIONS[action.action].label if action.action in messages.ACTIONS else action.action
        entries.append(TimelineEntry(action.created_at, "support", f"{label}: {action.note}", who=who,
                                     status=action.get_outcome_display(), row="action", row_id=action.pk))
    for mail in inbound:
        text = messages.INBOUND_TIMELINE[mail.kind].format(subject=mail.subject or "(no subject)",
                                                           problem=mail.problem)
        entries.append(TimelineEntry(
            mail.received_at, "email in", text, who=_inbound_sender(mail.from_email, case.customer_key),
            body=mail.visible_text,
            full=mail.text if mail.text.strip() != mail.visible_text.strip() else "",
            files=list(mail.attachments.all()), inbound_kind=mail.kind, row="inbound", row_id=mail.pk))
    for signal in signals:
        entries.append(TimelineEntry(signal.created_at, "signal", signal.summary, row="signal", row_id=signal.pk))
        if signal.cleared_at:
            entries.append(TimelineEntry(signal.cleared_at, "signal", f"Cleared: {signal.cleared_how}.", row="signal",
                                         row_id=signal.pk, part=1))
    return [e for e in entries if e.key < before] if before is not None else entries


# --- The reply draft ------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(name|staff_name)\}")


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _family(signals: list[Signal]) -> str:
    kinds = {s.kind for s in signals}
    if kinds & triage.MONEY_KINDS:
        return "money"
    if kinds & SETUP_KINDS:
        return "setup"
    if kinds & triage.EMAIL_KINDS:
        return "email"
    return "question"


def _failure_text(signals: list[Signal], family: str) -> str:
    for signal in sorted(signals, key=lambda s: -s.harm):
        detail: dict[str, Any] = signal.detail or {}
        if family == "setup" and signal.kind in SETUP_KINDS:
            error = detail.get("last_error") or next(
                (v.get("last_error") for v in detail.values() if isinstance(v, dict) and v.get("last_error")), "")
            return f"creating your workspace failed ({error})" if error else "creating your workspace failed"
        if family == "email" and signal.kind in triage.EMAIL_KINDS:
            error = detail.get("error") or next(
                (v.get("last_error") for v in detail.values() if isinstance(v, dict) and v.get("last_error")), "")
            return error or "our email provider was failing"
        if family == "money" and signal.kind in triage.MONEY_KINDS:
            return str(detail.get("amount_text") or detail.get("amount") or signal.summary)
    return ""


def _done(case: Case, signals: list[Signal], family: str) -> bool:
    """Whether what went wrong is actually working now: the setup finished, or every signal of the family cleared."""
    if family == "setup":
        # commitments.setup_finished's rule, read through the relation the case page has prefetched.
        steps = list(case.account.setup_steps.all()) if case.account is not None else []
        return bool(steps) and all(step.status == StepStatus.DONE for step in steps)
    kinds = triage.EMAIL_KINDS if family == "email" else triage.MONEY_KINDS if family == "money" else frozenset()
    relevant = [s for s in signals if s.kind in kinds]
    return bool(relevant) and not any(s.is_open for s in relevant)


def _signature(staff_name: str) -> str:
    if staff_name.strip().lower() in messages.REPLY_SIGNATURE_TEAM.lower():
        return messages.REPLY_SIGNATURE_TEAM
    return messages.REPLY_SIGNATURE.format(staff_name=staff_name)


def _did_text(actions: list[SupportAction], fixed: bool, *, signer: Account, family: str = "question") -> str:
    done = [a for a in reversed(actions) if a.outcome == ActionOutcome.DONE and a.action in DID_ACTIONS]
    if not done:
        return messages.REPLY_DID_NOTHING_YET
    # Each distinct action once (two tabs clicking one button are one thing we did, at its first time), and said by
    # whoever did it: "I" only for the signer's own clicks, "we" for a colleague's or automation's.
    firsts: dict[tuple[str, str], SupportAction] = {}
    for action in done:
        who = "automation" if action.by_automation else "me" if action.staff_id == signer.pk else "team"
        firsts.setdefault((action.action, who), action)
    texts = {"automation": messages.DID_TEXT_AUTOMATION, "me": messages.DID_TEXT, "team": messages.DID_TEXT_TEAM}
    parts = [texts[who][action].format(at=f"{a.created_at:%H:%M UTC on %-d %b}")
             for (action, who), a in firsts.items()]
    joined = "; ".join(parts)
    joined = joined[:1].upper() + joined[1:]
    if fixed and family in messages.REPLY_DONE:
        return messages.REPLY_DID_FIXED.format(actions=joined, done=messages.REPLY_DONE[family])
    return messages.REPLY_DID_ACTIONS.format(actions=joined)


def _cost_text(case: Case, signals: list[Signal], family: str) -> str:
    account = case.account
    now = timezone.now()
    if family == "setup" and account is not None:
        end = account.activated_at or now
        return messages.REPLY_COST_LOCKED.format(duration=messages.duration_text((end - account.created_at)
                                                                                 .total_seconds()))
    relevant = [s for s in signals if s.kind in (triage.EMAIL_KINDS if family == "email" else triage.MONEY_KINDS)]
    if not relevant:
        return messages.REPLY_COST_UNKNOWN
    start = min(s.created_at for s in relevant)
    end = max((s.cleared_at or now) for s in relevant)
    duration = messages.duration_text((end - start).total_seconds())
    if family == "email":
        return messages.REPLY_COST_DEGRADED.format(duration=duration)
    amount = next((str(s.detail.get("amount_text")) for s in relevant if s.detail.get("amount_text")), "")
    return messages.REPLY_COST_MONEY.format(amount=amount, duration=duration) if amount else messages.REPLY_COST_UNKNOWN


def draft_reply(
    *, case: Case, staff: Account, signals: list[Signal], actions: list[SupportAction], saved: SavedReply | None
) -> tuple[str, str]:
    """A reply that names what happened, what we did and what it cost the customer, signed by ``staff``."""
    account = case.account
    name = (account.name if account else "") or "there"
    staff_name = staff.name or staff.email
    values = {"name": name, "staff_name": staff_name}
    if saved is not None:
        return messages.REPLY_SUBJECT, fill_placeholders(saved.body, values)
    family = _family(signals)
    did = _did_text([a for a in actions if a.case_id == case.pk], _done(case, signals, family), signer=staff,
                    family=family)
    middle = messages.REPLY_TEMPLATES[family].format(
        signed_up=f"{account.created_at:%-d %b}" if account else "", failure=_failure_text(signals, family),
        did=did, cost=_cost_text(case, signals, family))
    body = "\n\n".join([messages.REPLY_GREETING.format(name=name), middle,
                        _signature(staff_name)])
    return messages.REPLY_SUBJECT, body


def incident_cases(incident: Incident) -> list[Case]:
    return list(Case.objects.filter(incident=incident).select_related("account").order_by("-harm", "opened_at")[:500])
