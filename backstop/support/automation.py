"""The support cycle: run every few seconds by each process's supervisor (runtime/engine.py).

One pass: join what automation could not fix to cases, clear what got fixed, group cases that share a failing
provider into one incident, finish the incident's work once the provider recovers, resolve the cases that no longer
need anyone (telling each customer once), and tell staff what they need to know. Every step is idempotent and
safe to run in several processes at once: joins are keyed, state changes are conditional UPDATEs.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, QuerySet
from django.utils import timezone

from backstop.accounts.models import STEP_PROVIDERS, Account, AccountState, SetupStep, StepStatus
from backstop.attention.models import AttentionRecord, Harm, provider_cause, provider_of_cause
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime.models import CircuitBreaker
from backstop.support import actions, cases, commitments, contact, messages, notifications, payments, triage
from backstop.support.incident_facts import link_incident_records
from backstop.support.models import (
    SETUP_KINDS,
    ActionOutcome,
    Case,
    CaseState,
    Commitment,
    CommitmentKind,
    Contact,
    Finding,
    Incident,
    IncidentState,
    Resolution,
    Signal,
    SignalKind,
    SupportAction,
)
from backstop.support.reply_addresses import case_email_headers

log = logging.getLogger(__name__)

BATCH = 500
# A failed sign-in code or signup notice is useless an hour later: once the provider works again the
# customer asks for a new one, so these are cleared rather than resent.
TIME_LIMITED_MESSAGE_KINDS = frozenset({"sign_in_code", "signup_attempt"})
# The welcome email's failure already arrives as an attention record from accounts.
MESSAGE_KINDS_REPORTED_ELSEWHERE = frozenset({"welcome"})
TOLD_FIXED = (Finding.SETUP_FIXED, Finding.PAYMENT_FULFILLED)


@dataclass
class CycleReport:
    joined: int = 0
    cleared: int = 0
    attached: int = 0
    resolved: int = 0
    incidents_opened: int = 0
    incidents_resolved: int = 0
    notices_sent: int = 0
    promises_kept: int = 0


def run_support_cycle() -> CycleReport:
    report = CycleReport()
    report.joined += join_unjoined_attention()
    report.joined += join_failed_messages()
    relabel_questions_whose_setup_failed()
    failing = triage.failing_providers()
    report.incidents_opened += open_provider_incidents(failing)
    report.joined += join_waiting_setups(failing)
    report.cleared += clear_fixed_signals(failing)
    report.incidents_opened += open_incidents_by_count(failing)
    report.attached += attach_cases_to_incidents()
    recover_incidents(failing)
    report.resolved += resolve_settled_cases()
    report.incidents_resolved += resolve_finished_incidents(failing)
    commitments.keep_commitments()
    report.promises_kept += keep_email_promises()
    notifications.queue_staff_notices()
    report.notices_sent += notifications.send_due_notices(now=timezone.now())
    return report


# --- Joining --------------------------------------------------------------------------------------------

def join_unjoined_attention() -> int:
    """Open attention records whose join at raise time failed (or predate the desk)."""
    records = AttentionRecord.objects.filter(resolved_at__isnull=True).exclude(
        Exists(Signal.objects.filter(attention=OuterRef("pk"))))[:BATCH]
    for record in records:
        cases.join_attention_record(record=record)
    return len(records)


def join_failed_messages() -> int:
    recent = timezone.now() - dt.timedelta(days=30)
    failed = (
        Message.objects.filter(status=DeliveryStatus.FAILED, account__isnull=False, created_at__gte=recent)
        .exclude(kind__in=MESSAGE_KINDS_REPORTED_ELSEWHERE)
        .exclude(Exists(Signal.objects.filter(message=OuterRef("pk"))))[:BATCH]
    )
    joined = 0
    for message in failed:
        if cases.join_undelivered_message(message=message) is not None:
            joined += 1
    return joined


def _down_steps(failing: dict[str, CircuitBreaker]) -> list[str]:
    return [step for step, provider in STEP_PROVIDERS.items() if triage.provider_is_down(failing, provider)]


def join_waiting_setups(failing: dict[str, CircuitBreaker]) -> int:
    """Accounts whose setup waits for a provider that is down: each customer waiting joins a case."""
    steps = _down_steps(failing)
    if not steps:
        return 0
    open_sources = set(Signal.objects.filter(kind=SignalKind.SETUP_DELAYED, cleared_at__isnull=True)
                       .values_list("source", flat=True))
    joined = 0
    waiting = (SetupStep.objects.filter(name__in=steps, status__in=(StepStatus.WAITING, StepStatus.RETRYING))
               .exclude(account__state=AccountState.DISABLED).select_related("account").order_by("id"))
    for step in waiting[: BATCH * 4]:
        if cases.setup_delay_source(step.account_id, step.name) in open_sources:
            continue
        cases.join_setup_delay(step=step, account=step.account)
        joined += 1
    return joined


def relabel_questions_whose_setup_failed() -> int:
    """A question asked while setup was still under way (nothing had failed) whose setup failed since: the case is
    no longer "a question, nothing wrong found", it is as bad as the setup failing."""
    questions = (Signal.objects.filter(cleared_at__isnull=True, kind=SignalKind.CONTACT, harm=Harm.QUESTION,
                                       detail__finding=Finding.SETUP_UNDER_WAY, case__account__isnull=False)
                 .values_list("pk", "case_id", "case__account_id"))[:BATCH]
    relabelled = 0
    for pk, case_id, account_id in questions:
        failed = [step for step in SetupStep.objects.filter(account_id=account_id).exclude(status=StepStatus.DONE)
                  if contact.had_failed(step)]
        if not failed:
            continue
        relabelled += Signal.objects.filter(pk=pk, harm=Harm.QUESTION).update(harm=contact.setup_harm(failed))
        cases.refresh_case(case_id=case_id)
    return relabelled


# --- Clearing ---------------------------------------------------------------------------------------------

def clear_fixed_signals(failing: dict[str, CircuitBreaker]) -> int:
    cleared = cases.clear_fixed_attention()
    cleared += _clear_finished_setups()
    paid = Signal.objects.filter(cleared_at__isnull=True, kind=SignalKind.PAID_WITHOUT_ACCESS).values_list(
        "pk", "detail")
    fulfilled = payments.fulfilled_payment_ids([str(detail.get("payment_id", "")) for _, detail in paid])
    cleared += cases.clear_signals(signal_ids=[pk for pk, detail in paid if detail.get("payment_id") in fulfilled],
                                      how="an order now exists for the payment")
    delivered = Signal.objects.filter(cleared_at__isnull=True, kind=SignalKind.MESSAGE_UNDELIVERED,
                                      message__status=DeliveryStatus.SENT).values_list("pk", flat=True)
    cleared += cases.clear_signals(signal_ids=list(delivered), how="delivered on a later attempt")
    healthy_channels = [c for c in ("email", "sms") if c not in failing]
    expired = Signal.objects.filter(
        cleared_at__isnull=True, kind=SignalKind.MESSAGE_UNDELIVERED, message__kind__in=TIME_LIMITED_MESSAGE_KINDS,
        message__channel__in=healthy_channels,
    ).values_list("pk", flat=True)
    cleared += cases.clear_signals(
        signal_ids=list(expired), how="the provider works again; that message was time-limited, so not resent")
    return cleared


def _clear_grouped(by_how: dict[str, list[int]]) -> int:
    return sum(cases.clear_signals(signal_ids=ids, how=how) for how, ids in by_how.items())


def _clear_finished_setups() -> int:
    delays = list(Signal.objects.filter(cleared_at__isnull=True, kind=SignalKind.SETUP_DELAYED)
                  .values_list("pk", "case__account_id", "detail"))
    if not delays:
        return 0
    statuses = {
        (account_id, name): status
        for account_id, name, status in SetupStep.objects.filter(
            account_id__in={account_id for _, account_id, _ in delays}).values_list("account_id", "name", "status")
    }
    by_how: dict[str, list[int]] = {}
    for pk, account_id, detail in delays:
        status = statuses.get((account_id, detail.get("step")))
        if status is None or status == StepStatus.DONE:
            by_how.setdefault("finished by automation", []).append(pk)
        elif status == StepStatus.FAILED:
            by_how.setdefault("stopped retrying; handed over as an attention record", []).append(pk)
    return _clear_grouped(by_how)


# --- Incidents --------------------------------------------------------------------------------------------

def _create_incident(*, cause: str, provider: str, started_at: dt.datetime, last_error: str) -> bool:
    try:
        with transaction.atomic():
            Incident.objects.create(cause=cause, provider=provider, started_at=started_at, last_error=last_error[:500])
    except IntegrityError:  # already live (another process opened it first)
        return False
    link_incident_records(cause=cause)  # the incident record of the same cause, if it opened first
    return True


def _outage_start(breaker: CircuitBreaker) -> dt.datetime:
    """The outage as measured: from the first failure recorded, not from when the breaker opened or we noticed."""
    return breaker.failing_since or breaker.opened_at or timezone.now()


def _outage_end(incident: Incident, now: dt.datetime) -> dt.datetime:
    """The call (a probe's or a customer's) that first succeeded after the outage, when the breaker recorded it."""
    recovered = CircuitBreaker.objects.filter(pk=incident.provider).values_list("recovered_at", flat=True).first()
    return recovered if recovered is not None and recovered >= incident.started_at else now


def open_provider_incidents(failing: dict[str, CircuitBreaker]) -> int:
    """A provider whose breaker is open is an incident, whether or not anyone is waiting on it yet."""
    opened = 0
    for provider, breaker in failing.items():
        if not triage.provider_is_down(failing, provider):
            continue
        cause = provider_cause(provider)
        live = Incident.objects.active().filter(cause=cause)
        if live.exists():
            # Failing again while automation was finishing: back to open, keeping the original start.
            live.filter(state=IncidentState.RECOVERING).update(state=IncidentState.OPEN, cleared_at=None)
            live.update(last_error=breaker.last_error[:500])
            continue
        opened += _create_incident(cause=cause, provider=provider, started_at=_outage_start(breaker),
                                   last_error=breaker.last_error)
    return opened


def open_incidents_by_count(failing: dict[str, CircuitBreaker]) -> int:
    """Several customers hurt by one provider that is still failing, even if its breaker never opened."""
    shared = (
        Signal.objects.filter(cleared_at__isnull=True, case__state=CaseState.OPEN, case__incident__isnull=True)
        .exclude(cause="").values("cause")
        .annotate(customers=Count("case", distinct=True), first=Min("created_at"))
        .filter(customers__gte=settings.SUPPORT_INCIDENT_MIN_CASES)
    )
    opened = 0
    for row in shared:
        provider = provider_of_cause(row["cause"])
        if provider not in failing or Incident.objects.active().filter(cause=row["cause"]).exists():
            continue
        opened += _create_incident(cause=row["cause"], provider=provider,
                                   started_at=min(row["first"], _outage_start(failing[provider])),
                                   last_error=failing[provider].last_error)
    return opened


def attach_cases_to_incidents() -> int:
    """A case waits on an incident while all it has open is that incident's cause; anything else needs a person."""
    attached = 0
    for incident in Incident.objects.active():
        same = Signal.objects.filter(case=OuterRef("pk"), cleared_at__isnull=True, cause=incident.cause)
        other = Signal.objects.filter(case=OuterRef("pk"), cleared_at__isnull=True).exclude(cause=incident.cause)
        count = (
            Case.objects.filter(state=CaseState.OPEN, incident__isnull=True).exclude(left_incident=incident)
            .filter(Exists(same)).exclude(Exists(other)).update(incident=incident, updated_at=timezone.now())
        )
        if count:
            Incident.objects.filter(pk=incident.pk).update(customers_affected=F("customers_affected") + count)
        attached += count
        _detach(Case.objects.filter(state=CaseState.OPEN, incident=incident).filter(Exists(other)), incident)
    return attached


