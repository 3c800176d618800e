"""Misconfiguration is a system check with an id, so `backstop serve` refuses to start with it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.core.checks import Error, Warning, register

DJANGO_ARGON2_MEMORY_KIB = Argon2PasswordHasher.memory_cost


@register("backstop")
def check_production_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    production = settings.MODE == "production"
    if production and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        problems.append(Error("BACKSTOP_SECRET_KEY is not set", hint="Set a long random value.", id="backstop.E001"))
    if production and (settings.FAULT_INJECTION or settings.INITIAL_FAULTS):
        problems.append(Error("fault injection is on in production",
                              hint="Unset BACKSTOP_FAULT_INJECTION and BACKSTOP_FAULTS.", id="backstop.E002"))
    if production and settings.DEMO_PAGES:
        problems.append(Error("demo pages are on in production", hint="Unset BACKSTOP_DEMO_PAGES.",
                              id="backstop.E003"))
    if production and settings.RATE_LIMIT_SCALE == 0:
        problems.append(Error("rate limits are off in production", hint="Unset BACKSTOP_RATE_LIMIT_SCALE.",
                              id="backstop.E004"))
    if production and settings.PASSWORD_ARGON2_MEMORY_KIB < DJANGO_ARGON2_MEMORY_KIB:
        problems.append(Error(f"BACKSTOP_PASSWORD_ARGON2_MEMORY_KIB is {settings.PASSWORD_ARGON2_MEMORY_KIB}, under "
                              f"Django's {DJANGO_ARGON2_MEMORY_KIB} (a test-suite setting)",
                              hint="Unset BACKSTOP_PASSWORD_ARGON2_MEMORY_KIB.", id="backstop.E011"))
    if settings.SMS_PROVIDER == "twilio" and not (
        settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM_NUMBER
    ):
        problems.append(Error("BACKSTOP_SMS=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER",
                              id="backstop.E005"))
    if settings.EMAIL_PROVIDER == "resend" and not settings.ANYMAIL.get("RESEND_API_KEY"):
        problems.append(Error("BACKSTOP_EMAIL=resend needs BACKSTOP_RESEND_API_KEY", id="backstop.E012"))
    if settings.WORKSPACE_PROVIDER == "http" and not settings.WORKSPACE_PROVISIONER_URL:
        problems.append(Error("BACKSTOP_WORKSPACES=http needs BACKSTOP_PROVISIONER_URL", id="backstop.E006"))
    if settings.INITIAL_FAULTS and not settings.FAULT_INJECTION:
        problems.append(Error("BACKSTOP_FAULTS is set but fault injection is off",
                              hint="Set BACKSTOP_FAULT_INJECTION=1 (demo and tests only).", id="backstop.E007"))
    if settings.INITIAL_FAULTS:
        from backstop.demo.faults import parse_faults

        try:
            parse_faults(settings.INITIAL_FAULTS)
        except ValueError as error:
            problems.append(Error(f"BACKSTOP_FAULTS is not valid: {error}", id="backstop.E008"))
    if settings.SERVE_WORKFLOWS == "process" and not settings.DATABASE_URL:
        problems.append(Warning(
            "BACKSTOP_SERVE_WORKFLOWS=process on SQLite: the web and worker processes will wait on each other for the "
            "database file's write lock", hint="Use inside on SQLite, or set DATABASE_URL (PostgreSQL).",
            id="backstop.W002"))
    problems += _probe_interval_problems()
    if production and settings.MIGRATION_GUARD == "off":
        problems.append(Warning(
            "the migration guard is off in production: migrate applies plans no preflight has tried",
            hint="Unset BACKSTOP_MIGRATION_GUARD (on by default in production).", id="backstop.W004"))
    if production:
        fakes = [name for name, value in (("BACKSTOP_EMAIL", settings.EMAIL_PROVIDER == "mailbox"),
                                          ("BACKSTOP_SMS", settings.SMS_PROVIDER == "mailbox"),
                                          ("BACKSTOP_WORKSPACES", settings.WORKSPACE_PROVIDER == "local")) if value]
        if fakes:
            problems.append(Warning(f"local fake providers in production: {', '.join(fakes)}",
                                    hint="Point them at real providers.", id="backstop.W001"))
    return problems


@register("backstop")
def check_trusted_proxies(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A proxy count we cannot read would either trust an address anyone can write or lump every visitor together."""
    if settings.TRUSTED_PROXY_COUNT_SETTING == str(settings.TRUSTED_PROXY_COUNT):
        return []
    return [Error(f"BACKSTOP_TRUSTED_PROXY_COUNT must be a whole number from 0 to 5, not "
                  f"{settings.TRUSTED_PROXY_COUNT_SETTING!r}",
                  hint="Set it to the number of your own proxies in front of the site (0 when none).",
                  id="backstop.E010")]


def _probe_interval_problems() -> list[Any]:
    """The breakers' probe (runtime/probing.py) runs on the supervisor's beat and must notice a recovery before the
    incident's customers are handed to a person."""
    problems: list[Any] = []
    if settings.BREAKER_PROBE_SECONDS >= settings.SUPPORT_INCIDENT_SETTLE_SECONDS:
        problems.append(Error(
            "BACKSTOP_BREAKER_PROBE_SECONDS is not shorter than BACKSTOP_SUPPORT_INCIDENT_SETTLE_SECONDS: a recovery "
            "could be noticed only after the incident's customers were handed to a person, unretried",
            hint="Probe more often than the settle time (default 10 s against 900 s).", id="backstop.E009"))
    if settings.BREAKER_PROBE_SECONDS < settings.HEARTBEAT_SECONDS:
        problems.append(Warning(
            "BACKSTOP_BREAKER_PROBE_SECONDS is shorter than BACKSTOP_HEARTBEAT_SECONDS: the supervisor runs the "
            "probe at most once per heartbeat", hint="Raise it to the heartbeat or more.", id="backstop.W003"))
    return problems
