"""Circuit breakers: open after consecutive failures, keep callers away, let exactly one probe through."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connections
from django.utils import timezone

from backstop.accounts import signup
from backstop.accounts.models import Account, AccountState
from backstop.accounts.validation import clean_signup
from backstop.lib.errors import ProviderError
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.retrying import call_through_breaker
from backstop.workspaces import services as workspace_services
from backstop.workspaces.providers import LocalProvisioner
from conftest import wait_for


class SpyProvider:
    """Counts the calls that actually reached the provider; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = True
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
        if self.failing:
            raise ProviderError("the provider answered with an error")


def open_breaker(provider: str, spy: SpyProvider, threshold: int) -> None:
    for attempt in range(1, threshold + 1):
        assert call_through_breaker(provider, attempt, spy)["status"] == "failed"


def settings_cap(settings: Any) -> float:
    return float(min(settings.RETRY_CAP_SECONDS, settings.RETRY_BASE_SECONDS * 4))


def end_cooldown(provider: str) -> None:
    CircuitBreaker.objects.filter(pk=provider).update(retry_at=timezone.now() - dt.timedelta(seconds=1))


@pytest.fixture
def breaker_settings(settings: Any) -> Any:
    settings.BREAKER_THRESHOLD = 3
    settings.BREAKER_COOLDOWN_SECONDS = 60
    return settings


@pytest.mark.django_db
def test_it_opens_after_the_threshold_of_consecutive_failures(breaker_settings: Any) -> None:
    spy = SpyProvider()
    open_breaker("sms", spy, threshold=2)
    assert CircuitBreaker.objects.get(pk="sms").state == BreakerState.CLOSED
    assert CircuitBreaker.objects.read_before_call("sms").wait_seconds == 0

    result = call_through_breaker("sms", 3, spy)
    assert result["status"] == "failed"
    assert result["error"] == "the provider answered with an error"
    # The third failure backs off by the capped exponential delay (half fixed, half jitter).
    assert settings_cap(breaker_settings) / 2 <= result["retry_in"] <= settings_cap(breaker_settings)

    breaker = CircuitBreaker.objects.get(pk="sms")
    assert breaker.state == BreakerState.OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.last_error == "the provider answered with an error"
    assert breaker.opened_at is not None
    assert 50 < CircuitBreaker.objects.read_before_call("sms").wait_seconds <= 60


@pytest.mark.django_db
def test_it_counts_only_failures_in_a_row(breaker_settings: Any) -> None:
    spy = SpyProvider()
    open_breaker("sms", spy, threshold=2)
    spy.failing = False
    assert call_through_breaker("sms", 3, spy)["status"] == "done"
    spy.failing = True
    open_breaker("sms", spy, threshold=2)

    breaker = CircuitBreaker.objects.get(pk="sms")
    assert breaker.state == BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


@pytest.mark.django_db
def test_it_does_not_call_the_provider_while_open(breaker_settings: Any) -> None:
    spy = SpyProvider()
    open_breaker("email", spy, threshold=3)

    for attempt in range(4, 10):
        result = call_through_breaker("email", attempt, spy)
        assert result["status"] == "waiting"
        assert result["retry_in"] > 50
        assert result["error"] == ""
    assert spy.calls == 3
    # Other providers are unaffected.
    assert call_through_breaker("sms", 1, SpyProvider())["status"] == "failed"


@pytest.mark.django_db(transaction=True)
def test_it_lets_exactly_one_concurrent_caller_probe_after_the_cooldown(breaker_settings: Any) -> None:
    open_breaker("workspace", SpyProvider(), threshold=3)
    end_cooldown("workspace")
    callers = 8
    start = threading.Barrier(callers)
    waits: list[float] = []

    def caller() -> None:
        try:
            start.wait()
            waits.append(CircuitBreaker.objects.read_before_call("workspace").wait_seconds)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(waits) == callers
    assert sorted(waits)[0] == 0
    assert all(wait > 0 for wait in sorted(waits)[1:]), waits
    assert CircuitBreaker.objects.get(pk="workspace").state == BreakerState.HALF_OPEN


