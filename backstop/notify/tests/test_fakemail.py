"""The fake email provider (Resend's API, through anymail and our backend): rate limit with Retry-After, outages, one
delivery per idempotency key; and the breaker obeying its Retry-After through the real adapter."""

from __future__ import annotations

import functools
import time
from typing import Any

import httpx
import pytest

from backstop.lib.errors import ProviderError, ProviderThrottled, ProviderTimeout
from backstop.notify.fakemail import FakeMail
from backstop.notify.providers import DjangoEmailProvider
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.runtime.probing import probe_provider
from backstop.runtime.retrying import call_through_breaker


def send(number: int, to: str = "ann@example.com") -> None:
    DjangoEmailProvider().send_email(to=to, subject="Welcome to Backstop", text="Hello Ann.\n",
                                     html="<p>Hello Ann.</p>", message_id=f"<welcome.{number}@backstop>")


def test_it_delivers_through_anymail_with_the_message_id_as_idempotency_key(fakemail: FakeMail) -> None:
    send(7)
    send(7)  # a resend after an answer that never came: the key makes it one delivery

    [delivered] = fakemail.delivered()
    assert delivered["to"] == ["ann@example.com"] and delivered["subject"] == "Welcome to Backstop"
    assert delivered["idempotency_key"] == "<welcome.7@backstop>"
    assert delivered["text"] == "Hello Ann.\n" and delivered["html"] == "<p>Hello Ann.</p>"
    assert fakemail.counts.sends == 2 and fakemail.counts.replayed == 1


def test_it_answers_429_with_retry_after_beyond_its_rate(fakemail: FakeMail) -> None:
    fakemail.set(rate=0.5)  # one send every 2 s, a burst of one
    send(1)
    with pytest.raises(ProviderThrottled) as raised:
        send(2)
    assert raised.value.retry_after in (1.0, 2.0)  # whole seconds until the next token
    assert str(raised.value) == "the email provider asked us to wait (HTTP 429)"
    assert fakemail.counts.throttled == 1 and fakemail.counts.delivered == 1

    time.sleep(raised.value.retry_after)
    send(2)
    assert fakemail.counts.delivered == 2


def test_it_is_down_as_told_and_counts_the_calls(fakemail: FakeMail) -> None:
    fakemail.set(mode="down")
    with pytest.raises(ProviderError) as raised:
        send(1)
    assert not isinstance(raised.value, ProviderThrottled)  # an outage's plain 503 is a failure the breaker counts
    assert str(raised.value) == "the email provider refused the message (HTTP 503)"

    fakemail.set(mode="hang")
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        send(2)
    assert 0.9 <= time.monotonic() - started < 5

    with pytest.raises(ProviderError):
        DjangoEmailProvider().probe()  # the health call reaches the provider too
    assert fakemail.counts.calls_while_down == 3 and fakemail.counts.delivered == 0

    fakemail.set(mode="up")
    DjangoEmailProvider().probe()
    send(3)
    assert fakemail.counts.delivered == 1


def test_it_takes_its_settings_over_its_control_api(fakemail: FakeMail) -> None:
    state = httpx.post(f"{fakemail.url}_fakemail/config", json={"mode": "down", "rate": 5}).json()
    assert state["mode"] == "down" and state["rate"] == 5
    assert httpx.get(f"{fakemail.url}_fakemail/state").json()["mode"] == "down"
    assert httpx.post(f"{fakemail.url}_fakemail/config", json={"mode": "sideways"}).status_code == 400


@pytest.mark.django_db
def test_it_holds_the_email_breaker_for_the_fakes_retry_after(fakemail: FakeMail, settings: Any) -> None:
    settings.BREAKER_THRESHOLD = 2
    fakemail.set(rate=1)
    assert call_through_breaker("email", 1, lambda: send(1))["status"] == "done"
    throttled = call_through_breaker("email", 1, lambda: send(2))
    assert throttled["status"] == "waiting" and throttled["retry_in"] >= 0.5, throttled

    for number in range(3, 8):  # held: none of these reaches the provider
        assert call_through_breaker("email", 1, functools.partial(send, number))["status"] == "waiting"
    assert fakemail.counts.sends == 2
    breaker = CircuitBreaker.objects.get(pk="email")
    assert breaker.state == BreakerState.CLOSED and breaker.consecutive_failures == 0
    assert breaker.held_until is not None

    time.sleep(max(0.0, (breaker.held_until - breaker.updated_at).total_seconds()) + 0.05)
    assert call_through_breaker("email", 2, lambda: send(2))["status"] == "done"
    assert fakemail.counts.delivered == 2


