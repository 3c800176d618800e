"""After a 429, every caller of the provider is paced: slots handed out by the breaker row at the rate the provider
stated (or one learnt from its 429s, probing upward), never before its Retry-After, so a backlog drains at the limit
instead of in waves of 429s. Real parts: the fake Resend over HTTP through anymail, the database's breaker row."""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from backstop.lib.errors import stated_rate
from backstop.notify.fakemail import FakeMail
from backstop.notify.providers import DjangoEmailProvider
from backstop.runtime.models import CircuitBreaker
from backstop.runtime.retrying import call_through_breaker


@pytest.fixture
def fakemail(fakemail: FakeMail, settings: Any) -> FakeMail:
    settings.EMAIL_TIMEOUT = 2.0
    return fakemail


def send(number: int) -> None:
    DjangoEmailProvider().send_email(to=f"p{number}@example.com", subject="Welcome", text="Hello.\n",
                                     html="<p>Hello.</p>", message_id=f"<pace.{number}@backstop>")


def send_until_done(numbers: list[int]) -> None:
    """One caller sending its emails one after another, waiting as a workflow would between attempts."""
    try:
        for number in numbers:
            while (result := call_through_breaker("email", 1, functools.partial(send, number)))["status"] != "done":
                assert result["status"] == "waiting", result
                time.sleep(result["retry_in"])
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_it_paces_every_caller_at_the_rate_the_provider_stated(fakemail: FakeMail, settings: Any) -> None:
    settings.PACE_MAX_SLEEP_SECONDS = 2.0
    fakemail.set(rate=4)
    burst: list[str] = []
    while "waiting" not in burst and len(burst) < 40:  # a second's worth goes at once, then the 429 (a slow machine
        burst.append(call_through_breaker("email", 1, functools.partial(send, len(burst)))["status"])  # refills some)
    assert burst[-1] == "waiting" and burst.count("done") >= 4, burst
    first_burst = burst.count("done")
    breaker = CircuitBreaker.objects.get(pk="email")
    assert breaker.pace_rate == 4.0 and breaker.stated_rate == 4.0  # from its ratelimit-limit header
    assert breaker.next_slot_at is not None and breaker.held_until is not None
    assert breaker.next_slot_at >= breaker.held_until  # no slot before the Retry-After ends
    throttled_before = fakemail.counts.throttled

    # Eight callers, 24 emails between them, all at once: the slots keep them to 4/s, no 429 answers them.
    started = time.monotonic()
    callers = [threading.Thread(target=send_until_done, args=(list(range(100 + i, 124, 8)),)) for i in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    elapsed = time.monotonic() - started

    assert fakemail.counts.delivered == first_burst + 24
    assert fakemail.counts.throttled - throttled_before <= 1, fakemail.counts
    assert 4.5 <= elapsed <= 15, elapsed  # 24 at 4/s after the hold: about 6 s (not 0.1 s, nor waves of holds)


@pytest.mark.django_db
def test_it_learns_a_pace_from_429s_without_a_stated_rate_and_probes_upward(settings: Any) -> None:
    CircuitBreaker.objects.record_hold("sms", 2.0, "the SMS provider asked us to wait (HTTP 429)")
    breaker = CircuitBreaker.objects.get(pk="sms")
    assert breaker.pace_rate == 0.5 and breaker.stated_rate is None  # one call per Retry-After, as it promised
    assert breaker.next_slot_at == breaker.held_until
    assert not CircuitBreaker.objects.is_healthy("sms")  # a setup batch reads it before each call

    for _ in range(35):
        CircuitBreaker.objects.record_success("sms")
    breaker.refresh_from_db()
    assert breaker.pace_rate == pytest.approx(0.5 * 1.02 ** 35)  # about double: each success probes upward

    # A second 429 in the same second (one burst) cuts nothing more; one later halves the pace.
    CircuitBreaker.objects.record_hold("sms", 1.0, "429")
    breaker.refresh_from_db()
    assert breaker.pace_rate == pytest.approx(0.5 * 1.02 ** 35)
    CircuitBreaker.objects.filter(pk="sms").update(paced_since=timezone.now() - dt.timedelta(seconds=5))
    CircuitBreaker.objects.record_hold("sms", 1.0, "429")
    breaker.refresh_from_db()
    assert breaker.pace_rate == pytest.approx(0.25 * 1.02 ** 35)


@pytest.mark.django_db
def test_it_paces_nothing_after_an_outages_503_with_retry_after(fakemail: FakeMail) -> None:
    fakemail.set(mode="down", down_retry_after=1)
    assert call_through_breaker("email", 1, functools.partial(send, 1))["status"] == "waiting"  # held, as asked
    breaker = CircuitBreaker.objects.get(pk="email")
    assert breaker.held_until is not None and breaker.pace_rate is None  # an outage's "not before" is not a rate


@pytest.mark.django_db
def test_it_hands_out_slots_in_order_and_sends_later_callers_away_to_come_back(settings: Any) -> None:
    settings.PACE_MAX_SLEEP_SECONDS = 1.0
    CircuitBreaker.objects.record_hold("sms", 0.0, "429", stated_rate=4.0)
    readings = [CircuitBreaker.objects.read_before_call("sms") for _ in range(8)]

    near = [r for r in readings if not r.wait_seconds]
    assert [round(r.slot_in * 4) for r in near] == [0, 1, 2, 3, 4]  # a slot every 0.25 s, up to a second ahead
    assert all(r.paced and 0 < r.wait_seconds <= 1.0 for r in readings[5:])  # no slot taken: they come back


@pytest.mark.django_db
def test_it_forgets_a_pace_no_429_has_renewed(settings: Any) -> None:
    CircuitBreaker.objects.record_hold("sms", 0.0, "429", stated_rate=2.0)
    CircuitBreaker.objects.filter(pk="sms").update(
        paced_since=timezone.now() - dt.timedelta(seconds=settings.PACE_FORGET_SECONDS + 1))

    reading = CircuitBreaker.objects.read_before_call("sms")

    assert reading.wait_seconds == 0 and not reading.paced  # unpaced again, until the next 429 (a raised limit)
    assert CircuitBreaker.objects.get(pk="sms").pace_rate is None


def test_it_reads_the_rate_a_provider_states() -> None:
    assert stated_rate("2") == 2.0  # Resend: per second
    assert stated_rate("10", "10;w=2") == 5.0  # the IETF draft's policy, a 2-second window
    assert stated_rate("100, 10;w=1", None) == 100.0
    assert stated_rate(None) is None and stated_rate("lots") is None and stated_rate("5", "5;w=x") is None
