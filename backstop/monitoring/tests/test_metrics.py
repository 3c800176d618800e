"""/metrics: staff or the token only; the deployment's figures read from the database when scraped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from dbos import DBOS
from django.core.checks import Error, Warning
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from backstop.billing.models import ReconciliationWatermark
from backstop.billing.reconcile import WATERMARK
from backstop.monitoring.checks import check_metrics_token
from backstop.monitoring.metrics import RETRIED_OPERATIONS
from backstop.runtime import registry
from backstop.support.tests.helpers import open_breaker, staff_account, stalled_account

TOKEN = "metrics-token-" + "x" * 30


@DBOS.workflow()
def counted_workflow(value: int) -> int:
    return value + 1


def scrape(client: Client, *, token: str = "") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_it_refuses_metrics_to_visitors_customers_and_a_wrong_token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    customer = staff_account(email="customer@example.com", is_staff=False)
    signed_in = Client()
    signed_in.force_login(customer, backend="django.contrib.auth.backends.ModelBackend")

    answers = [Client().get("/metrics"), signed_in.get("/metrics"),
               Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x"),
               Client().get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")]

    for response in answers:
        assert response.status_code == 403
        assert set(response.json()) == {"code", "message"}
        assert "backstop_" not in response.content.decode()


@pytest.mark.django_db
def test_it_refuses_every_token_when_none_is_set(settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_it_reads_the_deployments_figures_for_staff_and_the_token(engine_db: str, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    staff = Client()
    staff.force_login(staff_account(), backend="django.contrib.auth.backends.ModelBackend")
    before = scrape(staff)
    stalled_account("stalled@example.com")  # a setup step tried 4 times, a locked-out attention record
    open_breaker("workspace")
    ReconciliationWatermark.objects.advance(WATERMARK, until=timezone.now() - dt.timedelta(minutes=1), summary={
        "mode": "scheduled", "payments_seen": 12, "payments_unmatched": 1, "seconds": 0.4, "problems": []})
    assert DBOS.start_workflow(counted_workflow, 1).get_result() == 2

    after = scrape(Client(), token=TOKEN)

    name = counted_workflow.__qualname__
    assert value(after, "backstop_workflow_starts_total", workflow=name) == value(
        before, "backstop_workflow_starts_total", workflow=name) + 1
    assert value(after, "backstop_workflow_finishes_total", workflow=name, outcome="success") == value(
        before, "backstop_workflow_finishes_total", workflow=name, outcome="success") + 1
    assert value(after, "backstop_operation_retries_total", operation="setup", kind="workspace") == 3
    assert value(after, "backstop_breaker_state", provider="workspace", state="open") == 1
    assert value(after, "backstop_breaker_state", provider="workspace", state="closed") == 0
    assert value(after, "backstop_breaker_state", provider="email", state="closed") == 1
    assert value(after, "backstop_attention_open", harm="locked_out") == 1
    assert value(after, "backstop_attention_open", harm="money") == 0
    assert value(after, "backstop_reconcile_last_run", outcome="payments_seen") == 12
    assert value(after, "backstop_reconcile_last_run", outcome="payments_unmatched") == 1
    assert value(after, "backstop_reconcile_last_run_timestamp_seconds") > 0
    queues = {spec.name for spec in registry.queues()}
    assert queues and queues <= {dict(labels)["queue"] for metric, labels in after if metric == "backstop_queue_depth"}
    assert value(after, "backstop_http_requests_total", method="GET", route="/metrics", status="200") >= 1
    assert value(after, "backstop_scrape_errors", part="workflows") == 0


@pytest.mark.django_db
def test_it_reads_every_retried_operation() -> None:
    for spec in RETRIED_OPERATIONS:
        model = spec.rows().model
        model._meta.get_field(spec.tries)
        if spec.group_by:
            model._meta.get_field(spec.group_by)
    assert len({spec.operation for spec in RETRIED_OPERATIONS}) == len(RETRIED_OPERATIONS)


def test_it_refuses_a_short_metrics_token_and_warns_of_none_in_production(settings: Any) -> None:
    settings.METRICS_TOKEN = "short"
    assert [(type(problem), problem.id) for problem in check_metrics_token()] == [(Error, "monitoring.E001")]
    settings.METRICS_TOKEN, settings.MODE = "", "production"
    assert [(type(problem), problem.id) for problem in check_metrics_token()] == [(Warning, "monitoring.W001")]
    settings.METRICS_TOKEN = TOKEN
    assert check_metrics_token() == []
