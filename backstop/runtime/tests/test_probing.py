"""The half-open probe on a timer: a failing provider is checked by its health call, not by customer traffic."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from backstop.demo.models import FaultSetting
from backstop.runtime import probing, registry
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.tests.test_checks import backstop_check_ids

pytestmark = pytest.mark.django_db


def _open(provider: str) -> CircuitBreaker:
    """Open as a run of failures leaves it: first failure a minute ago, next customer look an hour away."""
    now = timezone.now()
    return CircuitBreaker.objects.create(
        provider=provider, state=BreakerState.OPEN, consecutive_failures=5, last_error="down",
        failing_since=now - dt.timedelta(minutes=1), opened_at=now - dt.timedelta(seconds=50),
        retry_at=now + dt.timedelta(hours=1))


@pytest.fixture
def recoveries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The recovery hooks replaced by one that notes the provider (the apps' hooks are tested through them)."""
    seen: list[str] = []
    monkeypatch.setattr(registry, "_recovery_hooks", {"test": seen.append})
    return seen


@pytest.mark.parametrize("provider", ["workspace", "email", "sms"])
def test_it_probes_an_open_breaker_through_the_adapter_and_its_injected_fault(
        provider: str, recoveries: list[str], settings: Any) -> None:
    settings.BREAKER_PROBE_SECONDS = 0.1
    _open(provider)
    FaultSetting.objects.set_modes({provider: "error"})

    assert probing.probe_failing_providers() == []

    breaker = CircuitBreaker.objects.get(pk=provider)
    assert breaker.state == BreakerState.OPEN and breaker.recovered_at is None
    assert breaker.last_error == f"the {provider} provider answered with an error"
    assert breaker.retry_at is not None and breaker.retry_at < timezone.now() + dt.timedelta(minutes=1)
    assert recoveries == []

    FaultSetting.objects.set_modes({provider: "ok"})
    CircuitBreaker.objects.filter(pk=provider).update(probed_at=None)  # the next interval
    before = timezone.now()

    assert probing.probe_failing_providers() == [provider]

    breaker.refresh_from_db()
    assert (breaker.state, breaker.consecutive_failures) == (BreakerState.CLOSED, 0)
    assert breaker.recovered_at is not None and breaker.recovered_at >= before
    assert breaker.failing_since is not None and breaker.failing_since < before  # the outage's start is kept
    assert recoveries == [provider]
    assert probing.probe_failing_providers() == []  # the hooks run once per recovery
    assert recoveries == [provider]


def test_it_probes_a_provider_once_per_interval_whatever_the_number_of_processes(settings: Any) -> None:
    settings.BREAKER_PROBE_SECONDS = 60
    _open("workspace")

    assert probing._claim_probe("workspace") is True
    assert probing._claim_probe("workspace") is False  # another process's supervisor, moments later
    assert CircuitBreaker.objects.get(pk="workspace").state == BreakerState.HALF_OPEN


def test_it_runs_the_recovery_hooks_when_a_customers_call_closed_the_breaker(recoveries: list[str]) -> None:
    _open("email")
    CircuitBreaker.objects.record_success("email")  # a send that went through, not the probe

    assert probing.handle_recoveries() == ["email"]
    assert recoveries == ["email"]


def test_it_measures_the_outage_from_its_first_failure_to_the_first_success(settings: Any) -> None:
    settings.BREAKER_THRESHOLD = 2
    CircuitBreaker.objects.record_failure("sms", "down")
    CircuitBreaker.objects.record_success("sms")  # a failure that opened nothing was no outage
    assert CircuitBreaker.objects.get(pk="sms").recovered_at is None

    CircuitBreaker.objects.record_failure("sms", "down")
    first = CircuitBreaker.objects.get(pk="sms").failing_since
    CircuitBreaker.objects.record_failure("sms", "still down")
    breaker = CircuitBreaker.objects.get(pk="sms")
    assert breaker.state == BreakerState.OPEN and breaker.failing_since == first  # a later failure is not the start

    CircuitBreaker.objects.record_success("sms")

    breaker = CircuitBreaker.objects.get(pk="sms")
    assert first is not None and breaker.recovered_at is not None and breaker.recovered_at >= first
    assert breaker.failing_since == first


def test_it_refuses_a_probe_interval_that_outlasts_the_incident_settle_time(settings: Any) -> None:
    assert "backstop.E009" in backstop_check_ids(settings, BREAKER_PROBE_SECONDS=900.0,
                                                 SUPPORT_INCIDENT_SETTLE_SECONDS=900.0)
    assert "backstop.W003" in backstop_check_ids(settings, BREAKER_PROBE_SECONDS=1.0, HEARTBEAT_SECONDS=5.0)
    assert backstop_check_ids(settings, BREAKER_PROBE_SECONDS=10.0, HEARTBEAT_SECONDS=5.0) == []
