"""Incident misconfiguration is a system check, so `backstop serve` refuses to start with it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register("backstop")
def check_incident_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    if settings.INCIDENT_SEV2_CUSTOMERS >= settings.INCIDENT_SEV1_CUSTOMERS:
        problems.append(Error(
            "BACKSTOP_INCIDENT_SEV2_CUSTOMERS is not below BACKSTOP_INCIDENT_SEV1_CUSTOMERS: the severity rule would "
            "skip SEV-2", hint="Keep the SEV-2 count below the SEV-1 count (default 5 and 50).", id="backstop.E201"))
    directory = Path(settings.INCIDENTS_STATUS_FILE).parent
    existing = next((folder for folder in (directory, *directory.parents) if folder.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
        problems.append(Error(
            f"The status page's file cannot be written in {directory}: /status would keep saying what it last knew",
            hint="Point BACKSTOP_INCIDENTS_STATUS_FILE at a writable place (default: the data directory).",
            id="backstop.E202"))
    return problems