def _detach(cases: QuerySet[Case], incident: Incident) -> int:
    """Out of the incident and into the queue, for good: the case needs a person now."""
    return cases.update(incident=None, left_incident=incident, updated_at=timezone.now())


def recover_incidents(failing: dict[str, CircuitBreaker]) -> None:
    """Provider healthy again: automation retries what gave up, and hands anything it can't finish to a person."""
    now = timezone.now()
    for incident in Incident.objects.active():
        if incident.state == IncidentState.OPEN:
            if incident.provider in failing:
                continue
            Incident.objects.filter(pk=incident.pk, state=IncidentState.OPEN).update(
                state=IncidentState.RECOVERING, cleared_at=_outage_end(incident, now))
            incident.refresh_from_db()
        if triage.provider_is_down(failing, incident.provider):
            continue  # failing again: open_provider_incidents has put it back to open
        settle_by = (incident.cleared_at or now) + dt.timedelta(seconds=settings.SUPPORT_INCIDENT_SETTLE_SECONDS)
        for case in Case.objects.filter(state=CaseState.OPEN, incident=incident).select_related("account")[:BATCH]:
            if now >= settle_by or _automation_cannot_finish(case, incident):
                _detach(Case.objects.filter(pk=case.pk, incident=incident), incident)


def _automation_cannot_finish(case: Case, incident: Incident) -> bool:
    """Retry a setup that gave up during the outage, once per incident; True when even that did not do it."""
    if Signal.objects.filter(case=case, cleared_at__isnull=True, kind=SignalKind.MESSAGE_UNDELIVERED).exists():
        return True  # a message we could not send (and can't resend as it was): a person decides
    if case.account is None:
        return False
    if not SetupStep.objects.filter(account=case.account, status=StepStatus.FAILED).exists():
        return False
    result = actions.run_action(case_id=case.pk, staff=None, action="retry_setup",
                                 key=f"incident:{incident.pk}:retry:{case.pk}",
                                 params={"why": f"incident {incident.pk} is over"})
    return result.repeated


