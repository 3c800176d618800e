"""Incidents: customers stranded by one failing provider become one card, and are told once when it is over."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import override_settings

from backstop.accounts.models import Account, AccountState, SetupStep, StepStatus
from backstop.demo.models import FaultSetting
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.support import automation, cases
from backstop.support.models import (
    Case,
    CaseState,
    Incident,
    IncidentState,
    Resolution,
    StaffNotice,
    SupportAction,
)
from backstop.support.tests.helpers import (
    close_breaker,
    desk_client,
    new_account,
    open_breaker,
    staff_account,
    stalled_account,
)
from conftest import wait_for

pytestmark = pytest.mark.usefixtures("engine_db")
OUTAGE = {"BREAKER_THRESHOLD": 2, "SETUP_MAX_ATTEMPTS": 1000, "BREAKER_COOLDOWN_SECONDS": 0.5}


def _resolution_messages(account: Account) -> list[Message]:
    return list(Message.objects.filter(account=account, kind="support_resolved"))


def _desk(staff: Account) -> str:
    return html.unescape(desk_client(staff).get("/desk").content.decode())


@override_settings(**OUTAGE)
def test_it_turns_a_provider_outage_into_one_incident_and_resolves_every_case_when_it_recovers() -> None:
    staff = staff_account()
    FaultSetting.objects.set_modes({"workspace": "error"})
    stranded = [new_account(f"c{i}@example.com", name=f"Customer {i}") for i in range(6)]

    def all_waiting_on_an_open_breaker() -> bool:
        breaker = CircuitBreaker.objects.filter(provider="workspace").first()
        waiting = SetupStep.objects.filter(name="workspace", status__in=(StepStatus.WAITING, StepStatus.RETRYING))
        return breaker is not None and breaker.state != BreakerState.CLOSED and waiting.count() == len(stranded)

    wait_for(all_waiting_on_an_open_breaker, timeout=30, message="the outage never stranded every account")
    automation.run_support_cycle()

    incident = Incident.objects.get()
    assert (incident.state, incident.provider) == (IncidentState.OPEN, "workspace")
    assert Case.objects.filter(incident=incident, state=CaseState.OPEN).count() == len(stranded)
    assert not Case.objects.queue().exists()
    desk = _desk(staff)
    assert desk.count('class="incident-card') == 1
    assert "Workspace provider answering with errors since" in desk
    assert "6 customers waiting, automation retrying, no action needed" in desk
    assert list(StaffNotice.objects.values_list("key", flat=True)) == [f"incident:{incident.pk}"]

    FaultSetting.objects.set_modes({"workspace": "ok"})
    wait_for(lambda: Account.objects.filter(pk__in=[a.pk for a in stranded], state=AccountState.ACTIVE).count()
             == len(stranded), timeout=30, message="setup did not finish after the provider recovered")
    automation.run_support_cycle()
    automation.run_support_cycle()  # a second pass changes nothing

    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED and incident.customers_affected == len(stranded)
    assert set(Case.objects.values_list("state", "resolution")) == {(CaseState.RESOLVED, Resolution.AUTOMATION)}
    for account in stranded:
        told = _resolution_messages(account)
        assert len(told) == 1, account.email
        assert "Our workspace provider failed from" in told[0].text
        assert "That was our failure, not yours" in told[0].text
        # ... and that one email says the workspace is ready: setup sends no "ready" email of its own.
        assert not Message.objects.filter(account=account, kind="account_ready").exists()
    assert 'class="incident-card' not in _desk(staff)


def test_it_retries_setups_that_gave_up_during_the_outage_once_the_provider_is_back() -> None:
    stalled = [stalled_account(f"s{i}@example.com") for i in range(3)]
    open_breaker("workspace")
    automation.run_support_cycle()
    incident = Incident.objects.get()
    assert Case.objects.filter(incident=incident).count() == 3

    close_breaker("workspace")
    automation.run_support_cycle()

    incident.refresh_from_db()
    assert incident.state == IncidentState.RECOVERING
    assert SupportAction.objects.filter(action="retry_setup", staff__isnull=True).count() == 3
    wait_for(lambda: Account.objects.filter(pk__in=[a.pk for a in stalled], state=AccountState.ACTIVE).count() == 3,
             timeout=30, message="automation's retry did not finish the setups")
    automation.run_support_cycle()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert all(len(_resolution_messages(a)) == 1 for a in stalled)
    assert not Message.objects.filter(kind="account_ready").exists()  # support's email is the one that tells them


def test_it_hands_a_case_automation_cannot_finish_to_a_person() -> None:
    stalled_account("s1@example.com")
    open_breaker("workspace")
    automation.run_support_cycle()
    case = Case.objects.get()
    assert case.incident is not None

    FaultSetting.objects.set_modes({"workspace": "error"})  # the breaker closed, but the provider still fails
    close_breaker("workspace")
    automation.run_support_cycle()  # retried once by automation...
    wait_for(lambda: SetupStep.objects.filter(name="workspace", status=StepStatus.FAILED).exists(), timeout=30)
    automation.run_support_cycle()  # ...which failed again: a person's turn

    case.refresh_from_db()
    assert case.incident is None and case.left_incident is not None and case.is_open
    assert list(Case.objects.queue()) == [case]
    assert SupportAction.objects.filter(action="retry_setup").count() == 1


def test_it_keeps_a_case_with_another_problem_in_the_queue_rather_than_in_the_incident() -> None:
    account = stalled_account("s1@example.com")
    stalled_account("s2@example.com")
    open_breaker("workspace")
    automation.run_support_cycle()
    assert Case.objects.filter(incident__isnull=False).count() == 2
    sms = Message.objects.create(key="sms-1", account=account, channel="sms", kind="support_reply", to="+1",
                                 text="hi", status=DeliveryStatus.FAILED, last_error="the SMS provider refused")

    automation.run_support_cycle()

    case = Case.objects.get(account=account)
    assert case.incident is None and case.left_incident is not None
    assert list(Case.objects.queue()) == [case]
    assert "1 of them need a person" in _desk(staff_account())
    assert sms.support_signals.count() == 1


def test_it_opens_an_incident_when_several_customers_share_a_failing_provider_before_its_breaker_opens() -> None:
    for i in range(3):
        stalled_account(f"s{i}@example.com")
    CircuitBreaker.objects.create(provider="workspace", state=BreakerState.CLOSED, consecutive_failures=3,
                                  last_error="the workspace service did not answer within 10 seconds")
    automation.run_support_cycle()

    incident = Incident.objects.get()
    assert incident.cause == "provider:workspace" and incident.state == IncidentState.OPEN
    assert Case.objects.filter(incident=incident).count() == 3
    assert "timing out" in _desk(staff_account())



def test_it_tells_a_customer_once_when_setup_already_emailed_that_the_workspace_is_ready(settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 1000
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account("race@example.com")
    wait_for(lambda: SetupStep.objects.get(account=account, name="workspace").attempts >= 2,
             message="the workspace was not retried")
    # The support cycle reads the step as still retrying ...
    waiting_step = SetupStep.objects.get(account=account, name="workspace")
    FaultSetting.objects.set_modes({"workspace": "ok"})
    wait_for(lambda: Account.objects.get(pk=account.pk).state == AccountState.ACTIVE,
             message="setup did not finish after the provider recovered")
    assert Message.objects.filter(account=account, kind="account_ready").count() == 1
    # ... and joins it to a case only after setup has emailed the owner that the workspace is ready.
    cases.join_setup_delay(step=waiting_step, account=account)

    automation.run_support_cycle()

    assert Case.objects.get(account=account).state == CaseState.RESOLVED
    assert not _resolution_messages(account)
    assert Message.objects.filter(account=account, kind="account_ready").count() == 1
