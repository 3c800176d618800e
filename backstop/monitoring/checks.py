"""The metrics token is a secret: a short one can be guessed, and in production staff-only metrics need one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

MIN_TOKEN_CHARS = 32


@register("backstop")
def check_metrics_token(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    token = settings.METRICS_TOKEN
    if token and len(token) < MIN_TOKEN_CHARS:
        return [Error(f"BACKSTOP_METRICS_TOKEN has {len(token)} characters; it needs {MIN_TOKEN_CHARS} or more",
                      hint="Use a long random value: python -c 'import secrets; print(secrets.token_urlsafe())'",
                      id="monitoring.E001")]
    if settings.MODE == "production" and not token:
        return [Warning("BACKSTOP_METRICS_TOKEN is not set: /metrics answers only a signed-in staff member, which a "
                        "Prometheus scraper is not", hint="Set a long random token and give it to the scraper.",
                        id="monitoring.W001")]
    return []