def resolve_finished_incidents(failing: dict[str, CircuitBreaker]) -> int:
    resolved = 0
    for incident in Incident.objects.filter(state=IncidentState.RECOVERING):
        if incident.provider in failing or Case.objects.filter(state=CaseState.OPEN, incident=incident).exists():
            continue
        resolved += Incident.objects.filter(pk=incident.pk, state=IncidentState.RECOVERING).update(
            state=IncidentState.RESOLVED, resolved_at=timezone.now())
    return resolved


# --- Keeping "we'll email you when it's done" ----------------------------------------------------------------

def keep_email_promises() -> int:
    """An open "we'll email you when it's done" whose setup is done: the "ready" email is sent now, once per
    promise, whether or not the case is resolved (a question on the case keeps it open for a person, but the
    customer was promised the email when the thing was done, not when the case closes).

    Runs after ``keep_commitments``, so a done email already sent since the promise (setup's own, support's "it's
    fixed", a person's reply) has kept it and nothing more is sent. A payment's promise is kept by billing's own email
    of how the purchase settled."""
    sent = 0
    for promise in (Commitment.objects.filter(kind=CommitmentKind.EMAIL_WHEN_DONE, kept_at__isnull=True)
                    .select_related("case__account").order_by("id")[:BATCH]):
        account = promise.case.account
        if account is None or promise.detail.get("payment_id") or account.state != AccountState.ACTIVE:
            continue
        if not commitments.setup_finished(account_id=account.pk):
            continue
        message = notify.create_email(account=account, kind="account_ready", key=f"promise-done:{promise.pk}",
                                      to=account.email,
                                      context={"account": account, "login_url": f"{settings.BASE_URL}/login"},
                                      **case_email_headers(case_id=promise.case_id, key=f"promise-done:{promise.pk}"))
        notify.send_soon(message)
        sent += Commitment.objects.filter(pk=promise.pk, kept_at__isnull=True).update(
            kept_at=timezone.now(), kept_how=messages.KEPT_BY_EMAIL.format(subject=message.subject)[:300])
    return sent


