"""One email per person after an email outage: the welcome email that waited through it says sorry itself, and support
sends no second apology for the same delay; unless the provider may already hold its first words (an attempt that
timed out), when the welcome goes as it was and support apologises as before. Real parts: the fake provider over HTTP
through anymail, the setup workflows, the breaker's probe and support's cycle."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import make_password

from backstop.accounts import signup
from backstop.accounts.models import Account
from backstop.accounts.validation import clean_signup
from backstop.notify.fakemail import FakeMail
from backstop.notify.models import Message
from backstop.notify.providers import DjangoEmailProvider
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.probing import probe_provider
from backstop.support import automation
from backstop.support.models import Case, CaseState
from conftest import setup_finished, wait_for

pytestmark = pytest.mark.usefixtures("engine_db")


@pytest.fixture
def fakemail(fakemail: FakeMail, settings: Any) -> FakeMail:
    settings.BREAKER_THRESHOLD = 1
    settings.BREAKER_COOLDOWN_SECONDS = 1.0
    settings.RETRY_BASE_SECONDS, settings.RETRY_CAP_SECONDS = 0.2, 0.5
    return fakemail


def _sign_up(email: str) -> Account:
    return signup._create_account(clean_signup(name="Ann Lee", email=email, phone="+1 415 555 0100", company="Acme",
                                               password="correct horse battery"), make_password(None))


def _through_an_outage(fakemail: FakeMail, account: Account) -> None:
    """The account's welcome email meets the outage; support sees it wait; the probe finds the provider back."""
    wait_for(lambda: CircuitBreaker.objects.filter(pk="email", state=BreakerState.OPEN).exists(), timeout=20,
             message="the email breaker never opened")
    wait_for(lambda: automation.run_support_cycle() and Case.objects.filter(account=account).exists(), timeout=20,
             message="support never saw the welcome email wait")
    fakemail.set(mode="up")
    wait_for(lambda: probe_provider("email", DjangoEmailProvider().probe), timeout=20,
             message="the probe never found the provider back")
    assert setup_finished(account, timeout=40) == {"workspace": True, "welcome_email": True}
    wait_for(lambda: automation.run_support_cycle() is not None
             and Case.objects.get(account=account).state == CaseState.RESOLVED, timeout=20,
             message="the case never resolved")


def test_it_sends_one_email_that_says_sorry_when_the_welcome_waited_through_an_outage(fakemail: FakeMail) -> None:
    fakemail.set(mode="down")  # an outage's plain 503: a clear refusal, nothing delivered under the key
    account = _sign_up("late@example.com")

    _through_an_outage(fakemail, account)

    [delivered] = [m for m in fakemail.delivered() if m["to"] == [account.email]]
    assert delivered["subject"] == "Welcome to Backstop, Ann Lee: please confirm your email (sorry, this is late)"
    breaker = CircuitBreaker.objects.get(pk="email")
    assert breaker.failing_since is not None and breaker.recovered_at is not None
    assert (f"our email provider was failing from {breaker.failing_since:%H:%M} UTC on "
            f"{breaker.failing_since:%-d %b} to {breaker.recovered_at:%H:%M} UTC") in delivered["text"]
    assert "/verify/email/" in delivered["text"]  # still the welcome: the link to confirm the address
    welcome = Message.objects.get(account=account, kind="welcome")
    assert welcome.carries_apology and welcome.subject == delivered["subject"]
    assert not Message.objects.filter(account=account, kind="support_resolved").exists()
    assert Message.objects.filter(account=account).count() == 1


def test_it_keeps_the_first_words_and_apologises_apart_when_a_send_may_have_arrived(fakemail: FakeMail) -> None:
    fakemail.set(mode="hang")  # the attempt times out: the provider may hold the welcome under its key
    account = _sign_up("doubt@example.com")
    wait_for(lambda: Message.objects.get(account=account, kind="welcome").maybe_sent, timeout=20,
             message="the timed-out attempt was never marked in doubt")

    _through_an_outage(fakemail, account)

    wait_for(lambda: len([m for m in fakemail.delivered() if m["to"] == [account.email]]) == 2, timeout=20,
             message="support's apology was never delivered")
    by_subject = sorted(m["subject"] for m in fakemail.delivered() if m["to"] == [account.email])
    assert by_subject == ["It's fixed: sorry about our delayed emails",
                          "Welcome to Backstop, Ann Lee: please confirm your email"]
    assert not Message.objects.get(account=account, kind="welcome").carries_apology
