"""The desk's card of an outage and its incident record are linked, whichever opens first, and link to each other."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from backstop.incidents import lifecycle
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import Incident as IncidentRecord
from backstop.support import automation, messages, triage
from backstop.support.models import Incident
from backstop.support.tests.helpers import desk_client, open_breaker, staff_account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> None:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"


def _open_desk_card() -> int:
    return automation.open_provider_incidents(triage.failing_providers())


def _staff() -> Any:
    person = staff_account()
    person.user_permissions.add(Permission.objects.get(content_type__app_label="incidents",
                                                       codename="change_incident"))
    return type(person).objects.get(pk=person.pk)


def test_it_links_the_record_to_the_desk_card_that_opened_first() -> None:
    open_breaker("workspace")
    assert _open_desk_card() == 1
    watch_breakers()
    card, record = Incident.objects.get(), IncidentRecord.objects.get()
    assert list(card.records.all()) == [record]


def test_it_links_the_desk_card_to_the_record_that_opened_first() -> None:
    open_breaker("workspace")
    watch_breakers()
    assert _open_desk_card() == 1
    card, record = Incident.objects.get(), IncidentRecord.objects.get()
    assert list(card.records.all()) == [record]
    watch_breakers()
    _open_desk_card()  # both again: still one link
    assert card.records.count() == 1


def test_it_links_nothing_of_another_cause_or_opened_by_hand() -> None:
    open_breaker("workspace")
    _open_desk_card()
    lifecycle.open_incident(title="Exports fail after the 14:00 deploy", capability="exports")
    open_breaker("email")
    watch_breakers()
    workspace_card = Incident.objects.get(cause="provider:workspace")
    assert [r.cause for r in workspace_card.records.all()] == ["provider:workspace"]
    email_record = IncidentRecord.objects.get(cause="provider:email")
    assert not Incident.objects.filter(records=email_record).exists()


def test_it_links_the_card_and_the_record_pages_to_each_other() -> None:
    open_breaker("workspace")
    _open_desk_card()
    watch_breakers()
    card, record = Incident.objects.get(), IncidentRecord.objects.get()
    desk = desk_client(_staff())
    card_page = html.unescape(desk.get(f"/desk/incidents/{card.pk}").content.decode())
    assert f'<a href="/desk/incidents/record/{record.pk}">{messages.RECORD_LINK}</a>' in card_page
    home = html.unescape(desk.get("/desk").content.decode())
    assert f'href="/desk/incidents/record/{record.pk}">{messages.RECORD_LINK}</a>' in home
    record_page = html.unescape(desk.get(f"/desk/incidents/record/{record.pk}").content.decode())
    assert f'<a href="/desk/incidents/{card.pk}">{messages.DESK_CARD_LINK.format(pk=card.pk)}</a>' in record_page


@pytest.mark.django_db(transaction=True)
def test_it_links_the_pairs_that_existed_before_the_migration() -> None:
    import datetime as dt

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    def migrate(targets: list[tuple[str, str]]) -> Any:
        executor = MigrationExecutor(connection)
        executor.migrate(targets)
        executor.loader.build_graph()
        return executor.loader.project_state(targets).apps

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = migrate([*(node for node in latest if node[0] != "support"), ("support", "0015_case_presence")])
    try:
        now = timezone.now()
        cards = old.get_model("support", "Incident").objects
        records = old.get_model("incidents", "Incident").objects
        past_card = cards.create(cause="provider:workspace", provider="workspace", state="resolved",
                                 started_at=now - dt.timedelta(days=3, hours=1), resolved_at=now - dt.timedelta(days=3))
        live_card = cards.create(cause="provider:workspace", provider="workspace", started_at=now)
        past_record = records.create(title="Workspace creation is failing", cause="provider:workspace",
                                     opened_by="breaker", state="resolved",
                                     started_at=now - dt.timedelta(days=3, hours=1),
                                     resolved_at=now - dt.timedelta(days=3, minutes=10))
        live_record = records.create(title="Workspace creation is failing", cause="provider:workspace",
                                     opened_by="breaker", started_at=now)
        records.create(title="Email is failing", cause="provider:email", opened_by="breaker", started_at=now)
    finally:
        migrate(latest)
    assert [r.pk for r in Incident.objects.get(pk=past_card.pk).records.all()] == [past_record.pk]
    assert [r.pk for r in Incident.objects.get(pk=live_card.pk).records.all()] == [live_record.pk]
    # The records that existed are found by the desk's search from the start.
    from backstop.support.search import search_incident_records

    assert {hit.record.pk for hit in search_incident_records(query="is failing")} == {
        past_record.pk, live_record.pk, IncidentRecord.objects.get(cause="provider:email").pk}
