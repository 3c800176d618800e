"""Incidents follow the provider: the outage window is the one measured on the breaker, and the setup page says who
is handling a setup that gave up exactly as the desk does."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.notify.models import DeliveryStatus, Message
from backstop.runtime.models import CircuitBreaker
from backstop.support import automation
from backstop.support.models import Case, Incident, IncidentState
from backstop.support.tests.helpers import (
    desk_client,
    finish_setup,
    open_breaker,
    staff_account,
    stalled_account,
)

pytestmark = pytest.mark.usefixtures("engine_db")
SUPPORT_HAS_IT = ("Our support team has it", "Our support team already has the details")
AUTOMATION_HAS_IT = "we'll try again by ourselves as soon as it works again"


def _setup_page(account: Account) -> str:
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")
    return html.unescape(client.get("/setup").content.decode())


def _desk(staff: Account) -> str:
    return html.unescape(desk_client(staff).get("/desk").content.decode())


def test_it_tells_the_customer_who_handles_their_setup_as_the_desk_does() -> None:
    staff = staff_account()
    account = stalled_account("s1@example.com")
    stalled_account("s2@example.com")
    open_breaker("workspace")
    automation.run_support_cycle()
    assert Case.objects.get(account=account).incident is not None
    assert "automation retrying, no action needed" in _desk(staff)

    page = _setup_page(account)

    assert not any(claim in page for claim in SUPPORT_HAS_IT), page
    assert AUTOMATION_HAS_IT in page
    assert "our workspace provider is failing" in page

    # Another problem takes the case out of the incident, into a person's queue: now the page says a person has it.
    Message.objects.create(key="sms-1", account=account, channel="sms", kind="support_reply", to="+1", text="hi",
                           status=DeliveryStatus.FAILED, last_error="the SMS provider refused")
    automation.run_support_cycle()
    assert list(Case.objects.queue()) == [Case.objects.get(account=account)]

    page = _setup_page(account)

    assert all(claim in page for claim in SUPPORT_HAS_IT)
    assert AUTOMATION_HAS_IT not in page


def test_it_apologises_for_the_outage_window_measured_on_the_breaker() -> None:
    now = timezone.now().replace(second=30, microsecond=0)
    first_failure, opened, recovered = (now - dt.timedelta(minutes=m) for m in (20, 15, 7))
    stalled = [stalled_account(f"s{i}@example.com") for i in range(3)]
    open_breaker("workspace")
    CircuitBreaker.objects.filter(pk="workspace").update(failing_since=first_failure, opened_at=opened)
    automation.run_support_cycle()
    incident = Incident.objects.get()
    assert incident.started_at == first_failure

    # The provider answered again seven minutes ago (a probe); the cycle notices it only now.
    CircuitBreaker.objects.record_success("workspace")
    CircuitBreaker.objects.filter(pk="workspace").update(recovered_at=recovered)
    for account in stalled:
        finish_setup(account)
    automation.run_support_cycle()
    automation.run_support_cycle()

    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED and incident.cleared_at == recovered
    for account in stalled:
        told = Message.objects.get(account=account, kind="support_resolved").text
        assert f"failed from {first_failure:%H:%M} to {recovered:%H:%M} UTC" in told, told


def test_it_says_in_the_banner_what_is_true_of_a_welcome_email_that_was_not_sent(local_mailbox: None) -> None:
    from backstop.accounts.models import AccountState, SetupStep, StepName, StepStatus

    account = stalled_account("w1@example.com")
    Account.objects.filter(pk=account.pk).update(state=AccountState.ACTIVE)
    SetupStep.objects.filter(account=account, name=StepName.WORKSPACE).update(status=StepStatus.DONE)
    SetupStep.objects.filter(account=account, name=StepName.WELCOME_EMAIL).update(
        status=StepStatus.FAILED, attempts=4, last_error="the email server refused the message")

    # Given up with the provider working: a person's (the desk's queue), not "when the provider is back".
    page = _setup_page(account)
    assert "the link in our welcome email" not in page
    assert "We couldn't send your welcome email to w1@example.com; our support team has it." in page
    assert 'id="resend-welcome"' in page

    open_breaker("email", error="the email server closed the connection")
    page = _setup_page(account)
    assert "We couldn't send your welcome email to w1@example.com yet; we'll send it when our email provider is " \
           "back." in page
    assert 'id="resend-welcome"' in page
