"""A desk or contact form sent again (its answer lost while the server was down) is acted on once."""

from __future__ import annotations

import pytest
from django.test import Client

from backstop.notify.models import Message
from backstop.support.models import Case, CaseNote, Contact
from backstop.support.tests.helpers import contacts_answered, desk_client, staff_account, stalled_account


@pytest.mark.django_db
def test_it_records_a_contact_form_sent_twice_with_one_submission_key_once() -> None:
    form = {"email": "nobody@example.com", "message": "Can I buy for my team?", "submission_key": "page-key-1"}
    first = Client().post("/support/contact", form)
    again = Client().post("/support/contact", form)
    contacts_answered()
    assert first.status_code == again.status_code == 200
    contact = Contact.objects.get()
    assert contact.our_reference in again.content.decode()
    assert Message.objects.filter(kind="support_ack").count() == 1
    other = Client().post("/support/contact", {**form, "submission_key": "page-key-2"})
    assert other.status_code == 200
    assert Contact.objects.count() == 2  # another page's form is another message


@pytest.mark.django_db
def test_it_adds_an_internal_note_once_per_click_and_shows_it_to_staff_only() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    agent = desk_client(staff_account())
    for _ in range(2):
        response = agent.post(f"/desk/cases/{case.pk}/note", {"idempotency_key": "click-1",
                                                              "body": "Called him; he'll retry tonight."})
        assert response.status_code == 302
        assert response["Location"].endswith(f"/desk/cases/{case.pk}#notes")
    assert CaseNote.objects.count() == 1
    page = agent.get(f"/desk/cases/{case.pk}").content.decode()
    assert "Called him; he&#x27;ll retry tonight." in page
    assert f'data-draft="desk-note:{case.pk}"' in page and f'data-draft="desk-reply:{case.pk}"' in page
    customer = desk_client(staff_account(email="carol@example.com", is_staff=False))
    assert customer.post(f"/desk/cases/{case.pk}/note", {"idempotency_key": "x", "body": "hi"}).status_code == 403
    assert CaseNote.objects.count() == 1


@pytest.mark.django_db
def test_it_refuses_an_empty_internal_note() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    agent = desk_client(staff_account())
    agent.post(f"/desk/cases/{case.pk}/note", {"idempotency_key": "click-1", "body": "   "})
    assert not CaseNote.objects.exists()
    assert "Write something before adding the note." in agent.get(f"/desk/cases/{case.pk}").content.decode()