@pytest.mark.django_db
def test_it_closes_when_the_probe_succeeds(breaker_settings: Any) -> None:
    spy = SpyProvider()
    open_breaker("workspace", spy, threshold=3)
    end_cooldown("workspace")
    spy.failing = False

    assert call_through_breaker("workspace", 4, spy)["status"] == "done"

    breaker = CircuitBreaker.objects.get(pk="workspace")
    assert (breaker.state, breaker.consecutive_failures, breaker.retry_at) == (BreakerState.CLOSED, 0, None)
    assert CircuitBreaker.objects.read_before_call("workspace").wait_seconds == 0
    assert spy.calls == 4


@pytest.mark.django_db
def test_it_reopens_when_the_probe_fails(breaker_settings: Any) -> None:
    spy = SpyProvider()
    open_breaker("workspace", spy, threshold=3)
    end_cooldown("workspace")

    assert call_through_breaker("workspace", 4, spy)["status"] == "failed"

    assert CircuitBreaker.objects.get(pk="workspace").state == BreakerState.OPEN
    assert CircuitBreaker.objects.read_before_call("workspace").wait_seconds > 50
    assert call_through_breaker("workspace", 5, spy)["status"] == "waiting"
    assert spy.calls == 4


@pytest.mark.django_db
def test_it_gives_the_probe_to_another_caller_when_the_probe_never_reports(breaker_settings: Any) -> None:
    open_breaker("workspace", SpyProvider(), threshold=3)
    end_cooldown("workspace")
    assert CircuitBreaker.objects.read_before_call("workspace").wait_seconds == 0  # this probe then crashes silently
    assert CircuitBreaker.objects.read_before_call("workspace").wait_seconds > 0

    end_cooldown("workspace")  # the probe's lease ran out

    assert CircuitBreaker.objects.read_before_call("workspace").wait_seconds == 0


class SpyProvisioner:
    """The local provisioner behind a switch, counting the calls that reached it."""

    def __init__(self) -> None:
        self.spy = SpyProvider()

    def provision(self, *, idempotency_key: str, name: str) -> str:
        self.spy()
        return LocalProvisioner().provision(idempotency_key=idempotency_key, name=name)


def test_it_keeps_many_setups_from_hammering_a_failing_provider(
    engine_db: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BREAKER_THRESHOLD = 3
    settings.BREAKER_COOLDOWN_SECONDS = 0.5
    settings.SETUP_MAX_ATTEMPTS = 1000
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"
    provisioner = SpyProvisioner()
    monkeypatch.setattr(workspace_services, "provisioner", lambda: provisioner)
    accounts = 20
    password = make_password(None)
    ids = [
        signup._create_account(
            clean_signup(name="Ann Lee", email=f"user{n}@example.com", phone="+1 415 555 0100", company=f"Co {n}",
                         password="correct horse battery"),
            password,
        ).pk
        for n in range(accounts)
    ]

    wait_for(lambda: CircuitBreaker.objects.filter(pk="workspace", state=BreakerState.OPEN).exists(), timeout=30,
             message="the breaker never opened")
    # Hold the provider down for several cool-downs. Without the breaker each of the 20 setups would call it
    # every 0.2 s at most (hundreds of calls); with it, one probe per cool-down gets through.
    calls_before = provisioner.spy.calls
    time.sleep(3)
    calls_while_open = provisioner.spy.calls - calls_before
    assert calls_while_open <= 3 / 0.5 + 3, calls_while_open

    provisioner.spy.failing = False
    calls_before = provisioner.spy.calls
    wait_for(lambda: Account.objects.filter(pk__in=ids, state=AccountState.ACTIVE).count() == accounts, timeout=30,
             message="setups did not all finish once the provider came back")
    # One successful call per setup, plus at most a failing probe that was already under way.
    assert provisioner.spy.calls - calls_before <= accounts + 1
    assert CircuitBreaker.objects.get(pk="workspace").state == BreakerState.CLOSED
