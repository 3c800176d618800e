"""The desk says so when no process is running workflows: the support cycle, which reports every other outage,
runs in those processes and cannot report its own absence."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from backstop.runtime.models import Executor
from backstop.support.tests.helpers import desk_client, staff_account


@pytest.mark.django_db
def test_it_shows_a_card_on_the_desk_once_no_workflow_runner_has_reported_in_lately() -> None:
    now = timezone.now()
    Executor.objects.create(id="web-1-workflows", role="worker", hostname="host-a", pid=4242, started_at=now,
                            last_seen_at=now)
    client = desk_client(staff_account())

    assert 'id="runner-warning"' not in client.get("/desk").content.decode()

    silent_since = now - dt.timedelta(hours=1)
    Executor.objects.update(last_seen_at=silent_since)  # every runner, this test process's own included
    page = client.get("/desk").content.decode()

    assert 'id="runner-warning"' in page
    assert f"No workflow runner has reported in since {silent_since:%Y-%m-%d %H:%M} UTC" in page
    assert "start &quot;backstop worker&quot;" in page
