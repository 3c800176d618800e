"""Incidents follow the breakers: run once per probe interval by the supervisor, and at once on each recovery.

Any change of the customers an incident hurts now (one recovering included) rewrites the status file: the banner is
shown to them alone (``audience``).

One pass: a provider whose breaker is open gets a live incident (opened from the breaker's measured start); each live
incident's affected customers are brought up to date (a sample for the chart, the peak, the severity by the rule);
a breaker closed again mitigates its incident; a mitigated incident resolves once its capability has worked for
INCIDENT_RESOLVE_AFTER_SECONDS and no customer waits on it any more. Every step is a keyed insert or a conditional
update, safe in several processes at once.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from backstop.accounts.models import STEP_PROVIDERS, AccountState, SetupStep, StepName, StepStatus
from backstop.attention.models import AttentionRecord, Harm, provider_cause, provider_of_cause
from backstop.incidents import lifecycle, messages, severity, status_page
from backstop.incidents.models import (
    AffectedCustomer,
    AffectedSample,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentState,
    OpenedBy,
    Severity,
)
from backstop.runtime.models import BreakerState, CircuitBreaker

# What a customer whose setup step waits on the provider cannot do, and how badly that hurts (as the desk says:
# an unfinished workspace locks the customer out, an unsent welcome email only degrades).
STEP_HARM: dict[str, int] = {StepName.WORKSPACE: Harm.LOCKED_OUT, StepName.WELCOME_EMAIL: Harm.DEGRADED}
WAITING_STATUSES = (StepStatus.PENDING, StepStatus.RETRYING, StepStatus.WAITING, StepStatus.FAILED)


def watch_breakers(now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    changed = open_breaker_incidents()
    changed |= open_incidents_by_failures()
    for incident in Incident.objects.live().exclude(cause=""):
        changed |= follow_incident(incident, now=now)
    if changed:
        status_page.write_after_commit()


def open_breaker_incidents() -> bool:
    opened = False
    for breaker in CircuitBreaker.objects.exclude(state=BreakerState.CLOSED).exclude(opened_at__isnull=True):
        assert breaker.opened_at is not None
        cause = provider_cause(breaker.provider)
        source = f"breaker:{breaker.provider}"
        incident = Incident.objects.live().filter(cause=cause).first()
        if incident is not None:
            if incident.state == IncidentState.MITIGATED:  # it failed again before we called it over
                lifecycle.advance_incident(incident_id=incident.pk, to_state=IncidentState.INVESTIGATING)
                opened = True
        else:
            # The run's first failure, unless the breaker's record of it is later than the opening (a failure
            # counted by another process after a reset): the outage began no later than the breaker opened.
            started = min(breaker.failing_since or breaker.opened_at, breaker.opened_at)
            incident, new = lifecycle.open_incident(
                title=messages.AUTO_TITLE.format(capability=messages.capability_name(breaker.provider)),
                capability=breaker.provider, cause=cause, opened_by=OpenedBy.BREAKER, started_at=started,
                last_error=breaker.last_error)
            if new:
                opened = True
                lifecycle.record_event(incident=incident, kind=EventKind.FIRST_FAILURE, source=source, at=started,
                                       text=messages.FIRST_FAILURE.format(provider=breaker.provider))
        # Each opening is on the timeline, also of an incident its failures opened before the breaker did.
        if not IncidentEvent.objects.filter(incident=incident, kind=EventKind.BREAKER_OPENED,
                                            at=breaker.opened_at).exists():
            lifecycle.record_event(incident=incident, kind=EventKind.BREAKER_OPENED, source=source,
                                   at=breaker.opened_at, text=messages.BREAKER_OPENED.format(
                                       provider=breaker.provider, error=breaker.last_error or "-"))
    return opened


def open_incidents_by_failures() -> bool:
    """The error-rate trigger: a provider failing right now (failures counted on its breaker, not yet open) that
    already hurts INCIDENT_OPEN_AT_CUSTOMERS customers is an incident before the breaker says so."""
    opened = False
    failing = CircuitBreaker.objects.filter(state=BreakerState.CLOSED, consecutive_failures__gt=0)
    for breaker in failing:
        cause = provider_cause(breaker.provider)
        if Incident.objects.live().filter(cause=cause).exists():
            continue
        if len(affected_now(breaker.provider)) < settings.INCIDENT_OPEN_AT_CUSTOMERS:
            continue
        started = breaker.failing_since or timezone.now()
        incident, new = lifecycle.open_incident(
            title=messages.AUTO_TITLE.format(capability=messages.capability_name(breaker.provider)),
            capability=breaker.provider, cause=cause, opened_by=OpenedBy.FAILURES, started_at=started,
            last_error=breaker.last_error)
        if new:
            lifecycle.record_event(incident=incident, kind=EventKind.FIRST_FAILURE,
                                   source=f"breaker:{breaker.provider}", at=started,
                                   text=messages.FIRST_FAILURE.format(provider=breaker.provider))
            opened = True
    return opened


def affected_now(provider: str) -> dict[int, tuple[str, int]]:
    """Accounts the provider's failure hurts right now: {account id: (what they lost, harm)}."""
    found: dict[int, tuple[str, int]] = {}
    steps = [step for step, step_provider in STEP_PROVIDERS.items() if step_provider == provider]
    for account_id, step in (SetupStep.objects.filter(name__in=steps, status__in=WAITING_STATUSES)
                             .exclude(account__state=AccountState.DISABLED).values_list("account_id", "name")):
        found[account_id] = (step, STEP_HARM.get(step, Harm.DEGRADED))
    for account_id, kind, harm in (AttentionRecord.objects.filter(cause=provider_cause(provider),
                                                                  resolved_at__isnull=True, account__isnull=False)
                                   .values_list("account_id", "kind", "harm")):
        if account_id not in found or found[account_id][1] < harm:
            found[account_id] = (kind, harm)
    return found