# --- Resolving cases ------------------------------------------------------------------------------------

def resolve_settled_cases() -> int:
    """Open cases with nothing open left: resolved, and the customer told once (unless a person is handling it)."""
    settled = Case.objects.filter(state=CaseState.OPEN).exclude(
        Exists(Signal.objects.filter(case=OuterRef("pk"), cleared_at__isnull=True))).values_list("pk", "version")
    return sum(_resolve_by_automation(pk, version) for pk, version in list(settled[:BATCH]))


def _resolve_by_automation(case_id: int, version: int) -> int:
    case = Case.objects.select_related("account", "incident").get(pk=case_id)
    # Only a person's click that changed something: a refused, failed or already-done one claims no fix, and must
    # not leave the customer to a person who wrote nothing.
    last_staff = (SupportAction.objects.filter(case=case, staff__isnull=False,
                                               outcome__in=(ActionOutcome.DONE, ActionOutcome.STARTED))
                  .select_related("staff").order_by("-id").first())
    now = timezone.now()
    with transaction.atomic():
        # Conditional on the version: a signal that joined since we looked keeps the case open.
        won = Case.objects.filter(pk=case_id, state=CaseState.OPEN, version=version).update(
            state=CaseState.RESOLVED, resolved_at=now, resolution_seconds=case.seconds_open(now),
            resolution=Resolution.STAFF if last_staff else Resolution.AUTOMATION,
            resolved_by=last_staff.staff if last_staff else None,
            resolution_note="everything fixed after a support action" if last_staff else "everything fixed by itself",
        )
        # A person who acted usually writes themselves; but an "email you when it's done" still open is kept here.
        if won and (last_staff is None or commitments.email_promised(case_id)):
            _tell_customer_it_is_fixed(case, now)
    return won


