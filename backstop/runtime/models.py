"""Shared state of the workflow runtime: live processes and circuit breakers per provider."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import F, Max, Q
from django.utils import timezone


class ExecutorManager(models.Manager["Executor"]):
    def beat(self, executor_id: str, *, role: str, pid: int, hostname: str) -> None:
        now = timezone.now()
        updated = self.filter(pk=executor_id).update(last_seen_at=now, taken_over_by="", pid=pid)
        if not updated:
            self.update_or_create(
                pk=executor_id,
                defaults={"role": role, "pid": pid, "hostname": hostname, "last_seen_at": now,
                          "started_at": now, "taken_over_by": ""},
            )

    def last_heartbeat(self) -> dt.datetime | None:
        """When any process running workflows last reported in; None when none ever has."""
        latest: dt.datetime | None = self.aggregate(latest=Max("last_seen_at"))["latest"]
        return latest

    def claim_dead(self, *, claimer: str, dead_after: float) -> list[str]:
        """Executors silent for ``dead_after`` seconds that this process won the right to take over."""
        cutoff = timezone.now() - dt.timedelta(seconds=dead_after)
        live = self.filter(last_seen_at__gte=cutoff).values("pk")
        # Unclaimed, or claimed by a process that went silent too: it may have died between claiming and
        # re-enqueueing, and re-enqueueing again is harmless (DBOS only re-enqueues still-pending workflows).
        candidates = self.filter(last_seen_at__lt=cutoff).exclude(pk=claimer).exclude(taken_over_by__in=live)
        claimed = []
        for executor_id, previous_claimer in candidates.values_list("pk", "taken_over_by"):
            # Conditional UPDATE: of several live processes, exactly one wins each dead executor.
            won = self.filter(pk=executor_id, taken_over_by=previous_claimer, last_seen_at__lt=cutoff).update(
                taken_over_by=claimer, taken_over_at=timezone.now()
            )
            if won:
                claimed.append(executor_id)
        return claimed


class Executor(models.Model):
    """One running process (web server or worker) that executes workflows."""

    id = models.CharField(primary_key=True, max_length=200)
    role = models.CharField(max_length=20)
    hostname = models.CharField(max_length=200)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    taken_over_by = models.CharField(max_length=200, blank=True, default="")
    taken_over_at = models.DateTimeField(null=True, blank=True)

    objects = ExecutorManager()

    def __str__(self) -> str:
        return self.id


class BreakerState(models.TextChoices):
    CLOSED = "closed", "working"
    OPEN = "open", "failing, calls paused"
    HALF_OPEN = "half_open", "testing whether it works again"


class BreakerReading(NamedTuple):
    wait_seconds: float  # 0: the call may go ahead now (after ``slot_in``)
    healthy: bool  # closed with no failures counted: a success has nothing to reset
    held: bool = False  # waiting out the provider's own Retry-After (``held_until``), not an outage
    # Paced (after a 429): the caller holds a slot this many seconds ahead and calls then, not before; or, with
    # ``wait_seconds``, no slot was near enough and it comes back when one may be.
    slot_in: float = 0.0
    paced: bool = False


# What a success does to a pace learnt without a stated rate: it grows by this share, so a pace halved by a 429 climbs
# back (and past, if the provider's limit rose) within about a hundred calls.
PACE_GROWTH = 1.02
# What a 429 does to a pace with no stated rate behind it.
PACE_CUT = 0.5
# A slot claimed against this many others at once is not worth fighting for: the caller comes back in a moment.
SLOT_CLAIM_TRIES = 20


class HoldRecorded(NamedTuple):
    until: dt.datetime  # no call to the provider before this
    asked_seconds: float  # what the provider asked for
    capped: bool  # it asked for more than RETRY_AFTER_CAP_SECONDS: we wait the cap


class CircuitBreakerManager(models.Manager["CircuitBreaker"]):
    def read_before_call(self, provider: str) -> BreakerReading:
        """Whether a call to ``provider`` may go ahead now, and whether its breaker is in perfect health.

        While the breaker is open nobody calls the provider; when the cool-down ends exactly one caller
        (the one whose conditional UPDATE wins) becomes the probe, the rest keep waiting.
        """
        breaker, _ = self.get_or_create(provider=provider)
        now = timezone.now()
        if breaker.held_until is not None and now < breaker.held_until:
            # The provider said when to come back (Retry-After): nobody calls it before then, open breaker or not.
            return BreakerReading(max(0.05, (breaker.held_until - now).total_seconds()), healthy=False, held=True)
        if breaker.state == BreakerState.CLOSED:
            if breaker.pace_rate:
                return self._claim_slot(breaker, now)
            return BreakerReading(0.0, healthy=breaker.consecutive_failures == 0 and breaker.held_until is None)
        if breaker.retry_at is not None and now >= breaker.retry_at:
            lease = now + dt.timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS)
            won = self.filter(pk=provider, state=breaker.state, retry_at=breaker.retry_at).update(
                state=BreakerState.HALF_OPEN, retry_at=lease, updated_at=now
            )
            if won:
                return BreakerReading(0.0, healthy=False)
            breaker.refresh_from_db()
            if breaker.state == BreakerState.CLOSED:
                return BreakerReading(0.0, healthy=False)
        assert breaker.retry_at is not None
        return BreakerReading(max(0.2, (breaker.retry_at - now).total_seconds()), healthy=False)

    def _claim_slot(self, breaker: CircuitBreaker, now: dt.datetime) -> BreakerReading:
        """The next free slot of a paced provider, claimed by a conditional UPDATE of ``next_slot_at`` (every process
        shares the row, so together they call no faster than the pace). A slot beyond PACE_MAX_SLEEP_SECONDS is not
        claimed: the caller waits durably until the slots before it are nearly spent, and asks again."""
        assert breaker.pace_rate
        if breaker.paced_since is None or now - breaker.paced_since > dt.timedelta(
                seconds=settings.PACE_FORGET_SECONDS):
            # No 429 for a long while: the pace may be stale (a raised limit); call unpaced until the next 429.
            self.filter(pk=breaker.pk, paced_since=breaker.paced_since).update(
                pace_rate=None, next_slot_at=None, updated_at=now)
            return BreakerReading(0.0, healthy=False)
        interval = dt.timedelta(seconds=1.0 / breaker.pace_rate)
        horizon = dt.timedelta(seconds=settings.PACE_MAX_SLEEP_SECONDS)
        for _ in range(SLOT_CLAIM_TRIES):
            taken = breaker.next_slot_at
            slot = max(now, taken or now, breaker.held_until or now)
            if slot - now > horizon:
                return BreakerReading((slot - now - horizon / 2).total_seconds(), healthy=False, paced=True)
            won = self.filter(pk=breaker.pk, state=BreakerState.CLOSED, next_slot_at=taken).update(
                next_slot_at=slot + interval)
            if won:
                return BreakerReading(0.0, healthy=False, slot_in=(slot - now).total_seconds(), paced=True)
            breaker.refresh_from_db(fields=["state", "next_slot_at", "held_until", "pace_rate"])
            if breaker.state != BreakerState.CLOSED or not breaker.pace_rate:
                return BreakerReading(0.2, healthy=False)
            interval = dt.timedelta(seconds=1.0 / breaker.pace_rate)
            now = timezone.now()
        return BreakerReading(0.2, healthy=False, paced=True)

    def is_held(self, provider: str) -> bool:
        """Whether the provider's Retry-After holds calls right now (a paced caller looks again after its sleep)."""
        return self.filter(pk=provider, held_until__gt=timezone.now()).exists()

    def is_healthy(self, provider: str) -> bool:
        """Closed with no failures counted (no row yet counts too); a plain read, unlike ``read_before_call``, which
        can make its caller the probe of an open breaker."""
        unhealthy = (~Q(state=BreakerState.CLOSED) | Q(consecutive_failures__gt=0) | Q(held_until__isnull=False)
                     | Q(pace_rate__isnull=False))
        return not self.filter(unhealthy, pk=provider).exists()

    def record_hold(self, provider: str, retry_after: float, error: str, stated_rate: float | None = None,
                    rate_limited: bool = True) -> HoldRecorded:
        """The provider answered "come back in ``retry_after`` seconds" (429 or 503 with Retry-After): no call to it
        until then, from any process. Not a failure: the count that opens the breaker is left as it is (a rate limit is
        the provider working). A hold only ever lengthens; an open breaker's next probe is not before its end. A wait
        longer than RETRY_AFTER_CAP_SECONDS is capped (a broken header must not silence a provider for a day), and the
        breaker's last error says so."""
        now = timezone.now()
        cap = float(settings.RETRY_AFTER_CAP_SECONDS)
        seconds = max(0.0, retry_after)
        capped = seconds > cap
        until = now + dt.timedelta(seconds=min(seconds, cap))
        note = (f"{error} (it asked us to wait {seconds:.0f} seconds; we wait the cap, {cap:.0f})" if capped
                else f"{error} (waiting {seconds:g} seconds, as it asked)")
        self.get_or_create(provider=provider)
        self.filter(Q(held_until__isnull=True) | Q(held_until__lt=until), pk=provider).update(
            held_until=until, last_error=note[:500], updated_at=now)
        self.filter(pk=provider, retry_at__lt=until).exclude(state=BreakerState.CLOSED).update(retry_at=until)
        if rate_limited:  # a 429: pace every caller from now on (a 503's Retry-After only holds)
            self._learn_pace(provider, now=now, retry_after=seconds, stated_rate=stated_rate)
        held_until = self.filter(pk=provider).values_list("held_until", flat=True).get()
        return HoldRecorded(until=held_until or until, asked_seconds=seconds, capped=capped)

    def _learn_pace(self, provider: str, *, now: dt.datetime, retry_after: float, stated_rate: float | None) -> None:
        """A 429 says we called faster than the provider takes: pace every caller from now on. At the rate it stated
        (its ``ratelimit-*`` headers) when it did; else half the pace we had (a first 429: one call per Retry-After,
        what the answer itself promises), grown back by each success (``record_success``). The 429s of one burst
        arrive together: only the first of them within a second cuts the pace, the rest find it cut."""
        breaker = self.get(pk=provider)
        if stated_rate:
            rate = stated_rate
        elif breaker.pace_rate and breaker.paced_since and now - breaker.paced_since < dt.timedelta(seconds=1):
            rate = breaker.pace_rate
        elif breaker.pace_rate:
            rate = breaker.pace_rate * PACE_CUT
        else:
            rate = 1.0 / max(1.0, retry_after)
        self.filter(pk=provider).update(pace_rate=rate, stated_rate=stated_rate, paced_since=now)
        # No slot before the hold's end.
        self.filter(Q(next_slot_at__isnull=True) | Q(next_slot_at__lt=F("held_until")), pk=provider,
                    held_until__isnull=False).update(next_slot_at=F("held_until"))

    def record_success(self, provider: str) -> None:
        # Only write when something changes. Callers that just read a healthy breaker skip this call, so a
        # failure another process counted in between stays counted until the next success that sees it.
        # The success that closes an open (or probing) breaker ends an outage: ``recovered_at`` is its measured end.
        # A few failures that never opened it were no outage: the success only resets them.
        now = timezone.now()
        self.filter(pk=provider).exclude(state=BreakerState.CLOSED).update(
            state=BreakerState.CLOSED, consecutive_failures=0, opened_at=None, retry_at=None, recovered_at=now,
            updated_at=now,
        )
        # A hold that has run out is forgotten by the first success after it (callers read it as unhealthy till then).
        self.filter(pk=provider, held_until__lte=now).update(held_until=None)
        self.filter(pk=provider, state=BreakerState.CLOSED, consecutive_failures__gt=0).update(
            consecutive_failures=0, opened_at=None, retry_at=None, updated_at=now,
        )
        # A pace learnt without a stated rate probes upward with each success (a stated rate is the ceiling).
        self.filter(pk=provider, pace_rate__isnull=False, stated_rate__isnull=True).update(
            pace_rate=F("pace_rate") * PACE_GROWTH)

    def record_failure(self, provider: str, error: str) -> None:
        now = timezone.now()
        self.get_or_create(provider=provider)
        # The first failure of a run is the outage's measured start (kept until the next run starts).
        self.filter(pk=provider, consecutive_failures=0).update(failing_since=now, recovered_at=None)
        self.filter(pk=provider).update(
            consecutive_failures=F("consecutive_failures") + 1, last_error=error[:500], updated_at=now
        )
        retry_at = now + dt.timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS)
        # A failed probe re-opens at once; a closed breaker opens after enough failures in a row.
        self.filter(pk=provider, state=BreakerState.HALF_OPEN).update(state=BreakerState.OPEN, retry_at=retry_at)
        self.filter(
            pk=provider, state=BreakerState.CLOSED, consecutive_failures__gte=settings.BREAKER_THRESHOLD
        ).update(state=BreakerState.OPEN, opened_at=now, retry_at=retry_at)


