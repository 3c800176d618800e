"""An incident follows its provider's breaker: opened, counted, graded, mitigated, resolved; its timeline recorded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from backstop.incidents import chart, timeline
from backstop.incidents.deploys import record_deploy, record_serve_start
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import (
    AffectedCustomer,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentState,
    OpenedBy,
    Severity,
)
from backstop.incidents.tests.helpers import break_provider, finish_waiting, recover_provider, waiting_customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    settings.INCIDENT_SEV1_CUSTOMERS = 10
    settings.INCIDENT_SEV2_CUSTOMERS = 3
    settings.INCIDENT_RESOLVE_AFTER_SECONDS = 60
    return Path(settings.INCIDENTS_STATUS_FILE)


def test_it_opens_one_incident_when_a_breaker_opens_from_the_measured_start(
        django_capture_on_commit_callbacks: Any, status_file: Path) -> None:
    breaker = break_provider("workspace")
    with django_capture_on_commit_callbacks(execute=True):
        watch_breakers()
        watch_breakers()
    incident = Incident.objects.get()
    assert (incident.opened_by, incident.state, incident.capability) == (OpenedBy.BREAKER, IncidentState.DETECTED,
                                                                         "workspace")
    assert incident.started_at == breaker.failing_since
    kinds = dict(IncidentEvent.objects.filter(incident=incident).values_list("kind", "at"))
    assert kinds == {EventKind.FIRST_FAILURE: breaker.failing_since, EventKind.BREAKER_OPENED: breaker.opened_at}
    status = json.loads(status_file.read_text())
    assert not status["ok"] and status["affected_capabilities"] == ["Workspace creation"]


def test_it_counts_the_customers_hurt_and_raises_severity_by_the_rule() -> None:
    break_provider("workspace")
    customers = [waiting_customer() for _ in range(2)]
    waiting_customer(step="welcome_email")  # another provider's step: not this incident's customer
    watch_breakers()
    incident = Incident.objects.get()
    assert incident.customers_affected == 2
    assert incident.severity == Severity.SEV2  # a customer waiting for a workspace is locked out
    customers += [waiting_customer() for _ in range(8)]
    watch_breakers()
    incident.refresh_from_db()
    assert (incident.customers_affected, incident.severity) == (10, Severity.SEV1)
    assert set(AffectedCustomer.objects.filter(incident=incident).values_list("lost", flat=True)) == {"workspace"}
    for customer in customers[:4]:
        finish_waiting(customer)
    watch_breakers()
    incident.refresh_from_db()
    assert incident.customers_affected == 10  # the peak is kept
    assert AffectedCustomer.objects.filter(incident=incident, recovered_at__isnull=True).count() == 6
    assert [count for _, count in timeline.affected_series(incident)] == [2, 10, 6]


def test_it_mitigates_on_recovery_and_resolves_once_calm_and_nobody_waits(
        django_capture_on_commit_callbacks: Any, status_file: Path) -> None:
    break_provider("workspace")
    customer = waiting_customer()
    watch_breakers()
    recover_provider("workspace", seconds_ago=120)
    watch_breakers()
    incident = Incident.objects.get()
    assert incident.state == IncidentState.MITIGATED
    assert IncidentEvent.objects.filter(incident=incident, kind=EventKind.FIRST_RECOVERY).count() == 1
    watch_breakers()
    assert Incident.objects.get().state == IncidentState.MITIGATED  # a customer still waits on it
    finish_waiting(customer)
    with django_capture_on_commit_callbacks(execute=True):
        watch_breakers()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED and incident.resolved_at is not None
    status = json.loads(status_file.read_text())
    assert status["ok"] and [past["id"] for past in status["past"]] == [incident.pk]
    assert any(incident.pk in day["incidents"] for day in status["days"])


def test_it_goes_back_to_investigating_when_the_provider_fails_again_before_resolution() -> None:
    break_provider("workspace")
    watch_breakers()
    recover_provider("workspace")
    watch_breakers()
    break_provider("workspace", minutes_ago=0)
    watch_breakers()
    assert list(Incident.objects.values_list("state", flat=True)) == [IncidentState.INVESTIGATING]


def test_it_builds_the_timeline_from_what_was_recorded_with_a_deploy_and_a_chart() -> None:
    record_deploy(migrations=["workspaces.0009_quota"])
    # The deploy went out ten minutes before the provider began failing: the suspect, first on the timeline.
    IncidentEvent.objects.filter(kind=EventKind.DEPLOY).update(at=timezone.now() - dt.timedelta(minutes=10))
    break_provider("workspace", minutes_ago=1)
    waiting_customer()
    watch_breakers()
    recover_provider("workspace")
    watch_breakers()
    incident = Incident.objects.get()
    entries = timeline.build_timeline(incident)
    kinds = [entry.kind for entry in entries]
    assert kinds[0] == EventKind.DEPLOY and "workspaces.0009_quota" in entries[0].text
    for kind in (EventKind.FIRST_FAILURE, EventKind.BREAKER_OPENED, EventKind.FIRST_RECOVERY,
                 EventKind.BREAKER_CLOSED, EventKind.STATE_CHANGED, "customers_affected"):
        assert kind in kinds
    assert [entry.at for entry in entries] == sorted(entry.at for entry in entries)
    assert all(entry.source for entry in entries)
    start, end = timeline.incident_window(incident)
    svg = chart.affected_chart(timeline.affected_series(incident), start=start, end=end + dt.timedelta(seconds=1))
    assert svg.startswith("<svg") and "peak 1" in svg and "<polyline" in svg


def test_it_records_a_deploy_at_serve_start_up_naming_the_migrations_applied_since_the_last() -> None:
    record_serve_start()
    MigrationRecorder(connection).migration_qs.create(app="incidents", name="9999_pretend", applied=timezone.now())
    record_serve_start()
    deploys = list(IncidentEvent.objects.filter(kind=EventKind.DEPLOY).order_by("at"))
    assert len(deploys) == 2
    assert deploys[1].detail["migrations"] == ["incidents.9999_pretend"]


def test_it_opens_an_incident_when_enough_customers_fail_before_the_breaker_opens(settings: Any) -> None:
    settings.INCIDENT_OPEN_AT_CUSTOMERS = 3
    from backstop.runtime.models import CircuitBreaker

    CircuitBreaker.objects.create(provider="workspace", consecutive_failures=2, last_error="timeout",
                                  failing_since=timezone.now() - dt.timedelta(minutes=2))
    waiting_customer()
    waiting_customer()
    watch_breakers()
    assert not Incident.objects.exists()  # two customers: not yet an incident
    waiting_customer()
    watch_breakers()
    incident = Incident.objects.get()
    assert (incident.opened_by, incident.customers_affected) == (OpenedBy.FAILURES, 3)
    CircuitBreaker.objects.record_success("workspace")  # a call succeeds: the count of failures resets
    watch_breakers()
    incident.refresh_from_db()
    assert incident.state == IncidentState.MITIGATED
    assert IncidentEvent.objects.filter(incident=incident, kind=EventKind.FIRST_RECOVERY).count() == 1
    assert not IncidentEvent.objects.filter(incident=incident, kind=EventKind.BREAKER_CLOSED).exists()


def test_it_puts_the_breaker_opening_on_the_timeline_of_an_incident_its_failures_opened_first(settings: Any) -> None:
    settings.INCIDENT_OPEN_AT_CUSTOMERS = 1
    from backstop.runtime.models import CircuitBreaker

    CircuitBreaker.objects.create(provider="workspace", consecutive_failures=1, last_error="timeout",
                                  failing_since=timezone.now() - dt.timedelta(minutes=2))
    waiting_customer()
    watch_breakers()
    incident = Incident.objects.get()
    breaker = break_provider("workspace", minutes_ago=1)
    watch_breakers()
    watch_breakers()
    assert list(IncidentEvent.objects.filter(incident=incident, kind=EventKind.BREAKER_OPENED)
                .values_list("at", flat=True)) == [breaker.opened_at]
    assert Incident.objects.count() == 1
