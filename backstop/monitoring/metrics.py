"""Prometheus metrics: what every process shares is read from the database at scrape time; only what a process alone
knows (its requests, its own CPU and memory) is counted in its memory.

So any one web process answers the deployment's workflow, queue, breaker, attention and reconciliation figures, and
several web processes behind one scrape target give the same numbers; the request counters are per process (scrape
each process, or sum them: see docs/decisions.md, "Running it").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backstop.accounts.models import SetupStep
from backstop.attention.models import AttentionRecord, Harm
from backstop.billing.models import PurchaseAttempt, ReconciliationWatermark
from backstop.notify.models import Message
from backstop.runtime import observe, registry
from backstop.runtime.models import BreakerState, CircuitBreaker, GuardedIntent

log = logging.getLogger(__name__)

# auto_describe off: describing a collector would run its queries at start-up, before any database is there.
REGISTRY = CollectorRegistry(auto_describe=False)
REQUESTS = Counter("backstop_http_requests", "HTTP requests this process answered, by route and status.",
                   ["method", "route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram("backstop_http_request_duration_seconds", "Time this process took to answer, by route.",
                            ["method", "route"], registry=REGISTRY,
                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
_registered: list[Collector] = []


@dataclass(frozen=True)
class RetriedOperation:
    """A kind of work that is tried again when it fails: its rows, grouped by a label, each counting its tries.

    ``tries`` names the field counting calls made; retries are the tries beyond each row's first.
    """

    operation: str
    rows: Callable[[], QuerySet[Any]]
    group_by: str  # the field whose value becomes the ``kind`` label ("" for one group)
    tries: str


# Every operation that retries: a new one is one entry here (a test checks each entry reads).
RETRIED_OPERATIONS: list[RetriedOperation] = [
    RetriedOperation("setup", lambda: SetupStep.objects.all(), group_by="name", tries="attempts"),
    RetriedOperation("delivery", lambda: Message.objects.all(), group_by="channel", tries="attempts"),
    RetriedOperation("charge", lambda: PurchaseAttempt.objects.all(), group_by="", tries="charge_calls"),
    RetriedOperation("guarded", lambda: GuardedIntent.objects.all(), group_by="operation", tries="attempts"),
]


def retries_by_operation() -> list[tuple[str, str, int, int]]:
    """(operation, kind, rows, retries) for every retried operation."""
    found = []
    for spec in RETRIED_OPERATIONS:
        retried = Q(**{f"{spec.tries}__gt": 1})
        aggregates = {"rows": Count("pk"), "retries": Sum(F(spec.tries) - 1, filter=retried)}
        grouped = spec.rows().values(spec.group_by) if spec.group_by else spec.rows().values()
        if spec.group_by:
            for row in grouped.annotate(**aggregates).order_by(spec.group_by):
                found.append((spec.operation, str(row[spec.group_by]), int(row["rows"]), int(row["retries"] or 0)))
        else:
            totals = spec.rows().aggregate(**aggregates)
            found.append((spec.operation, "", int(totals["rows"] or 0), int(totals["retries"] or 0)))
    return found


FINISHED_STATUSES = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


class DatabaseCollector(Collector):
    """Figures every process shares, read when scraped. A part that cannot be read is left out of this scrape (and
    logged), so one slow table does not blank the rest; ``backstop_scrape_errors`` says which part."""

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("backstop_scrape_errors", "Parts of this scrape that could not be read (1).",
                                   labels=["part"])
        for part, read in (("workflows", self._workflows), ("queues", self._queues), ("retries", self._retries),
                           ("breakers", self._breakers), ("attention", self._attention),
                           ("reconcile", self._reconcile)):
            try:
                yield from read()
            except Exception:
                log.exception("metrics: could not read %s", part)
                errors.add_metric([part], 1)
        yield errors

    def _workflows(self) -> Iterator[Metric]:
        starts = CounterMetricFamily("backstop_workflow_starts", "Workflows started, by workflow.", labels=["workflow"])
        finishes = CounterMetricFamily("backstop_workflow_finishes", "Workflows ended, by workflow and outcome.",
                                       labels=["workflow", "outcome"])
        recoveries = CounterMetricFamily("backstop_workflow_recoveries",
                                         "Times a workflow was started again after its process died, by workflow.",
                                         labels=["workflow"])
        live = GaugeMetricFamily("backstop_workflows_live", "Workflows not ended, by workflow and status.",
                                 labels=["workflow", "status"])
        started: dict[str, int] = {}
        restarted: dict[str, int] = {}
        for count in observe.workflow_counts():
            started[count.name] = started.get(count.name, 0) + count.count
            restarted[count.name] = restarted.get(count.name, 0) + count.recoveries
            if count.status in FINISHED_STATUSES:
                finishes.add_metric([count.name, count.status.lower()], count.count)
            else:
                live.add_metric([count.name, count.status.lower()], count.count)
        for name, total in sorted(started.items()):
            starts.add_metric([name], total)
            recoveries.add_metric([name], restarted[name])
        yield from (starts, finishes, recoveries, live)

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("backstop_queue_depth", "Workflows waiting in a queue, not yet picked up.",
                                  labels=["queue"])
        running = GaugeMetricFamily("backstop_queue_running", "Workflows of a queue picked up and not ended.",
                                    labels=["queue"])
        lag = GaugeMetricFamily("backstop_queue_lag_seconds", "How long the oldest waiting workflow has waited.",
                                labels=["queue"])
        readings = {reading.queue: reading for reading in observe.queue_readings()}
        for name in sorted({spec.name for spec in registry.queues()} | set(readings)):
            reading = readings.get(name) or observe.QueueReading(name, 0, 0, 0.0)
            depth.add_metric([name], reading.waiting)
            running.add_metric([name], reading.running)
            lag.add_metric([name], reading.oldest_wait_seconds)
        yield from (depth, running, lag)

    def _retries(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily("backstop_operation_rows", "Rows of each retried operation.",
                                 labels=["operation", "kind"])
        retries = CounterMetricFamily("backstop_operation_retries",
                                      "Tries beyond the first, over every row of each retried operation.",
                                      labels=["operation", "kind"])
        for operation, kind, count, retried in retries_by_operation():
            rows.add_metric([operation, kind], count)
            retries.add_metric([operation, kind], retried)
        yield from (rows, retries)

    def _breakers(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("backstop_breaker_state",
                                  "1 for the state each provider's circuit breaker is in (closed, open, half_open).",
                                  labels=["provider", "state"])
        failures = GaugeMetricFamily("backstop_breaker_consecutive_failures", "Failures in a row, by provider.",
                                     labels=["provider"])
        breakers = {breaker.provider: breaker for breaker in CircuitBreaker.objects.all()}
        for provider in sorted(set(breakers) | set(registry.probes())):
            breaker = breakers.get(provider)
            current = breaker.state if breaker else BreakerState.CLOSED
            for choice in BreakerState.values:
                state.add_metric([provider, choice], 1 if choice == current else 0)
            failures.add_metric([provider], breaker.consecutive_failures if breaker else 0)
        yield from (state, failures)

    def _attention(self) -> Iterator[Metric]:
        open_records = GaugeMetricFamily("backstop_attention_open",
                                         "Open attention records (a person may need to look), by harm.",
                                         labels=["harm"])
        counts = dict(AttentionRecord.objects.filter(resolved_at__isnull=True).values_list("harm")
                      .annotate(open=Count("pk")).values_list("harm", "open"))
        for harm in Harm:
            open_records.add_metric([harm.name.lower()], counts.get(harm.value, 0))
        oldest = AttentionRecord.objects.filter(resolved_at__isnull=True).order_by("created_at").first()
        age = GaugeMetricFamily("backstop_attention_oldest_open_seconds", "Age of the oldest open attention record.")
        age.add_metric([], max(0.0, time.time() - oldest.created_at.timestamp()) if oldest else 0.0)
        yield from (open_records, age)

    def _reconcile(self) -> Iterator[Metric]:
        # Here, not at the top: every process loads this module at start-up, and reconciliation's module is large.
        from backstop.billing.reconcile import WATERMARK as RECONCILE_WATERMARK

        last = ReconciliationWatermark.objects.filter(name=RECONCILE_WATERMARK).first()
        ran = GaugeMetricFamily("backstop_reconcile_last_run_timestamp_seconds",
                                "When reconciliation last finished a run (Unix time; 0: never).")
        ran.add_metric([], last.last_run_at.timestamp() if last and last.last_run_at else 0.0)
        found = GaugeMetricFamily("backstop_reconcile_last_run", "What reconciliation's last run found, by outcome.",
                                  labels=["outcome"])
        summary = last.last_summary if last else {}
        for outcome, value in sorted(summary.items()):
            if isinstance(value, int | float) and not isinstance(value, bool) and outcome != "seconds":
                found.add_metric([outcome], value)
        took = GaugeMetricFamily("backstop_reconcile_last_run_seconds", "How long reconciliation's last run took.")
        took.add_metric([], float(summary.get("seconds", 0.0)))
        yield from (ran, found, took)


def register_collectors() -> None:
    """Once per process (AppConfig.ready may run twice in tests)."""
    if _registered:
        return
    for collector in (DatabaseCollector(), ProcessCollector(registry=None)):
        REGISTRY.register(collector)
        _registered.append(collector)


def render_metrics() -> bytes:
    return generate_latest(REGISTRY)


def count_request(*, method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    REQUEST_SECONDS.labels(method=method, route=route).observe(seconds)
