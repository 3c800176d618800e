"""The recipe for an operation that must not strand anyone, so that each one is a declaration instead of a copy.

An operation is written down first (its *intent*: a row with a key and a state), then carried out by a durable
workflow whose id is ``<operation>:<key>``, so starting it twice starts it once. The workflow tries the effect as
DBOS steps with capped, jittered backoff through the provider's circuit breaker (``retrying``) until it is done or
its attempt budget is spent; then it gives up, and a person is told through an attention record naming the harm and
the cause. A sweep, registered with the runtime, starts the workflow of any intent left waiting without one (the
process stopped between the commit and the hand-over, or the hand-over failed).

``GuardedOperation`` serves an operation that keeps its intents in a model of its own (a message's delivery keeps
them in ``notify.Message``). ``IntentOperation`` keeps them in the runtime's ``GuardedIntent`` table: a new operation
then needs no model, only its effect. See docs/architecture.md, "Adding an operation that must not strand anyone".
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.attention import services as attention_records
from backstop.runtime import dispatch
from backstop.runtime.engine import release_db_connections, yield_cpu_to_requests
from backstop.runtime.models import GuardedIntent, IntentState
from backstop.runtime.registry import register_sweep
from backstop.runtime.retrying import AttemptResult, call_through_breaker, retry_until_done

# Intents a sweep looks at in one pass: during an outage's backlog it meets hundreds, the next pass takes the rest.
SWEEP_LIMIT = 200


@dataclass(frozen=True)
class Progress:
    """What a person is shown of one operation (on its page, or through the API)."""

    state: str  # an IntentState value: waiting, retrying, done, given_up
    attempts: int = 0
    next_try_at: dt.datetime | None = None  # while being retried
    last_error: str = ""

    @property
    def done(self) -> bool:
        return self.state == IntentState.DONE

    @property
    def being_retried(self) -> bool:
        return self.state == IntentState.RETRYING


@dataclass(frozen=True)
class Attention:
    """What a person must hear when an operation gives up: how badly the customer is hurt, and why."""

    kind: str
    harm: int
    cause: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    account: Any = None
    subject: str = ""


def raise_attention_record(attention: Attention) -> None:
    """Open an attention record once (one open record per account and kind, or per subject)."""
    attention_records.raise_once(kind=attention.kind, harm=attention.harm, cause=attention.cause,
                                 summary=attention.summary, detail=attention.detail, account=attention.account,
                                 subject=attention.subject)


def _default_budget() -> int:
    return int(settings.SETUP_MAX_ATTEMPTS)


def _as_step(attempt: Callable[[int, int], AttemptResult]) -> Callable[[int, int], AttemptResult]:
    # A function of its own for each step: DBOS keeps its registration on the function it decorates.
    def attempt_once(intent_id: int, attempt_number: int) -> AttemptResult:
        return attempt(intent_id, attempt_number)
    return attempt_once


class GuardedOperation:
    """An operation over intents the caller keeps. The caller gives:

    - ``steps``: by name, one try of each effect, ``step(intent_id, attempt_number)``, idempotent, calling its
      provider through ``call_through_breaker``; the steps of one intent are interleaved (``retry_until_done``);
    - ``give_up(intent_id, failed_steps)``: marks the intent given up, and returns the ``Attention`` to raise (or a
      list of them, one per kind of harm), or None when the failure already reaches a person another way; the records
      are raised in the give-up's transaction;
    - ``stranded(grace_seconds)``: (id, key) of intents waiting for longer than the grace, possibly without workflow;
      None when the operation keeps a safety net of its own (setup's knows about its batches), registered by its app:
      the recipe then registers no sweep.

    ``workflow_name`` and ``step_names`` (by step, and ``give_up`` for the give-up step) keep the names an operation's
    workflows were recorded under before it adopted the recipe, so that a workflow left pending by the previous release
    replays. The workflow takes ``(intent_id, first_results=None)``: attempts already made elsewhere (a batch).
    """

    def __init__(self, name: str, *, queue: str, steps: dict[str, Callable[[int, int], AttemptResult]],
                 give_up: Callable[[int, list[str]], Attention | list[Attention] | None],
                 stranded: Callable[[float], Iterable[tuple[int, str]]] | None,
                 budget: Callable[[], int] = _default_budget, topic: str = "retry", workflow_name: str = "",
                 step_names: dict[str, str] | None = None) -> None:
        self.name, self.queue, self.topic, self.budget = name, queue, topic, budget
        self.stranded = stranded
        names = step_names or {}

        def give_up_for_good(intent_id: int, failed: list[str]) -> None:
            # One transaction: the intent is not seen given up without the records that tell a person.
            with transaction.atomic():
                given_up = give_up(intent_id, failed)
                for attention in [given_up] if isinstance(given_up, Attention) else given_up or []:
                    raise_attention_record(attention)

        durable_steps = {step: DBOS.step(name=names.get(step, f"{name}_{step}"))(_as_step(attempt))
                         for step, attempt in steps.items()}
        give_up_step = DBOS.step(name=names.get("give_up", f"{name}_give_up"))(give_up_for_good)

        def run(intent_id: int, first_results: dict[str, AttemptResult] | None = None) -> bool:
            """Try until done or out of budget; "try again now" arrives as a message on ``topic``."""
            yield_cpu_to_requests()
            try:
                tasks: dict[str, Callable[[int], AttemptResult]] = {
                    step: functools.partial(attempt, intent_id) for step, attempt in durable_steps.items()}
                outcome = retry_until_done(tasks, topic=topic, max_attempts=budget(), first_results=first_results)
                if failed := [step for step, done in outcome.items() if not done]:
                    give_up_step(intent_id, failed)
                return not failed
            finally:
                release_db_connections()

        self.workflow = DBOS.workflow(name=workflow_name or f"{name}_workflow")(run)
        if stranded is not None:
            register_sweep(name, self.sweep)

    def workflow_id(self, key: str) -> str:
        return f"{self.name}:{key}"

    def start(self, intent_id: int, key: str, first_results: dict[str, AttemptResult] | None = None) -> None:
        """Start the intent's workflow now; one that was ever started under this key is not started again.

        ``first_results``: attempts already made elsewhere (a batch), which the workflow carries on from."""
        args = (intent_id,) if first_results is None else (intent_id, first_results)
        dispatch.enqueue(self.workflow, *args, queue_name=self.queue, workflow_id=self.workflow_id(key))

    def start_after_commit(self, intent_id: int, key: str) -> None:
        """Start the workflow once the transaction that wrote the intent commits. A start that fails is logged, not
        raised into whatever committed the intent: the sweep takes it up."""
        transaction.on_commit(lambda: self.start(intent_id, key), robust=True)

    def sweep(self, grace_seconds: float) -> int:
        """Safety net: start the workflow of every stranded intent that has none. Returns how many it started."""
        if self.stranded is None:
            return 0
        return start_stranded(self.stranded(grace_seconds), workflow_id=self.workflow_id, start=self.start)


def start_stranded(waiting: Iterable[tuple[int, str]], *, workflow_id: Callable[[str], str],
                   start: Callable[[int, str], None]) -> int:
    """The sweep's work, for an operation whose workflow is its own: ``start`` each (id, key) waiting whose workflow
    (``workflow_id(key)``) was never started. Returns how many it started."""
    waiting = list(waiting)
    started = dispatch.workflow_statuses(workflow_id(key) for _, key in waiting)
    missing = [(intent_id, key) for intent_id, key in waiting if workflow_id(key) not in started]
    for intent_id, key in missing:
        start(intent_id, key)
    return len(missing)


class IntentOperation:
    """A guarded operation whose intents are rows of ``GuardedIntent``: the operation gives only its effect.

    ``effect(intent)`` calls ``provider`` once and raises ``ProviderError`` when it fails; it must be safe to run
    twice for one intent (a step interrupted mid-call runs again), e.g. by sending the intent's key to the provider.
    ``attention(intent)`` says what a person must hear when the budget is spent.
    """

    def __init__(self, name: str, *, provider: str, queue: str, effect: Callable[[GuardedIntent], None],
                 attention: Callable[[GuardedIntent], Attention | None], budget: Callable[[], int] = _default_budget
                 ) -> None:
        self.name, self.provider, self.effect, self.attention = name, provider, effect, attention
        self.guarded = GuardedOperation(name, queue=queue, steps={"effect": self._attempt}, give_up=self._give_up,
                                        stranded=self._stranded, budget=budget)

    def request(self, *, key: str, payload: dict[str, Any]) -> GuardedIntent:
        """Write the intent down (once per key) and start its workflow when the surrounding transaction commits."""
        intent, _ = GuardedIntent.objects.get_or_create(operation=self.name, key=key, defaults={"payload": payload})
        self.guarded.start_after_commit(intent.pk, key)
        return intent

    def progress(self, key: str) -> Progress | None:
        intent = GuardedIntent.objects.filter(operation=self.name, key=key).first()
        if intent is None:
            return None
        return Progress(state=intent.state, attempts=intent.attempts, next_try_at=intent.next_try_at,
                        last_error=intent.last_error)

    def _attempt(self, intent_id: int, attempt: int) -> AttemptResult:
        intent = GuardedIntent.objects.get(pk=intent_id)
        if intent.state == IntentState.DONE:
            return {"status": "done", "retry_in": 0.0, "error": ""}
        result = call_through_breaker(self.provider, attempt, lambda: self.effect(intent))
        now = timezone.now()
        unfinished = GuardedIntent.objects.filter(pk=intent_id).exclude(state=IntentState.DONE)
        if result["status"] == "done":
            unfinished.update(state=IntentState.DONE, attempts=attempt, last_error="", next_try_at=None, updated_at=now)
        elif result["status"] == "failed":
            unfinished.update(state=IntentState.RETRYING, attempts=attempt, last_error=result["error"][:500],
                              next_try_at=now + dt.timedelta(seconds=result["retry_in"]), updated_at=now)
        return result

    def _give_up(self, intent_id: int, failed: list[str]) -> Attention | None:
        GuardedIntent.objects.filter(pk=intent_id).exclude(state=IntentState.DONE).update(
            state=IntentState.GIVEN_UP, next_try_at=None, updated_at=timezone.now())
        intent = GuardedIntent.objects.get(pk=intent_id)
        return self.attention(intent) if intent.state == IntentState.GIVEN_UP else None

    def _stranded(self, grace_seconds: float) -> list[tuple[int, str]]:
        before = timezone.now() - dt.timedelta(seconds=grace_seconds)
        return list(GuardedIntent.objects.filter(
            operation=self.name, state=IntentState.WAITING, attempts=0, created_at__lt=before,
        ).order_by("created_at").values_list("pk", "key")[:SWEEP_LIMIT])
