"""Readiness: can this deployment do its work right now? Each check names what failed, in words an operator acts on.

Liveness (/healthz) asks nothing of the database: a process that answers is alive, and restarting it would not bring a
database back. Readiness (/readyz) asks the three things that strand customers when they fail: the database answers,
some process runs workflows (its heartbeat is recent), and the queues are not falling behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backstop.monitoring import messages
from backstop.runtime import observe
from backstop.runtime.models import Executor


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    figures: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        answer: dict[str, object] = {"ok": self.ok, **self.figures}
        if self.detail:
            answer["detail"] = self.detail
        return answer


@dataclass(frozen=True)
class Readiness:
    checks: list[CheckResult]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]


def check_readiness() -> Readiness:
    database = _check_database()
    if not database.ok:  # the other two read the database: their failures would only repeat this one
        return Readiness([database])
    return Readiness([database, _check_heartbeat(), _check_queue_lag()])


def _check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure to answer is the answer
        return CheckResult("database", ok=False, detail=messages.DATABASE_UNREACHABLE.format(error=_short(error)))
    return CheckResult("database", ok=True)


def _check_heartbeat() -> CheckResult:
    last = Executor.objects.last_heartbeat()
    limit = settings.EXECUTOR_DEAD_AFTER_SECONDS
    if last is None:
        return CheckResult("workers", ok=False, detail=messages.NEVER_HEARTBEAT)
    age = max(0.0, (timezone.now() - last).total_seconds())
    figures = {"last_heartbeat_seconds_ago": round(age, 1), "dead_after_seconds": limit}
    if age > limit:
        return CheckResult("workers", ok=False, detail=messages.NO_HEARTBEAT.format(seconds=age, limit=limit),
                           figures=figures)
    return CheckResult("workers", ok=True, figures=figures)


def _check_queue_lag() -> CheckResult:
    limit = settings.READY_MAX_QUEUE_LAG_SECONDS
    try:
        readings = observe.queue_readings()
    except Exception as error:
        return CheckResult("queues", ok=False, detail=messages.ENGINE_TABLES_UNREADABLE.format(error=_short(error)))
    worst = max(readings, key=lambda reading: reading.oldest_wait_seconds, default=None)
    lag = worst.oldest_wait_seconds if worst else 0.0
    figures = {"oldest_wait_seconds": round(lag, 1), "max_wait_seconds": limit}
    if limit and worst is not None and lag > limit:
        return CheckResult("queues", ok=False, figures=figures, detail=messages.QUEUE_LAGGING.format(
            queue=worst.queue, waiting=worst.waiting, seconds=lag, limit=limit))
    return CheckResult("queues", ok=True, figures=figures)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]
