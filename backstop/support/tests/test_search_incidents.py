"""The desk's search box finds past and live incidents by their title, updates and post-mortem, and links to them."""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase
from django.utils import timezone

from backstop.incidents import lifecycle
from backstop.incidents.models import Incident as IncidentRecord
from backstop.incidents.models import IncidentState, PostMortem
from backstop.support import messages
from backstop.support.search import search_cases, search_incident_records
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> None:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"


def _record(title: str, *, capability: str = "workspace", days_ago: float = 0, resolved: bool = True,
            postmortem: str = "", update: str = "") -> IncidentRecord:
    started = timezone.now() - dt.timedelta(days=days_ago)
    # The search entry is written after each commit, as in production.
    with TestCase.captureOnCommitCallbacks(execute=True):
        record, _ = lifecycle.open_incident(title=title, capability=capability, started_at=started)
    if update:
        with TestCase.captureOnCommitCallbacks(execute=True):
            lifecycle.post_update(incident_id=record.pk, body=update, state=IncidentState.INVESTIGATING, staff=None,
                                  idempotency_key=f"u-{record.pk}")
    if resolved:
        lifecycle.advance_incident(incident_id=record.pk, to_state=IncidentState.RESOLVED)
    if postmortem:
        with TestCase.captureOnCommitCallbacks(execute=True):
            PostMortem.objects.create(incident=record, markdown=postmortem,
                                      review_due_at=started + dt.timedelta(days=30))
    return IncidentRecord.objects.get(pk=record.pk)


def _titles(query: str) -> list[str]:
    return [hit.record.title for hit in search_incident_records(query=query)]


POSTMORTEM = ("## Summary\nWorkspace creation failed for 41 minutes.\n\n## Root cause and trigger\n"
              "The provider's DNS resolver pointed at a retired region after their maintenance window.\n")


def test_it_finds_past_incidents_by_their_post_mortem_title_and_updates() -> None:
    _record("Workspace creation is failing", days_ago=40, postmortem=POSTMORTEM)
    _record("Email delivery is failing", capability="email", days_ago=3,
            update="Our email provider rejects our messages; we are switching to the backup route.")
    assert _titles("dns resolver") == ["Workspace creation is failing"]  # every word, from the post-mortem
    assert _titles("RETIRED region") == ["Workspace creation is failing"]  # case-folded
    assert _titles("backup route") == ["Email delivery is failing"]  # an update customers were told
    assert _titles("is failing") == ["Email delivery is failing", "Workspace creation is failing"]  # newest first
    assert _titles("dns backup") == []
    hit = search_incident_records(query="resolver")[0]
    assert hit.has_postmortem and "DNS resolver pointed at a retired region" in hit.matched
    assert hit.state == "Resolved"


def test_it_lists_a_live_incident_before_past_ones() -> None:
    _record("Payments are failing", capability="payments", days_ago=1)
    _record("Payments are slow", capability="payments", days_ago=5, resolved=False)
    assert _titles("payments") == ["Payments are slow", "Payments are failing"]


def test_it_shows_incidents_beside_cases_to_staff_who_may_open_them() -> None:
    stalled_account("resolver.fan@example.com")
    record = _record("Workspace creation is failing", days_ago=40, postmortem=POSTMORTEM)
    agent = staff_account()
    plain = html.unescape(desk_client(agent).get("/desk/search", {"q": "resolver", "partial": "1"}).content.decode())
    assert "resolver.fan@example.com" in plain and f'data-incident-record="{record.pk}"' not in plain
    agent.user_permissions.add(Permission.objects.get(content_type__app_label="incidents", codename="change_incident"))
    page = html.unescape(desk_client(type(agent).objects.get(pk=agent.pk)).get(
        "/desk/search", {"q": "resolver"}).content.decode())
    assert "resolver.fan@example.com" in page
    assert f'<a href="/desk/incidents/record/{record.pk}"><strong>Workspace creation is failing</strong></a>' in page
    assert (f'<a class="search-postmortem" href="/desk/incidents/record/{record.pk}/postmortem">'
            f'{messages.SEARCH_POSTMORTEM}</a>') in page
    assert "DNS resolver pointed at a retired region" in page


def test_it_says_nothing_matched_only_when_neither_cases_nor_incidents_did() -> None:
    _record("Workspace creation is failing", postmortem=POSTMORTEM)
    answer = search_cases(query="retired region", with_incidents=True)
    assert answer.hits == [] and [hit.record.title for hit in answer.incidents] == ["Workspace creation is failing"]
    assert answer.note == ""
    assert search_cases(query="retired region").incidents == []  # not asked: staff who may not open them
    nothing = search_cases(query="nothing like it", with_incidents=True)
    assert nothing.note == messages.SEARCH_NOTHING.format(query="nothing like it")


def test_it_finds_a_post_mortem_by_what_it_says_after_an_edit() -> None:
    from backstop.incidents.followup import save_postmortem

    record = _record("Workspace creation is failing", postmortem=POSTMORTEM)
    assert _titles("certificate") == []
    with TestCase.captureOnCommitCallbacks(execute=True):
        save_postmortem(incident_id=record.pk, markdown=POSTMORTEM + "\nThe provider's certificate had expired too.",
                        staff=None)
    assert _titles("certificate expired") == ["Workspace creation is failing"]
