"""The incident's timeline, built from what the system recorded; nobody writes it.

Entries: the breaker's facts (first failure, opening, first success again, closing), state and severity changes,
updates posted and who posted them, the customers affected each time the count changed, and the deploys inside the
incident's window (and the last one before it: a bad deploy is the first suspect). Each entry has its time and source.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from backstop.incidents.models import AffectedSample, EventKind, Incident, IncidentEvent

DEPLOY_LOOKBACK = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    source: str
    kind: str
    text: str


def incident_window(incident: Incident) -> tuple[dt.datetime, dt.datetime]:
    return incident.started_at, incident.resolved_at or timezone.now()


def build_timeline(incident: Incident) -> list[Entry]:
    start, end = incident_window(incident)
    entries = [Entry(e.at, e.source, e.kind, e.text) for e in IncidentEvent.objects.filter(incident=incident)]
    deploys = IncidentEvent.objects.filter(kind=EventKind.DEPLOY, incident__isnull=True)
    before = deploys.filter(at__lt=start, at__gte=start - DEPLOY_LOOKBACK).order_by("-at").first()
    during = list(deploys.filter(at__gte=start, at__lte=end))
    entries += [Entry(e.at, e.source, e.kind, e.text) for e in ([before] if before else []) + during]
    entries += [Entry(s.at, "incidents-watch", "customers_affected", f"{s.customers} customers affected")
                for s in AffectedSample.objects.filter(incident=incident)]
    return sorted(entries, key=lambda entry: entry.at)


def affected_series(incident: Incident) -> list[tuple[dt.datetime, int]]:
    return list(AffectedSample.objects.filter(incident=incident).values_list("at", "customers"))
