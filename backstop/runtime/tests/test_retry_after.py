"""A provider's Retry-After (429 or 503): every call to it is held until then, from any caller, without counting a
failure; the workflow's next try is not before it; a huge value is capped by RETRY_AFTER_CAP_SECONDS."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password

from backstop.accounts import signup
from backstop.accounts.models import Account, AccountState
from backstop.accounts.validation import clean_signup
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.probing import probe_provider
from backstop.runtime.retrying import call_through_breaker
from backstop.workspaces.providers import HttpProvisioner
from conftest import StubApi, setup_finished, wait_for


class ThrottlingService:
    """The stub answers 429 with the given Retry-After ``throttles`` times, then creates workspaces; it notes when."""

    def __init__(self, stub: StubApi, retry_after: str, throttles: int = 1, status: int = 429) -> None:
        self.stub, self.retry_after, self.throttles, self.status = stub, retry_after, throttles, status
        self.times: list[float] = []
        stub.reply = self.answer

    def answer(self, request: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
        self.times.append(time.monotonic())
        if len(self.times) <= self.throttles:
            return self.status, b'{"error": "slow down"}', {"Retry-After": self.retry_after}
        return 201, json.dumps({"id": f"ws_{len(self.times)}", "name": "Acme"}).encode(), {}


@pytest.fixture
def http_provisioner(settings: Any, stub_api: StubApi) -> StubApi:
    settings.WORKSPACE_PROVIDER = "http"
    settings.WORKSPACE_PROVISIONER_URL = stub_api.url
    settings.WORKSPACE_PROVISIONER_TOKEN = "provisioner-token"
    settings.WORKSPACE_TIMEOUT = 2.0
    settings.BREAKER_THRESHOLD = 3
    settings.BREAKER_COOLDOWN_SECONDS = 60
    return stub_api


def provision() -> None:
    HttpProvisioner().provision(idempotency_key="key-1", name="Acme")


@pytest.mark.django_db
def test_it_holds_every_call_for_the_retry_after_then_resumes(http_provisioner: StubApi) -> None:
    service = ThrottlingService(http_provisioner, "2")

    first = call_through_breaker("workspace", 1, provision)
    assert first["status"] == "waiting"  # a wait, not a failure: no budget spent
    assert 1.5 <= first["retry_in"] <= 4.05  # the hold (less the time the call took), plus its spread
    assert "asked us to wait (HTTP 429)" in first["error"]
    breaker = CircuitBreaker.objects.get(pk="workspace")
    assert breaker.state == BreakerState.CLOSED and breaker.consecutive_failures == 0
    assert breaker.held_until is not None
    assert "waiting 2 seconds, as it asked" in breaker.last_error
    assert not CircuitBreaker.objects.is_healthy("workspace")  # a batch must not skip the breaker while held

    # Every caller is held until then: none reaches the provider.
    while time.monotonic() < service.times[0] + 1.5:
        result = call_through_breaker("workspace", 1, provision)
        assert result["status"] == "waiting" and result["retry_in"] > 0
        time.sleep(0.2)
    assert len(service.times) == 1

    wait_for(lambda: call_through_breaker("workspace", 2, provision)["status"] == "done", timeout=5, interval=0.1,
             message="the calls never resumed after the hold")
    assert len(service.times) == 2
    assert service.times[1] - service.times[0] >= 2.0
    breaker.refresh_from_db()
    assert breaker.held_until is None  # the first success after the hold forgets it
    # The 429 stated no rate: callers are paced at one call per Retry-After from then on (grown by the success), so
    # the breaker is read before every call, not skipped as healthy.
    assert breaker.pace_rate is not None and 0.5 < breaker.pace_rate <= 0.5 * 1.02 + 1e-9
    assert not CircuitBreaker.objects.is_healthy("workspace")


@pytest.mark.django_db
def test_it_reads_a_retry_after_given_as_an_http_date(http_provisioner: StubApi) -> None:
    service = ThrottlingService(http_provisioner, email.utils.formatdate(time.time() + 5, usegmt=True), status=503)

    assert call_through_breaker("workspace", 1, provision)["status"] == "waiting"
    wait = CircuitBreaker.objects.read_before_call("workspace")
    assert wait.held and 2 < wait.wait_seconds <= 5.0  # the date has whole seconds; a busy machine took some

    wait_for(lambda: call_through_breaker("workspace", 2, provision)["status"] == "done", timeout=10, interval=0.1,
             message="the calls never resumed after the date")
    assert service.times[1] - service.times[0] >= 3.0


@pytest.mark.django_db
def test_it_caps_a_huge_retry_after_and_says_so(http_provisioner: StubApi, settings: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    settings.RETRY_AFTER_CAP_SECONDS = 5
    ThrottlingService(http_provisioner, "86400")

    with caplog.at_level(logging.WARNING, logger="backstop.runtime.retrying"):
        result = call_through_breaker("workspace", 1, provision)
    assert result["status"] == "waiting" and 4.5 <= result["retry_in"] <= 10.05
    assert 4 < CircuitBreaker.objects.read_before_call("workspace").wait_seconds <= 5
    breaker = CircuitBreaker.objects.get(pk="workspace")
    assert "asked us to wait 86400 seconds; we wait the cap, 5" in breaker.last_error
    assert "holding calls for the cap" in caplog.text


@pytest.mark.django_db
def test_it_never_counts_a_throttle_as_a_failure_that_opens_the_breaker(http_provisioner: StubApi) -> None:
    ThrottlingService(http_provisioner, "1", throttles=10)
    for attempt in range(1, 6):
        CircuitBreaker.objects.filter(pk="workspace").update(held_until=None)  # as if each hold had run out
        assert call_through_breaker("workspace", attempt, provision)["status"] == "waiting"
    breaker = CircuitBreaker.objects.get(pk="workspace")
    assert breaker.state == BreakerState.CLOSED and breaker.consecutive_failures == 0


@pytest.mark.django_db
def test_it_keeps_an_open_breakers_probe_until_the_hold_ends(http_provisioner: StubApi) -> None:
    http_provisioner.status, http_provisioner.headers = 503, {"Retry-After": "30"}
    for _ in range(3):
        CircuitBreaker.objects.record_failure("workspace", "down")
    assert not probe_provider("workspace", HttpProvisioner().probe)

    breaker = CircuitBreaker.objects.get(pk="workspace")
    assert breaker.state == BreakerState.OPEN and breaker.consecutive_failures == 3  # the probe's 503 held, not counted
    assert breaker.retry_at is not None and breaker.held_until is not None and breaker.retry_at >= breaker.held_until
    assert 25 < CircuitBreaker.objects.read_before_call("workspace").wait_seconds <= 30


@pytest.mark.usefixtures("local_mailbox", "engine_db")
def test_it_makes_the_workflows_next_try_wait_for_the_retry_after(http_provisioner: StubApi, settings: Any) -> None:
    # A failure would back off at least 30 s: a try within that came from the hold, not the backoff.
    settings.RETRY_BASE_SECONDS, settings.RETRY_CAP_SECONDS = 60, 120
    service = ThrottlingService(http_provisioner, "2")
    data = clean_signup(name="Ann Lee", email="ann@example.com", phone="+1 415 555 0100", company="Acme",
                        password="correct horse battery")
    account = signup._create_account(data, make_password(None))

    wait_for(lambda: Account.objects.get(pk=account.pk).state == AccountState.ACTIVE, timeout=25,
             message="the setup did not carry on after the Retry-After")
    assert len(service.times) == 2
    assert 2.0 <= service.times[1] - service.times[0] < 20
    assert setup_finished(account) == {"workspace": True, "welcome_email": True}
    assert CircuitBreaker.objects.get(pk="workspace").consecutive_failures == 0
