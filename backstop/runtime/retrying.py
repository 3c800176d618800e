"""The retry loop shared by every durable workflow that calls a third party.

Attempts are DBOS steps, so an interrupted attempt runs again and a finished one is never repeated.
Tasks are interleaved: while one step waits out its backoff, another can make progress (the welcome
email does not wait for a failing workspace provisioner). A message on ``topic`` wakes the loop early
("try again now").

The loop never reads the clock: its schedule is computed from the attempts' recorded results and the
durable waits between them, so a replayed workflow takes the same decisions without extra steps.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Literal, TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.lib.backoff import backoff_delay
from backstop.lib.errors import ProviderError, ProviderThrottled
from backstop.runtime.engine import release_db_connections, wait_for_message
from backstop.runtime.models import BreakerReading, CircuitBreaker

RETRY_NOW = "retry_now"
log = logging.getLogger(__name__)


class AttemptResult(TypedDict):
    status: Literal["done", "failed", "waiting"]
    retry_in: float
    error: str


def failed_attempt(attempt: int, error: str) -> AttemptResult:
    """A failed attempt, due again after the capped, jittered backoff for its number."""
    delay = backoff_delay(attempt, base=settings.RETRY_BASE_SECONDS, cap=settings.RETRY_CAP_SECONDS)
    return {"status": "failed", "retry_in": delay, "error": error}


def spread(wait: float) -> float:
    """A wait lengthened by a random share of itself (at most the breaker's cool-down): hundreds of setups waiting on
    one outage or one Retry-After must not all wake in the same second, competing with the web requests for the CPU and
    the database."""
    return wait + random.uniform(0, min(wait, settings.BREAKER_COOLDOWN_SECONDS)) if wait else 0.0


def check_breaker(provider: str) -> BreakerReading:
    reading = CircuitBreaker.objects.read_before_call(provider)
    if reading.paced and reading.wait_seconds:
        # Waiting for a paced slot: the slots are handed out in order from the row, so a wide spread would only leave
        # the provider idle; a second's jitter keeps the waiters from asking in the same instant.
        return reading._replace(wait_seconds=reading.wait_seconds + random.uniform(0, 1.0))
    return reading._replace(wait_seconds=spread(reading.wait_seconds)) if reading.wait_seconds else reading


def held_attempt(provider: str, error: ProviderThrottled) -> AttemptResult:
    """The provider asked us to come back later (Retry-After): hold every call to it until then, and wait (a wait, not
    a failure: it spends none of the attempt budget and opens no breaker)."""
    hold = CircuitBreaker.objects.record_hold(provider, error.retry_after, str(error), stated_rate=error.stated_rate,
                                              rate_limited=error.rate_limited)
    if hold.capped:
        log.warning("%s asked to be left alone for %.0f s; holding calls for the cap, %.0f s (RETRY_AFTER_CAP_SECONDS)",
                    provider, hold.asked_seconds, settings.RETRY_AFTER_CAP_SECONDS)
    wait = max(0.05, (hold.until - timezone.now()).total_seconds())
    return {"status": "waiting", "retry_in": spread(wait), "error": str(error)}


def call_through_breaker(
    provider: str, attempt: int, call: Callable[[], None], *, known_healthy: bool = False
) -> AttemptResult:
    """Run ``call`` unless ``provider``'s breaker is open or held; record the outcome on the breaker.

    A ``ProviderThrottled`` (the provider's Retry-After) holds the provider until then and makes the attempt wait
    (``held_attempt``); any other ``ProviderError`` is a failure the breaker counts.

    ``known_healthy``: the caller read the breaker closed with no failures moments ago and none of its calls has failed
    since (a setup batch's share of accounts reads it once, not once per account).
    """
    gate = BreakerReading(0.0, healthy=True) if known_healthy else check_breaker(provider)
    if gate.wait_seconds:
        return {"status": "waiting", "retry_in": gate.wait_seconds, "error": ""}
    if gate.slot_in > 0:
        # Our paced slot is moments ahead: sleep for it here (no connection held) rather than durably, which would
        # cost a step and a wake-up per call. A 429 meanwhile (another caller's) holds everyone: we look again.
        if not transaction.get_connection().in_atomic_block:  # a caller's transaction keeps its connection
            release_db_connections()
        time.sleep(gate.slot_in)
        if CircuitBreaker.objects.is_held(provider):
            return {"status": "waiting", "retry_in": spread(0.5), "error": ""}
    try:
        call()
    except ProviderThrottled as error:
        return held_attempt(provider, error)
    except ProviderError as error:
        CircuitBreaker.objects.record_failure(provider, str(error))
        return failed_attempt(attempt, str(error))
    if not gate.healthy:  # a breaker that was closed with no failures has nothing to reset
        CircuitBreaker.objects.record_success(provider)
    return {"status": "done", "retry_in": 0.0, "error": ""}


def retry_until_done(
    tasks: dict[str, Callable[[int], AttemptResult]], *, topic: str, max_attempts: int,
    first_results: dict[str, AttemptResult] | None = None,
) -> dict[str, bool]:
    """Inside a workflow: run each task's step until it is done or has failed ``max_attempts`` times.

    Times are seconds on the loop's own schedule: a task is due ``retry_in`` after the round that tried it,
    and the loop sleeps (durably) until the earliest due task, or until "try again now" makes all of them due (and
    gives a task that spent its budget meanwhile a new one).
    ``first_results`` are attempts already made elsewhere (a setup batch): the loop carries on from them.
    """
    pending = list(tasks)
    failures = dict.fromkeys(pending, 0)
    due = dict.fromkeys(pending, 0.0)
    now = 0.0
    outcome: dict[str, bool] = {}

    def settle(name: str, result: AttemptResult) -> None:
        if result["status"] == "done":
            outcome[name] = True
            pending.remove(name)
            return
        if result["status"] == "failed":
            failures[name] += 1
            if failures[name] >= max_attempts:
                outcome[name] = False
                pending.remove(name)
                return
        due[name] = now + max(0.0, result["retry_in"])

    for name, result in (first_results or {}).items():
        settle(name, result)
    while pending:
        for name in [n for n in pending if due[n] <= now]:
            settle(name, tasks[name](failures[name] + 1))
        release_db_connections()
        if pending:
            wake_at = min(due[name] for name in pending)
            if wait_for_message(topic, wake_at - now) == RETRY_NOW:
                # "Try again now" tries every task not done, a task whose budget was spent while another still ran
                # included (with a fresh budget, as a new run would give it): the button never does nothing.
                for name in [n for n, done in outcome.items() if not done]:
                    del outcome[name]
                    failures[name] = 0
                    pending.append(name)
                due = dict.fromkeys(pending, now)
            else:
                now = wake_at
    return outcome
