"""Amends: one message per affected customer naming what they lost; a credit to each paying one; previewed,
once per click and per customer, audited and counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from backstop.billing.models import Credit
from backstop.incidents import amends
from backstop.incidents.detection import watch_breakers
from backstop.incidents.models import AmendsAction, EventKind, Incident, IncidentEvent
from backstop.incidents.tests.helpers import (
    break_provider,
    finish_waiting,
    make_paying,
    recover_provider,
    staff,
    waiting_customer,
)
from backstop.notify.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def status_file(settings: Any, tmp_path: Path) -> Path:
    settings.INCIDENTS_STATUS_FILE = tmp_path / "status.json"
    return Path(settings.INCIDENTS_STATUS_FILE)


def _incident_with_customers() -> tuple[Incident, list[Any]]:
    break_provider("workspace")
    customers = [waiting_customer() for _ in range(4)]
    make_paying(customers[0])
    make_paying(customers[1])
    watch_breakers()
    recover_provider("workspace")
    for customer in customers[:3]:
        finish_waiting(customer)
    watch_breakers()
    return Incident.objects.get(), customers


def test_it_previews_what_each_customer_lost_without_sending_anything() -> None:
    incident, customers = _incident_with_customers()
    preview = amends.preview_amends(incident_id=incident.pk, credit_days=14)
    assert len(preview) == 4 and sum(amend.paying for amend in preview) == 2
    by_email = {amend.customer.account.email: amend.text for amend in preview}
    assert "minutes for creating their workspace" in by_email[customers[0].email]
    assert "finished by itself" in by_email[customers[0].email]
    assert "has not finished yet" in by_email[customers[3].email]
    assert "14 days" in by_email[customers[0].email] and "days" not in by_email[customers[2].email].split("minutes")[1]
    assert not Message.objects.filter(kind="incident_amends").exists() and not Credit.objects.exists()


def test_it_tells_and_credits_each_customer_once_however_often_it_is_clicked() -> None:
    incident, customers = _incident_with_customers()
    desk = Client()
    person = staff()
    desk.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    page = desk.get(f"/desk/incidents/record/{incident.pk}/amends?credit_days=14").content.decode()
    assert "4 customers get one message each; 2 paying customers get 14 days" in page
    key = page.split('name="idempotency_key" value="')[1].split('"')[0]
    for _ in range(2):  # a double click
        desk.post(f"/desk/incidents/record/{incident.pk}/amends", {"credit_days": "14", "idempotency_key": key})
    assert AmendsAction.objects.count() == 1
    assert not Message.objects.filter(kind="incident_amends").exists()  # the click only wrote the intent down
    assert "Amends are being sent" in desk.get(f"/desk/incidents/record/{incident.pk}/amends").content.decode()
    amends.carry_out_amends(action_id=AmendsAction.objects.get().pk)  # the workflow's work
    amends.carry_out_amends(action_id=AmendsAction.objects.get().pk)  # ... replayed: nothing more
    # ... and a second, separate click later: nobody is told or credited twice.
    desk.post(f"/desk/incidents/record/{incident.pk}/amends", {"credit_days": "14", "idempotency_key": "another"})
    amends.carry_out_amends(action_id=AmendsAction.objects.get(idempotency_key="another").pk)
    sent = Message.objects.filter(kind="incident_amends")
    assert sorted(sent.values_list("to", flat=True)) == sorted(c.email for c in customers)
    assert Credit.objects.count() == 2 and all(credit.days == 14 for credit in Credit.objects.all())
    first, second = AmendsAction.objects.order_by("pk")
    assert (first.messages_sent, first.credits_granted, first.staff_id) == (4, 2, person.pk)
    assert (second.messages_sent, second.credits_granted, second.already_done) == (0, 0, 4)
    assert amends.amends_counts(incident) == {"messages": 4, "credits": 2, "actions": 2}
    assert [e.source for e in IncidentEvent.objects.filter(incident=incident, kind=EventKind.AMENDS_SENT)] == [
        f"staff:{person.email}"] * 2  # on the timeline, each click with who made it
    assert "4 messages sent, 2 credits granted" in desk.get(f"/desk/incidents/record/{incident.pk}").content.decode()


def test_it_leaves_an_unfinished_click_to_the_sweep() -> None:
    incident, _ = _incident_with_customers()
    action = amends.request_amends(incident_id=incident.pk, credit_days=0, staff=staff(), idempotency_key="k")
    assert amends.unfinished_amends(grace_seconds=0) == [(action.pk, "k")]
    amends.carry_out_amends(action_id=action.pk)
    assert amends.unfinished_amends(grace_seconds=0) == []