class CircuitBreaker(models.Model):
    """Health of one third-party provider, shared by every process."""

    provider = models.CharField(primary_key=True, max_length=40)
    state = models.CharField(max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED)
    consecutive_failures = models.IntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)
    # The last outage as measured: its first failure recorded and the call (a probe or a customer's) that first
    # succeeded after it. The apology states this window (``runtime.probing``, support's incidents).
    failing_since = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    # When the probe last claimed this breaker (one probe per interval across processes), and when the recovery
    # hooks were last run for it (once per recovery).
    probed_at = models.DateTimeField(null=True, blank=True)
    recovery_handled_at = models.DateTimeField(null=True, blank=True)
    # The provider's own "not before" (Retry-After on a 429 or 503): no process calls it until then
    # (``record_hold``); the callers wait as for an open breaker, and no failure is counted.
    held_until = models.DateTimeField(null=True, blank=True)
    # Calls per second every process keeps to after a 429 (None: unpaced), the rate the provider stated in its
    # ``ratelimit-*`` headers (None: not stated; the pace is then learnt), when the last 429 set it (a pace is
    # forgotten PACE_FORGET_SECONDS later), and the first slot not yet taken (``_claim_slot``).
    pace_rate = models.FloatField(null=True, blank=True)
    stated_rate = models.FloatField(null=True, blank=True)
    paced_since = models.DateTimeField(null=True, blank=True)
    next_slot_at = models.DateTimeField(null=True, blank=True)

    objects = CircuitBreakerManager()

    def __str__(self) -> str:
        return f"{self.provider}: {self.state}"


class IntentState(models.TextChoices):
    WAITING = "waiting", "waiting for its first try"
    RETRYING = "retrying", "failed, will try again"
    DONE = "done", "done"
    GIVEN_UP = "given_up", "given up, a person was told"


class GuardedIntent(models.Model):
    """One operation that must not strand anyone, written down before any effect (``runtime.guarded``).

    Any operation can keep its intents here, told apart by ``operation``; ``key`` makes a request idempotent and names
    its workflow. ``payload`` is what the effect needs, in JSON.
    """

    operation = models.CharField(max_length=60)
    key = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=IntentState.choices, default=IntentState.WAITING)
    attempts = models.IntegerField(default=0)
    next_try_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["operation", "key"], name="one_intent_per_key")]
        indexes = [
            # The sweep's look for intents never tried (every half minute): the few still waiting.
            models.Index(fields=["operation", "created_at"], condition=models.Q(state="waiting"),
                         name="runtime_intent_waiting"),
        ]

    def __str__(self) -> str:
        return f"{self.operation}:{self.key}: {self.state}"
