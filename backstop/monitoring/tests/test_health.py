"""/healthz answers without the database; /readyz says whether the deployment can do its work, and names what fails."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

import pytest
from dbos import DBOSClient
from django.test import Client

from backstop.runtime import engine
from backstop.runtime.models import Executor
from conftest import wait_for

IDLE_QUEUE = "monitoring-test-idle"  # no engine polls it: whatever waits there waits for ever


def test_it_answers_healthz_without_touching_the_database() -> None:
    # No database fixture: pytest-django refuses any query, so a liveness check that read the database would fail here.
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert "no-store" in response["Cache-Control"]


def test_it_answers_healthz_to_a_probe_asking_by_the_machines_address() -> None:
    # The site allows only its own names; a probe asking by address must still hear that the process is alive.
    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8001")

    assert response.status_code == 200
    assert Client().get("/readyz", HTTP_HOST="10.1.2.3:8001").status_code == 400  # readiness is the site's own


@pytest.fixture
def beating_engine(engine_db: str) -> str:
    """The test process's engine, its heartbeat written now: the flush before this test took its row, and its next
    beat may be seconds away."""
    Executor.objects.beat(engine_db, role="test", pid=os.getpid(), hostname=socket.gethostname())
    return engine_db


def test_it_is_ready_while_a_worker_beats_and_nothing_waits_long(beating_engine: str) -> None:
    response = Client().get("/readyz")

    assert response.status_code == 200, response.content

    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "workers": True, "queues": True}


@pytest.mark.usefixtures("beating_engine")
def test_it_is_not_ready_when_the_oldest_queued_workflow_waits_too_long(settings: Any) -> None:
    settings.READY_MAX_QUEUE_LAG_SECONDS = 0.5
    # A client of its own, closed at once: a connection left open would keep the test database from being dropped.
    client = DBOSClient(system_database_url=settings.DBOS_SYSTEM_DATABASE_URL, application_name="backstop")
    try:
        client.enqueue({"workflow_name": "never_picked_up", "queue_name": IDLE_QUEUE,
                        "workflow_id": f"idle-{uuid.uuid4().hex}", "app_version": engine.APPLICATION_VERSION})
    finally:
        client.destroy()

    response = wait_for(lambda: (answer := Client().get("/readyz")).status_code == 503 and answer, timeout=10,
                        message="/readyz stayed ready with a workflow waiting past the threshold")

    body = response.json()
    assert body["failed"] == ["queues"]
    assert IDLE_QUEUE in body["checks"]["queues"]["detail"]
    assert body["checks"]["queues"]["oldest_wait_seconds"] >= 0.5
