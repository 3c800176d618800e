"""The desk is for staff with the support permission: anyone else gets nothing (not even a case's existence)."""

from __future__ import annotations

import pytest
from django.test import Client

from backstop.support.models import Case, Incident, SupportAction
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account


def _desk_urls(case_id: int, incident_id: int) -> list[tuple[str, str]]:
    return [
        ("get", "/desk"),
        ("get", f"/desk/cases/{case_id}"),
        ("get", f"/desk/incidents/{incident_id}"),
        ("post", f"/desk/cases/{case_id}/act"),
        ("post", f"/desk/cases/{case_id}/reply"),
    ]


def _action_form() -> dict[str, str]:
    return {"action": "close", "idempotency_key": "k1"}


@pytest.mark.django_db
def test_it_sends_an_anonymous_visitor_to_sign_in_and_shows_nothing() -> None:
    stalled_account("bob@example.com")
    case, incident = Case.objects.get(), Incident.objects.create(cause="provider:email", provider="email")
    client = Client()
    for method, url in _desk_urls(case.pk, incident.pk):
        response = getattr(client, method)(url, _action_form() if method == "post" else None)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login?next="), url
        assert "bob@example.com" not in response.content.decode()
    assert not SupportAction.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_signed_in_customer_and_staff_without_the_permission() -> None:
    stalled_account("bob@example.com")
    case, incident = Case.objects.get(), Incident.objects.create(cause="provider:email", provider="email")
    customer = staff_account(email="carol@example.com", is_staff=False)
    staff_without_permission = staff_account(email="intern@backstop.localhost", permissions=())
    viewer_only = staff_account(email="viewer@backstop.localhost", permissions=("view_case",))
    for person in (customer, staff_without_permission):
        client = desk_client(person)
        for method, url in _desk_urls(case.pk, incident.pk):
            response = getattr(client, method)(url, _action_form() if method == "post" else None)
            assert response.status_code == 403, (person.email, url)
            assert "bob@example.com" not in response.content.decode()
    viewer = desk_client(viewer_only)
    assert viewer.get(f"/desk/cases/{case.pk}").status_code == 200
    assert viewer.post(f"/desk/cases/{case.pk}/act", _action_form()).status_code == 403
    assert not SupportAction.objects.exists()
    assert Case.objects.get().is_open


@pytest.mark.django_db
def test_it_shows_staff_with_the_permission_the_desk_and_the_case() -> None:
    stalled_account("bob@example.com")
    client = desk_client(staff_account())
    desk = client.get("/desk")
    assert desk.status_code == 200
    assert "bob@example.com" in desk.content.decode()
    case = client.get(f"/desk/cases/{Case.objects.get().pk}")
    assert case.status_code == 200
    assert "could not be created after 4 attempts" in case.content.decode()
