"""The incident's lifecycle: opening, validated transitions, severity, updates; each change written to the status file.

detected -> investigating -> mitigated -> resolved. Mitigated may go back to investigating (the provider failed
again); a step may be skipped forwards (a short outage is detected and mitigated before anyone investigates); nothing
leaves resolved: a new outage is a new incident, so the history keeps each one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.incidents import hooks, messages, status_page
from backstop.incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentState,
    IncidentUpdate,
    OpenedBy,
    Severity,
)
from backstop.lib.errors import InvalidInput

TRANSITIONS: dict[str, frozenset[str]] = {
    IncidentState.DETECTED: frozenset({IncidentState.INVESTIGATING, IncidentState.MITIGATED, IncidentState.RESOLVED}),
    IncidentState.INVESTIGATING: frozenset({IncidentState.MITIGATED, IncidentState.RESOLVED}),
    IncidentState.MITIGATED: frozenset({IncidentState.INVESTIGATING, IncidentState.RESOLVED}),
    IncidentState.RESOLVED: frozenset(),
}


class TransitionRefused(ValueError):
    """The lifecycle does not allow this move; nothing changed."""


def staff_source(staff: Any) -> str:
    return f"staff:{staff.email}" if staff is not None else "incidents-watch"


def record_event(*, incident: Incident | None, kind: str, source: str, text: str, at: dt.datetime | None = None,
                 detail: dict[str, Any] | None = None) -> bool:
    """Record one fact; the same fact (kind and time) recorded by a second process is a no-op. True when new."""
    try:
        with transaction.atomic():
            IncidentEvent.objects.create(incident=incident, kind=kind, source=source, text=text[:500],
                                         at=at or timezone.now(), detail=detail or {})
    except IntegrityError:
        return False
    return True


def open_incident(*, title: str, capability: str = "", cause: str = "", opened_by: str = OpenedBy.STAFF,
                  staff: Any = None, started_at: dt.datetime | None = None, last_error: str = "",
                  severity: int = Severity.SEV3) -> tuple[Incident, bool]:
    """The live incident for ``cause`` (one per cause), opened now unless one is; (incident, whether opened)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                title=title[:200], capability=capability, cause=cause, opened_by=opened_by, opened_by_staff=staff,
                started_at=started_at or now, detected_at=now, last_error=last_error[:500], severity=severity,
                severity_set_by_staff=staff is not None)
    except IntegrityError:
        return Incident.objects.live().get(cause=cause), False
    if staff is not None:
        record_event(incident=incident, kind=EventKind.STATE_CHANGED, source=staff_source(staff), at=now,
                     text=messages.STAFF_OPENED.format(staff=staff.email))
    if cause:  # the desk's card of the same cause, if it opened first, is linked to this record
        hooks.record_opened(incident_id=incident.pk, cause=cause)
    status_page.write_after_commit()
    return incident, True


def advance_incident(*, incident_id: int, to_state: str, staff: Any = None, at: dt.datetime | None = None) -> Incident:
    """Move the incident to ``to_state`` if its lifecycle allows it (else ``TransitionRefused``); recorded."""
    if to_state not in TRANSITIONS:
        raise TransitionRefused(f"unknown state {to_state!r}")
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        if incident.state == to_state:
            return incident
        if to_state not in TRANSITIONS[incident.state]:
            raise TransitionRefused(messages.TRANSITION_REFUSED.format(current=incident.state, target=to_state))
        when = at or timezone.now()
        old = incident.state
        incident.state = to_state
        if to_state == IncidentState.MITIGATED:
            incident.mitigated_at = when
        elif to_state == IncidentState.RESOLVED:
            incident.resolved_at = when
            incident.mitigated_at = incident.mitigated_at or when
        elif to_state == IncidentState.INVESTIGATING:
            incident.mitigated_at = None
        incident.save(update_fields=["state", "mitigated_at", "resolved_at"])
        record_event(incident=incident, kind=EventKind.STATE_CHANGED, source=staff_source(staff), at=when,
                     text=messages.STATE_CHANGED.format(old=old, new=to_state), detail={"from": old, "to": to_state})
    status_page.write_after_commit()
    return incident


def set_severity(*, incident_id: int, severity: int, staff: Any = None) -> Incident:
    """By staff (the rule then leaves it alone) or by the rule (``staff`` None: only raises, never past a person)."""
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        if staff is None and (incident.severity_set_by_staff or severity >= incident.severity):
            return incident
        if severity == incident.severity and (staff is None or incident.severity_set_by_staff):
            return incident
        old = incident.get_severity_display()
        incident.severity = Severity(severity)
        incident.severity_set_by_staff = incident.severity_set_by_staff or staff is not None
        incident.save(update_fields=["severity", "severity_set_by_staff"])
        why = messages.SEVERITY_BY_STAFF.format(staff=staff.email) if staff else messages.SEVERITY_BY_RULE
        record_event(incident=incident, kind=EventKind.SEVERITY_CHANGED, source=staff_source(staff),
                     text=messages.SEVERITY_CHANGED.format(old=old, new=Severity(severity).label, why=why))
    status_page.write_after_commit()
    return incident


def drafted_update(*, incident: Incident, state: str) -> str:
    def at(moment: dt.datetime | None) -> str:
        return f"{moment:%H:%M} UTC" if moment else "just now"

    return messages.DRAFTED_UPDATES[state].format(
        capability=messages.capability_name(incident.capability), detected=at(incident.detected_at),
        mitigated=at(incident.mitigated_at or timezone.now()), customers=incident.customers_affected)


def post_update(*, incident_id: int, body: str, state: str, staff: Any, idempotency_key: str) -> IncidentUpdate:
    """Tell customers (status page, banner): once per click, the incident moved to ``state`` with it."""
    body = body.strip()
    if not body:
        raise InvalidInput({"body": messages.UPDATE_EMPTY})
    existing = IncidentUpdate.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        advance_incident(incident_id=incident_id, to_state=state, staff=staff)
        try:
            with transaction.atomic():
                update = IncidentUpdate.objects.create(incident_id=incident_id, idempotency_key=idempotency_key,
                                                       state=state, body=body[:1000], staff=staff)
        except IntegrityError:  # the same click, answered by another request first
            return IncidentUpdate.objects.get(idempotency_key=idempotency_key)
        record_event(incident=update.incident, kind=EventKind.UPDATE_POSTED, source=staff_source(staff),
                     at=update.created_at, text=body[:500], detail={"update": update.pk, "state": state})
    status_page.write_after_commit()
    return update
