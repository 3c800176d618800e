"""The retry loop shared by every durable workflow that calls a third party.

Attempts are DBOS steps, so an interrupted attempt runs again and a finished one is never repeated.
Tasks are interleaved: while one step waits out its backoff, another can make progress (the welcome
email does not wait for a failing workspace provisioner). A message on ``topic`` wakes the loop early
("try again now").
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypedDict

from dbos import DBOS
from django.conf import settings

from backstop.lib.backoff import backoff_delay
from backstop.lib.errors import ProviderError
from backstop.runtime.engine import release_db_connections, wait_for_message
from backstop.runtime.models import CircuitBreaker

RETRY_NOW = "retry_now"


class AttemptResult(TypedDict):
    status: Literal["done", "failed", "waiting"]
    retry_in: float
    error: str


@dataclass(frozen=True)
class Gate:
    """What the breaker said before an attempt: go ahead, or wait this long."""

    wait_seconds: float


def check_breaker(provider: str) -> Gate:
    wait = CircuitBreaker.objects.wait_before_call(provider)
    return Gate(wait_seconds=wait + random.uniform(0, min(2.0, wait / 5)) if wait else 0.0)


def call_through_breaker(provider: str, attempt: int, call: Callable[[], None]) -> AttemptResult:
    """Run ``call`` unless ``provider``'s breaker is open; record the outcome on the breaker."""
    gate = check_breaker(provider)
    if gate.wait_seconds:
        return {"status": "waiting", "retry_in": gate.wait_seconds, "error": ""}
    try:
        call()
    except ProviderError as error:
        CircuitBreaker.objects.record_failure(provider, str(error))
        delay = backoff_delay(attempt, base=settings.RETRY_BASE_SECONDS, cap=settings.RETRY_CAP_SECONDS)
        return {"status": "failed", "retry_in": delay, "error": str(error)}
    CircuitBreaker.objects.record_success(provider)
    return {"status": "done", "retry_in": 0.0, "error": ""}


@DBOS.step()
def read_clock() -> float:
    return time.time()


def retry_until_done(
    tasks: dict[str, Callable[[int], AttemptResult]], *, topic: str, max_attempts: int
) -> dict[str, bool]:
    """Inside a workflow: run each task's step until it is done or has failed ``max_attempts`` times."""
    pending = list(tasks)
    failures = dict.fromkeys(pending, 0)
    due = dict.fromkeys(pending, 0.0)
    outcome: dict[str, bool] = {}
    while pending:
        now = read_clock()
        for name in [n for n in pending if due[n] <= now]:
            result = tasks[name](failures[name] + 1)
            if result["status"] == "done":
                outcome[name] = True
                pending.remove(name)
                continue
            if result["status"] == "failed":
                failures[name] += 1
                if failures[name] >= max_attempts:
                    outcome[name] = False
                    pending.remove(name)
                    continue
            due[name] = now + result["retry_in"]
        release_db_connections()
        if pending:
            # Only unfinished tasks count: a finished task's old due time would turn this into a busy loop.
            wake_in = min(due[name] for name in pending) - read_clock()
            if wake_in > 0 and wait_for_message(topic, wake_in) == RETRY_NOW:
                due = dict.fromkeys(pending, 0.0)
    return outcome