@pytest.mark.django_db
def test_it_probes_the_email_provider_while_its_breaker_is_open(fakemail: FakeMail, settings: Any) -> None:
    settings.BREAKER_THRESHOLD = 2
    fakemail.set(mode="down")
    for attempt in (1, 2):
        assert call_through_breaker("email", attempt, lambda: send(1))["status"] == "failed"
    assert CircuitBreaker.objects.get(pk="email").state == BreakerState.OPEN

    assert not probe_provider("email", DjangoEmailProvider().probe)
    fakemail.set(mode="up")
    assert probe_provider("email", DjangoEmailProvider().probe)
    assert CircuitBreaker.objects.get(pk="email").state == BreakerState.CLOSED
    assert fakemail.counts.calls_while_down == 3 and fakemail.counts.probes == 2


@pytest.mark.usefixtures("engine_db")
def test_it_sends_every_welcome_email_once_through_the_rate_limit(fakemail: FakeMail, settings: Any) -> None:
    from django.contrib.auth.hashers import make_password

    from backstop.accounts import signup
    from backstop.accounts.validation import clean_signup
    from conftest import setup_finished

    settings.RETRY_BASE_SECONDS, settings.RETRY_CAP_SECONDS = 60, 120  # a failure would not be retried in this test
    fakemail.set(rate=1)
    accounts = [signup._create_account(clean_signup(
        name="Ann Lee", email=f"ann{number}@example.com", phone="+1 415 555 0100", company="Acme",
        password="correct horse battery"), make_password(None)) for number in range(3)]

    for account in accounts:
        assert setup_finished(account, timeout=40) == {"workspace": True, "welcome_email": True}
    delivered = fakemail.delivered()
    assert sorted(message["to"][0] for message in delivered) == [account.email for account in accounts]
    assert fakemail.counts.throttled >= 1  # three at once at one a second: the limit was met, and waited out
    assert CircuitBreaker.objects.get(pk="email").consecutive_failures == 0


@pytest.mark.django_db
def test_it_sends_a_message_again_with_the_same_key_after_its_sent_mark_was_lost(fakemail: FakeMail) -> None:
    from backstop.notify import services
    from backstop.notify.models import DeliveryStatus, Message

    context = {"account": {"name": "Ann"}, "code": "123456", "verify_url": "http://testserver/verify"}
    by_key = services.create_email(account=None, kind="sign_in_code", key="code:7:email", to="ann@example.com",
                                   context=context, secret="123456")
    threaded = services.create_email(account=None, kind="sign_in_code", key="code:8:email", to="bob@example.com",
                                     context=context, message_id="<case.1.first@backstop>")
    again = services.create_email(account=None, kind="sign_in_code", key="code:8:email", to="bob@example.com",
                                  context=context, message_id="<case.1.second@backstop>")
    assert again.pk == threaded.pk and again.message_id_header == "<case.1.first@backstop>"  # made once, stored

    before = list(Message.objects.values())
    for message in (by_key, threaded):
        assert services.deliver(message=Message.objects.get(pk=message.pk), attempt=1)["status"] == "done"
    assert set(Message.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    # The worker died between the provider's answer and the row's `sent` (secret masked): that write never happened,
    # and the restarted delivery sends again.
    for row in before:
        Message.objects.filter(pk=row["id"]).update(**row)
    for message in (by_key, threaded):
        assert services.deliver(message=Message.objects.get(pk=message.pk), attempt=2)["status"] == "done"

    delivered = fakemail.delivered()
    assert sorted(m["idempotency_key"] for m in delivered) == ["<case.1.first@backstop>", "<code.7.email@backstop>"]
    assert fakemail.counts.sends == 4 and fakemail.counts.replayed == 2