def _waiting_since(signal: Signal, account: Account) -> dt.datetime:
    """When the customer started waiting for what the signal is about, not when we recorded the problem: their
    signup for anything of their setup (the workspace, the welcome email), the message they were to get otherwise."""
    if signal.kind in SETUP_KINDS or provider_of_cause(signal.cause) == "workspace":
        return account.created_at
    if signal.message_id is not None:
        sent_for = Message.objects.filter(pk=signal.message_id).values_list("created_at", flat=True).first()
        return min(sent_for or signal.created_at, signal.created_at)
    return signal.created_at


def _tell_customer_it_is_fixed(case: Case, now: dt.datetime) -> None:
    account = case.account
    if account is None:
        return
    signals = list(Signal.objects.filter(case=case))
    hurting = [s for s in signals if s.harm >= Harm.DEGRADED and s.kind not in triage.MONEY_KINDS
               and provider_of_cause(s.cause) in messages.RESOLVED_WHAT]
    if not hurting:
        return
    last_hurt = max(s.created_at for s in hurting)
    if Contact.objects.filter(case=case, finding__in=TOLD_FIXED, created_at__gte=last_hurt).exists():
        return  # the answer to their message already said it was fixed
    worst = max(hurting, key=lambda s: (s.harm, -s.pk))
    provider = provider_of_cause(worst.cause)
    if provider == "workspace" and Message.objects.filter(account=account, kind="account_ready").exists():
        return  # setup's own "your workspace is ready" email (sent once in an account's life) already told them
    if (provider == "email" and all(s.kind in SETUP_KINDS and provider_of_cause(s.cause) == "email" for s in hurting)
            and Message.objects.filter(account=account, kind="welcome", carries_apology=True,
                                       status=DeliveryStatus.SENT).exists()):
        return  # the late welcome email, the only one delayed, said sorry itself (one email, not two on one limit)
    start = min(_waiting_since(s, account) for s in hurting)
    end = account.activated_at if provider == "workspace" and account.activated_at else now
    cost = messages.duration_text(max(60.0, (end - start).total_seconds()))
    what = messages.RESOLVED_WHAT[provider]
    incident = case.incident
    if incident is not None and incident.provider == provider:
        until = incident.cleared_at or now
        body = messages.RESOLVED_INCIDENT.format(
            provider=messages.provider_name(provider), since=f"{incident.started_at:%H:%M}",
            until=f"{until:%H:%M} UTC on {until:%-d %b}", what=what, cost=cost, now=messages.RESOLVED_NOW[provider])
    else:
        body = messages.RESOLVED_ALONE.format(what=what, cost=cost, now=messages.RESOLVED_NOW[provider])
    text = "\n\n".join([
        messages.CONTACT_GREETING.format(name=f" {account.name}" if account.name else ""), body,
        messages.RESOLVED_MORE.format(contact_url=f"{settings.BASE_URL}/support/contact"), messages.CONTACT_SIGNOFF,
    ])
    message = notify.create_email(
        account=account, kind="support_resolved", key=f"support-resolved:{case.pk}", to=account.email,
        context={"subject": messages.RESOLVED_SUBJECT.format(what=messages.RESOLVED_WHAT_SHORT[provider]),
                 "text": text},
        **case_email_headers(case_id=case.pk, key=f"support-resolved:{case.pk}"),
    )
    notify.send_soon(message)

