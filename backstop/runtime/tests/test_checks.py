"""System checks: each misconfiguration has its own id and fires only under the settings it names."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks

from backstop.checks import check_production_settings

# A production deployment that passes every check; each case below breaks one thing.
CLEAN_PRODUCTION = {
    "MODE": "production",
    "SECRET_KEY": "a-long-random-production-secret-" + "x" * 20,
    "FAULT_INJECTION": False,
    "INITIAL_FAULTS": "",
    "DEMO_PAGES": False,
    "RATE_LIMIT_SCALE": 1.0,
    "EMAIL_PROVIDER": "smtp",
    "SMS_PROVIDER": "twilio",
    "TWILIO_ACCOUNT_SID": "AC123",
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM_NUMBER": "+14155550000",
    "WORKSPACE_PROVIDER": "http",
    "WORKSPACE_PROVISIONER_URL": "https://provisioner.internal",
    "DATABASE_URL": "postgres://backstop@db.internal/backstop",
    "SERVE_WORKFLOWS": "process",
    "BREAKER_PROBE_SECONDS": 10.0,
    "HEARTBEAT_SECONDS": 5.0,
    "SUPPORT_INCIDENT_SETTLE_SECONDS": 900.0,
    "PASSWORD_ARGON2_MEMORY_KIB": 102400,  # Django's; the suite runs at 1 MiB (conftest.py)
    "MIGRATION_GUARD": "on",  # production's default (settings.py); the tests run in development mode, where it is off
}


def backstop_check_ids(settings: Any, **overrides: Any) -> list[str]:
    for name, value in {**CLEAN_PRODUCTION, **overrides}.items():
        setattr(settings, name, value)
    return sorted(str(message.id) for message in check_production_settings())


def test_it_passes_a_clean_production_configuration(settings: Any) -> None:
    assert backstop_check_ids(settings) == []


def test_it_passes_the_development_defaults(settings: Any) -> None:
    assert backstop_check_ids(
        settings, MODE="development", SECRET_KEY=settings.DEVELOPMENT_SECRET_KEY, FAULT_INJECTION=True,
        INITIAL_FAULTS="email=timeout", DEMO_PAGES=True, RATE_LIMIT_SCALE=0, EMAIL_PROVIDER="mailbox",
        SMS_PROVIDER="mailbox", WORKSPACE_PROVIDER="local", WORKSPACE_PROVISIONER_URL="", DATABASE_URL="",
        SERVE_WORKFLOWS="inside",
    ) == []


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"SECRET_KEY": "development-only-secret-key-never-use-in-production"}, ["backstop.E001"]),
    ({"FAULT_INJECTION": True}, ["backstop.E002"]),
    ({"FAULT_INJECTION": True, "INITIAL_FAULTS": "email=timeout"}, ["backstop.E002"]),
    ({"DEMO_PAGES": True}, ["backstop.E003"]),
    ({"RATE_LIMIT_SCALE": 0}, ["backstop.E004"]),
    ({"PASSWORD_ARGON2_MEMORY_KIB": 1024}, ["backstop.E011"]),
    ({"TWILIO_AUTH_TOKEN": ""}, ["backstop.E005"]),
    ({"TWILIO_ACCOUNT_SID": ""}, ["backstop.E005"]),
    ({"TWILIO_FROM_NUMBER": ""}, ["backstop.E005"]),
    ({"WORKSPACE_PROVISIONER_URL": ""}, ["backstop.E006"]),
    ({"EMAIL_PROVIDER": "mailbox"}, ["backstop.W001"]),
    ({"SMS_PROVIDER": "mailbox", "TWILIO_AUTH_TOKEN": ""}, ["backstop.W001"]),
    ({"WORKSPACE_PROVIDER": "local", "WORKSPACE_PROVISIONER_URL": ""}, ["backstop.W001"]),
    ({"MIGRATION_GUARD": "off"}, ["backstop.W004"]),
])
def test_it_refuses_a_production_misconfiguration(settings: Any, overrides: dict[str, Any],
                                                   expected: list[str]) -> None:
    assert backstop_check_ids(settings, **overrides) == expected


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"SMS_PROVIDER": "twilio", "TWILIO_AUTH_TOKEN": ""}, ["backstop.E005"]),
    ({"WORKSPACE_PROVIDER": "http", "WORKSPACE_PROVISIONER_URL": ""}, ["backstop.E006"]),
    ({"EMAIL_PROVIDER": "resend", "ANYMAIL": {"RESEND_API_KEY": ""}}, ["backstop.E012"]),
    ({"FAULT_INJECTION": False, "INITIAL_FAULTS": "email=timeout"}, ["backstop.E007"]),
    ({"FAULT_INJECTION": True, "INITIAL_FAULTS": "email=explode"}, ["backstop.E008"]),
    ({"FAULT_INJECTION": True, "INITIAL_FAULTS": "printer=error"}, ["backstop.E008"]),
    ({"FAULT_INJECTION": True, "INITIAL_FAULTS": "email"}, ["backstop.E008"]),
    ({"FAULT_INJECTION": False, "INITIAL_FAULTS": "email=explode"}, ["backstop.E007", "backstop.E008"]),
    ({"DATABASE_URL": "", "SERVE_WORKFLOWS": "process"}, ["backstop.W002"]),
    ({"DATABASE_URL": "", "SERVE_WORKFLOWS": "inside"}, []),
    ({"SERVE_WORKFLOWS": "none"}, []),
])
def test_it_refuses_a_misconfiguration_in_any_mode(settings: Any, overrides: dict[str, Any],
                                                    expected: list[str]) -> None:
    assert backstop_check_ids(settings, MODE="development", **overrides) == expected


def test_it_names_the_broken_setting_in_the_message(settings: Any) -> None:
    for name, value in {**CLEAN_PRODUCTION, "FAULT_INJECTION": True, "INITIAL_FAULTS": "email=explode",
                        "EMAIL_PROVIDER": "mailbox", "WORKSPACE_PROVIDER": "local"}.items():
        setattr(settings, name, value)

    messages = {message.id: message for message in check_production_settings()}

    assert messages["backstop.E002"].is_serious()
    assert "BACKSTOP_FAULTS is not valid: unknown mode 'explode' for email" in messages["backstop.E008"].msg
    assert not messages["backstop.W001"].is_serious()
    assert messages["backstop.W001"].msg == "local fake providers in production: BACKSTOP_EMAIL, BACKSTOP_WORKSPACES"


def test_it_is_registered_with_djangos_check_framework(settings: Any) -> None:
    backstop_check_ids(settings, DEMO_PAGES=True)

    assert "backstop.E003" in {message.id for message in run_checks(tags=["backstop"])}


def test_it_logs_a_warning_report_at_start_up_as_one_record(settings: Any, caplog: pytest.LogCaptureFixture,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from django.core.management import call_command

    from backstop.cli import _check_settings

    settings.DATABASE_URL, settings.SERVE_WORKFLOWS = "", "process"
    settings.BREAKER_PROBE_SECONDS, settings.SUPPORT_INCIDENT_SETTLE_SECONDS = 10, 900  # the suite's own are an error
    with caplog.at_level("WARNING", logger="backstop.cli"):
        _check_settings(call_command)

    [record] = [r for r in caplog.records if r.name == "backstop.cli"]
    assert "backstop.W002" in record.getMessage()
    assert "backstop.W002" not in capsys.readouterr().err  # in the log line, not beside it