def follow_incident(incident: Incident, *, now: dt.datetime) -> bool:
    provider = provider_of_cause(incident.cause)
    changed = _count_affected(incident, provider, now=now)
    breaker = CircuitBreaker.objects.filter(pk=provider).first()
    recovered_at = _recovered_at(incident, breaker)
    recovered = recovered_at is not None
    if recovered_at is not None and incident.state in (IncidentState.DETECTED, IncidentState.INVESTIGATING):
        source = f"breaker:{provider}"
        lifecycle.record_event(incident=incident, kind=EventKind.FIRST_RECOVERY, source=source,
                               at=recovered_at, text=messages.FIRST_RECOVERY.format(provider=provider))
        if breaker is not None and breaker.recovered_at == recovered_at:  # it had opened: it closed
            lifecycle.record_event(incident=incident, kind=EventKind.BREAKER_CLOSED, source=source,
                                   at=recovered_at, text=messages.BREAKER_CLOSED.format(provider=provider))
        lifecycle.advance_incident(incident_id=incident.pk, to_state=IncidentState.MITIGATED, at=recovered_at)
        return True
    incident.refresh_from_db()
    if incident.state == IncidentState.MITIGATED and recovered and incident.mitigated_at is not None:
        calm = now - incident.mitigated_at >= dt.timedelta(seconds=settings.INCIDENT_RESOLVE_AFTER_SECONDS)
        if calm and not AffectedCustomer.objects.filter(incident=incident, recovered_at__isnull=True).exists():
            lifecycle.advance_incident(incident_id=incident.pk, to_state=IncidentState.RESOLVED)
            return True
    return changed


def _recovered_at(incident: Incident, breaker: CircuitBreaker | None) -> dt.datetime | None:
    """When the provider worked again: the success that closed its open breaker, or, for an incident its failures
    opened before the breaker did, the success that reset their count (the breaker's last change)."""
    if breaker is None or breaker.state != BreakerState.CLOSED:
        return None
    if breaker.recovered_at is not None and breaker.recovered_at >= incident.started_at:
        return breaker.recovered_at
    if incident.opened_by == OpenedBy.FAILURES and breaker.consecutive_failures == 0:
        return max(breaker.updated_at, incident.started_at)
    return None


def _count_affected(incident: Incident, provider: str, *, now: dt.datetime) -> bool:
    hurt = affected_now(provider)
    known = dict(AffectedCustomer.objects.filter(incident=incident).values_list("account_id", "recovered_at"))
    # The banner's audience is the customers hurt now: any change of who they are (one recovered, one newly hurt,
    # even with the count unchanged) rewrites the status file.
    hurt_before = {account_id for account_id, recovered_at in known.items() if recovered_at is None}
    audience_changed = hurt_before != set(hurt)
    for account_id, (lost, harm) in hurt.items():
        if account_id not in known:
            try:
                with transaction.atomic():
                    AffectedCustomer.objects.create(incident=incident, account_id=account_id, lost=lost, harm=harm,
                                                    first_seen_at=now)
            except IntegrityError:
                pass  # another process counted them first
        elif known[account_id] is not None:  # hurt again
            AffectedCustomer.objects.filter(incident=incident, account_id=account_id).update(recovered_at=None)
    AffectedCustomer.objects.filter(incident=incident, recovered_at__isnull=True).exclude(
        account_id__in=list(hurt)).update(recovered_at=now)
    current = len(hurt)
    last = AffectedSample.objects.filter(incident=incident).order_by("-at", "-id").first()
    changed = last is None or last.customers != current
    if changed:
        AffectedSample.objects.create(incident=incident, at=now, customers=current)
    changed |= audience_changed
    total = AffectedCustomer.objects.filter(incident=incident).count()
    if total > incident.customers_affected:
        Incident.objects.filter(pk=incident.pk, customers_affected__lt=total).update(customers_affected=total)
        changed = True
    worst = AffectedCustomer.objects.filter(incident=incident).aggregate(worst=Max("harm"))["worst"]
    by_rule = severity.severity_for(worst_harm=worst, customers=total, sev1_customers=settings.INCIDENT_SEV1_CUSTOMERS,
                                    sev2_customers=settings.INCIDENT_SEV2_CUSTOMERS)
    if by_rule < incident.severity and not incident.severity_set_by_staff:
        lifecycle.set_severity(incident_id=incident.pk, severity=Severity(by_rule))
        changed = True
    return changed
