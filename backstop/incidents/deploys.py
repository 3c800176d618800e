"""Deploys on the timeline: `backstop serve` records one at start-up; `backstop migrate` may call ``record_deploy``.

A deploy belongs to no incident when it is recorded; an incident's timeline shows the deploys inside its window (and
the one just before it), since a bad deploy is the first suspect.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence

from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from backstop.incidents import messages
from backstop.incidents.lifecycle import record_event
from backstop.incidents.models import EventKind, IncidentEvent


def migrations_applied_since(moment: dt.datetime | None) -> list[str]:
    recorder = MigrationRecorder(connection)
    rows = recorder.migration_qs.order_by("applied", "id")
    if moment is not None:
        rows = rows.filter(applied__gt=moment)
    return [f"{app}.{name}" for app, name in rows.values_list("app", "name")]


def record_deploy(*, migrations: Sequence[str], source: str = "serve") -> None:
    """One "deploy" event now, naming the migrations it applied (an empty list: code only)."""
    names = f": {', '.join(migrations[:20])}" + (" ..." if len(migrations) > 20 else "") if migrations else ""
    record_event(incident=None, kind=EventKind.DEPLOY, source=f"{source}@{socket.gethostname()}",
                 text=messages.DEPLOY.format(count=len(migrations), names=names),
                 detail={"migrations": list(migrations)}, at=timezone.now())


def record_serve_start() -> None:
    """At `backstop serve` start-up: the deploy (with the migrations applied since the last one recorded)."""
    last = IncidentEvent.objects.filter(kind=EventKind.DEPLOY).order_by("-at").values_list("at", flat=True).first()
    # The first deploy ever recorded names those just applied (serve --migrate), not every one since the project began.
    since = last if last is not None else timezone.now() - dt.timedelta(minutes=10)
    record_deploy(migrations=migrations_applied_since(since))
