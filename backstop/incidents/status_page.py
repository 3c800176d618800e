"""The status, as a private file written at each change and read without the database.

``/status`` and ``/status.json`` (and so the banner) answer from this file alone: while the database is down or being
migrated they still say what they last knew. Every change of an incident (opened, moved, an update posted, the
severity or the counts changed) writes it again, after its transaction commits; the write is a whole new file
renamed over the old one, so a reader never sees half of it. The file also says whom each live incident's banner is
for (``audience``): it is rewritten whenever that changes, a customer recovering included (``detection``), and
``/status.json`` serves it without that part.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.incidents import audience, messages
from backstop.incidents.models import AffectedCustomer, Incident, IncidentState

HISTORY_DAYS = 90
# Only in the private file: the banner endpoint reads them, /status.json leaves them out.
PRIVATE_KEYS = ("audience", "audience_known")


def status_file() -> Path:
    return Path(settings.INCIDENTS_STATUS_FILE)


def write_after_commit() -> None:
    transaction.on_commit(write_status_file)


def _incident(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "title": incident.title,
        "capability": incident.capability,
        "capability_name": messages.capability_name(incident.capability),
        "state": incident.state,
        "state_label": messages.STATE_LABELS[incident.state],
        "severity": incident.get_severity_display(),
        "started_at": incident.started_at.isoformat(),
        "mitigated_at": incident.mitigated_at.isoformat() if incident.mitigated_at else None,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "updates": [{"at": u.created_at.isoformat(), "state": u.state, "state_label": messages.STATE_LABELS[u.state],
                     "body": u.body} for u in reversed(list(incident.updates.all()))],
    }


def _with_audience(incident: Incident) -> dict[str, Any]:
    """A live incident with whom its banner is for: the banner tokens of the customers it hurts now (recovered ones
    drop out). An incident without a cause counts nobody (opened by hand about something else): audience unknown."""
    hurt = (AffectedCustomer.objects.filter(incident=incident, recovered_at__isnull=True)
            .order_by("account_id").values_list("account_id", flat=True))
    return {**_incident(incident), "audience_known": bool(incident.cause),
            "audience": [audience.account_token(account_id) for account_id in hurt]}


def public_status(status: dict[str, Any]) -> dict[str, Any]:
    """The status as anyone may read it (/status.json): without the banner's audience."""
    return {**status, "live": [{k: v for k, v in incident.items() if k not in PRIVATE_KEYS}
                               for incident in status.get("live", [])]}


def build_status(now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    since = now - dt.timedelta(days=HISTORY_DAYS)
    live = list(Incident.objects.live().prefetch_related("updates"))
    past = list(Incident.objects.filter(state=IncidentState.RESOLVED, started_at__gte=since)
                .order_by("-started_at").prefetch_related("updates"))
    by_day: dict[str, list[int]] = {}
    for incident in [*live, *past]:
        first = incident.started_at.date()
        last = (incident.resolved_at or now).date()
        day = first
        while day <= last:
            by_day.setdefault(day.isoformat(), []).append(incident.pk)
            day += dt.timedelta(days=1)
    days = [(now - dt.timedelta(days=back)).date().isoformat() for back in range(HISTORY_DAYS - 1, -1, -1)]
    return {
        "generated_at": now.isoformat(),
        "ok": not live,
        "headline": messages.STATUS_ALL_GOOD if not live else messages.STATUS_PROBLEM,
        "affected_capabilities": sorted({messages.capability_name(i.capability) for i in live}),
        "live": [_with_audience(i) for i in live],
        "past": [_incident(i) for i in past],
        "days": [{"date": day, "incidents": by_day.get(day, [])} for day in days],
    }


def write_status_file() -> Path:
    path = status_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(build_status(), separators=(",", ":"))
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".status-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(temporary, path)
    return path


def read_status_file() -> dict[str, Any] | None:
    """The last status written, or None when none was written yet (a fresh install that never had an incident)."""
    try:
        return json.loads(status_file().read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
