"""The lifecycle: detected -> investigating -> mitigated -> resolved, validated, recorded, one live per cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backstop.incidents import lifecycle
from backstop.incidents.models import EventKind, Incident, IncidentEvent, IncidentState, OpenedBy, Severity
from backstop.incidents.tests.helpers import staff

pytestmark = pytest.mark.django_db

S = IncidentState


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    return Path(settings.INCIDENTS_STATUS_FILE)


def _incident(state: str = S.DETECTED) -> Incident:
    incident, _ = lifecycle.open_incident(title="Workspace creation is failing", capability="workspace",
                                          cause="provider:workspace", opened_by=OpenedBy.BREAKER)
    Incident.objects.filter(pk=incident.pk).update(state=state)
    return Incident.objects.get(pk=incident.pk)


@pytest.mark.parametrize(("start", "target"), [
    (S.DETECTED, S.INVESTIGATING), (S.DETECTED, S.MITIGATED), (S.DETECTED, S.RESOLVED),
    (S.INVESTIGATING, S.MITIGATED), (S.INVESTIGATING, S.RESOLVED),
    (S.MITIGATED, S.INVESTIGATING), (S.MITIGATED, S.RESOLVED),
])
def test_it_allows_the_lifecycle_forwards_and_a_relapse(start: str, target: str) -> None:
    incident = lifecycle.advance_incident(incident_id=_incident(start).pk, to_state=target)
    assert incident.state == target
    assert IncidentEvent.objects.filter(incident=incident, kind=EventKind.STATE_CHANGED,
                                        detail__to=target).count() == 1


@pytest.mark.parametrize(("start", "target"), [
    (S.INVESTIGATING, S.DETECTED), (S.MITIGATED, S.DETECTED),
    (S.RESOLVED, S.INVESTIGATING), (S.RESOLVED, S.MITIGATED), (S.RESOLVED, S.DETECTED),
])
def test_it_refuses_a_move_the_lifecycle_does_not_have(start: str, target: str) -> None:
    incident = _incident(start)
    with pytest.raises(lifecycle.TransitionRefused):
        lifecycle.advance_incident(incident_id=incident.pk, to_state=target)
    assert Incident.objects.get(pk=incident.pk).state == start
    assert not IncidentEvent.objects.filter(incident=incident, kind=EventKind.STATE_CHANGED).exists()


def test_it_stamps_mitigation_and_resolution_times() -> None:
    incident = _incident()
    mitigated = lifecycle.advance_incident(incident_id=incident.pk, to_state=S.MITIGATED)
    assert mitigated.mitigated_at is not None and mitigated.resolved_at is None
    relapsed = lifecycle.advance_incident(incident_id=incident.pk, to_state=S.INVESTIGATING)
    assert relapsed.mitigated_at is None
    resolved = lifecycle.advance_incident(incident_id=incident.pk, to_state=S.RESOLVED)
    assert resolved.resolved_at is not None and resolved.mitigated_at == resolved.resolved_at


def test_it_keeps_one_live_incident_per_cause_and_a_new_one_after_resolution() -> None:
    first = _incident()
    again, opened = lifecycle.open_incident(title="again", capability="workspace", cause="provider:workspace",
                                            opened_by=OpenedBy.BREAKER)
    assert (again.pk, opened) == (first.pk, False)
    lifecycle.advance_incident(incident_id=first.pk, to_state=S.RESOLVED)
    second, opened = lifecycle.open_incident(title="again", capability="workspace", cause="provider:workspace",
                                             opened_by=OpenedBy.BREAKER)
    assert opened and second.pk != first.pk
    assert Incident.objects.filter(cause="provider:workspace").count() == 2  # the history keeps both


def test_it_lets_staff_open_several_incidents_without_a_cause() -> None:
    person = staff()
    one, _ = lifecycle.open_incident(title="Bad deploy: sign-in slow", staff=person, severity=Severity.SEV2)
    two, _ = lifecycle.open_incident(title="Bad deploy: exports broken", staff=person)
    assert one.pk != two.pk and one.severity_set_by_staff and one.severity == Severity.SEV2
    assert IncidentEvent.objects.get(incident=one).source == f"staff:{person.email}"


def test_it_posts_an_update_once_per_click_and_moves_the_state() -> None:
    incident = _incident()
    person = staff()
    body = lifecycle.drafted_update(incident=incident, state=S.INVESTIGATING)
    assert "[" not in body and "Workspace creation" in body
    for _ in range(2):
        lifecycle.post_update(incident_id=incident.pk, body=body, state=S.INVESTIGATING, staff=person,
                              idempotency_key="click-1")
    incident.refresh_from_db()
    assert incident.state == S.INVESTIGATING
    assert incident.updates.count() == 1
    assert IncidentEvent.objects.filter(incident=incident, kind=EventKind.UPDATE_POSTED).count() == 1


def test_it_refuses_an_update_whose_state_the_lifecycle_does_not_allow() -> None:
    incident = _incident(S.RESOLVED)
    with pytest.raises(lifecycle.TransitionRefused):
        lifecycle.post_update(incident_id=incident.pk, body="back", state=S.INVESTIGATING, staff=staff(),
                              idempotency_key="click-2")
    assert not incident.updates.exists()


def test_it_lets_the_rule_raise_severity_but_not_undo_a_person() -> None:
    incident = _incident()
    lifecycle.set_severity(incident_id=incident.pk, severity=Severity.SEV2)
    assert Incident.objects.get(pk=incident.pk).severity == Severity.SEV2
    lifecycle.set_severity(incident_id=incident.pk, severity=Severity.SEV3)  # the rule never lowers it
    assert Incident.objects.get(pk=incident.pk).severity == Severity.SEV2
    lifecycle.set_severity(incident_id=incident.pk, severity=Severity.SEV3, staff=staff())
    lifecycle.set_severity(incident_id=incident.pk, severity=Severity.SEV1)  # the rule leaves a person's choice
    assert Incident.objects.get(pk=incident.pk).severity == Severity.SEV3
