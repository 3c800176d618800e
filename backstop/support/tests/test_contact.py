"""Contact, answered truthfully at once: look the customer up, fix what automation can, say what we see."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client

from backstop.accounts.models import Account, AccountState, StepStatus
from backstop.attention.models import Harm
from backstop.demo.models import FaultSetting
from backstop.notify.models import Message
from backstop.support import automation, messages
from backstop.support.models import (
    Case,
    CaseState,
    Contact,
    Finding,
    Resolution,
    Signal,
    SignalKind,
    SupportAction,
)
from backstop.support.tests.helpers import contacts_answered, new_account, open_breaker, stalled_account, steps_of
from conftest import setup_finished

pytestmark = pytest.mark.usefixtures("engine_db")


def _contact(client: Client, **payload: str) -> Any:
    response = client.post("/api/support/contact", payload, content_type="application/json")
    contacts_answered()
    return response


def _stalled_by_the_workflow(email: str) -> Account:
    """Signed up while the workspace provider fails, until the setup workflow gives up and hands over."""
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account(email)
    setup_finished(account)
    account.refresh_from_db()
    assert account.state == AccountState.NEEDS_ATTENTION
    return account


def _acknowledgement(contact: Contact) -> Message:
    assert contact.acknowledgement is not None
    return contact.acknowledgement


def test_it_answers_someone_without_an_account_at_the_address_they_typed() -> None:
    response = _contact(Client(), email="nobody@example.com", message="Can I buy for my team?")

    assert response.status_code == 202, response.content
    contact = Contact.objects.get()
    assert response.json() == {"reference": contact.our_reference,
                               "message": messages.CONTACT_PUBLIC.format(reference=contact.our_reference)}
    assert contact.finding == Finding.NO_ACCOUNT and contact.needs_human
    ack = _acknowledgement(contact)
    assert ack.to == "nobody@example.com"
    assert "We don't have an account for nobody@example.com" in ack.text
    case = Case.objects.get()
    assert case.harm == Harm.QUESTION and case.kinds == [SignalKind.CONTACT]
    assert list(Case.objects.queue()) == [case]


def test_it_tells_a_stranger_the_same_thing_whether_or_not_the_address_has_an_account() -> None:
    new_account("ann@example.com")
    known = _contact(Client(), email="ann@example.com", message="Is my account ok?").json()
    unknown = _contact(Client(), email="stranger@example.com", message="Is my account ok?").json()

    def shape(answer: dict[str, str]) -> str:
        return answer["message"].replace(answer["reference"], "REF")

    assert shape(known) == shape(unknown)
    assert "ann" not in known["message"].lower() and "active" not in known["message"].lower()


def test_it_shows_the_signed_in_owner_exactly_what_it_emailed_them() -> None:
    account = new_account("ann@example.com")
    setup_finished(account)
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")

    page = client.post("/support/contact", {"email": "ann@example.com", "message": "Is my account ok?"})

    assert page.status_code == 200
    contact = Contact.objects.get()
    assert contact.finding == Finding.ALL_WELL
    ack = _acknowledgement(contact)
    assert ack.text.strip() == contact.private_reply.strip()
    assert "it is active and we don't see anything wrong" in html.unescape(page.content.decode())
    assert "it is active and we don't see anything wrong" in ack.text


def test_it_answers_the_signed_in_owner_in_the_api_with_the_short_message_not_the_email() -> None:
    account = new_account("ann@example.com")
    setup_finished(account)
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")

    answer = client.post("/api/support/contact", {"email": "ann@example.com", "message": "Is my account ok?"},
                         content_type="application/json")

    assert answer.status_code == 202, answer.content
    contact = Contact.objects.get()
    message = answer.json()["message"]
    assert message == contact.page_reply
    assert "it is active and we don't see anything wrong" in message
    assert messages.CONTACT_REFERENCE.format(reference=contact.our_reference) in message
    assert not message.startswith("Hello") and messages.CONTACT_SIGNOFF not in message
    ack = _acknowledgement(contact)  # the email keeps its greeting and sign-off, around the same words
    assert ack.text.strip().startswith("Hello Ann Lee,") and message in ack.text


def test_it_finishes_a_stuck_setup_before_anyone_reads_the_message() -> None:
    account = _stalled_by_the_workflow("bob@example.com")
    FaultSetting.objects.set_modes({"workspace": "ok"})

    response = _contact(Client(), email="bob@example.com", message="My workspace never appeared")

    assert response.status_code == 202
    contact = Contact.objects.get()
    assert contact.finding == Finding.SETUP_FIXED and not contact.needs_human
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE
    ack = _acknowledgement(contact)
    assert ack.to == "bob@example.com"
    assert "it has now finished: your workspace is ready" in ack.text
    retry = SupportAction.objects.get(action="retry_setup")
    assert retry.staff is None and retry.before["account"]["state"] == AccountState.NEEDS_ATTENTION

    automation.run_support_cycle()
    case = Case.objects.get()
    assert case.state == CaseState.RESOLVED and case.resolution == Resolution.AUTOMATION
    # The acknowledgement already said it was fixed: no second message about the same thing.
    assert not Message.objects.filter(kind="support_resolved").exists()


def test_it_hands_a_setup_that_keeps_failing_to_a_person_and_says_so() -> None:
    account = _stalled_by_the_workflow("cat@example.com")

    _contact(Client(), email="cat@example.com", message="Nothing works")

    contact = Contact.objects.get()
    assert contact.finding == Finding.SETUP_NEEDS_HUMAN and contact.needs_human
    ack = _acknowledgement(contact)
    assert "a person on our team now has your case and will finish it by hand" in ack.text
    assert "the workspace provider answered with an error" in ack.text
    automation.run_support_cycle()
    case = Case.objects.get()
    assert case.state == CaseState.OPEN and case.harm == Harm.LOCKED_OUT
    assert list(Case.objects.queue()) == [case]
    assert Signal.objects.get(case=case, kind=SignalKind.CONTACT).is_open
    account.refresh_from_db()
    assert account.state != AccountState.ACTIVE


def test_it_tells_a_customer_waiting_on_a_provider_outage_that_it_will_finish_by_itself() -> None:
    stalled_account("dan@example.com")
    open_breaker("workspace")

    _contact(Client(), email="dan@example.com", message="Still waiting")

    contact = Contact.objects.get()
    assert contact.finding == Finding.SETUP_WAITING and not contact.needs_human
    assert "waiting for our workspace provider, which has been failing since" in _acknowledgement(contact).text
    assert not SupportAction.objects.filter(action="retry_setup").exists()  # no point retrying into an outage
    assert Signal.objects.filter(kind=SignalKind.SETUP_DELAYED, cleared_at__isnull=True).count() == 1


def test_it_sends_a_code_by_sms_when_our_emails_cannot_reach_them() -> None:
    account = stalled_account("eve@example.com")
    account.setup_steps.filter(name="workspace").update(status=StepStatus.DONE)
    account.setup_steps.filter(name="welcome_email").update(status=StepStatus.WAITING, attempts=3,
                                                           last_error="the email provider did not answer")
    Account.objects.filter(pk=account.pk).update(state=AccountState.ACTIVE)
    open_breaker("email", error="the email provider did not answer within 10 seconds")

    _contact(Client(), email="eve@example.com", message="I never got the welcome email")

    contact = Contact.objects.get()
    assert contact.finding == Finding.EMAIL_UNDELIVERED
    assert Message.objects.filter(account=account, channel="sms", kind="sign_in_code").count() == 1
    assert "We've sent a sign-in code by SMS" in _acknowledgement(contact).text
    assert steps_of(account)["welcome_email"] == StepStatus.WAITING


def test_it_reports_each_invalid_field_and_limits_how_often_one_stranger_writes() -> None:
    bad = _contact(Client(), email="not an email", message="  ")
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"email", "message"}

    unreadable = _contact(Client(), email="ann@example.com", message="hi\x00there", reference="R\x07")
    assert unreadable.status_code == 400
    assert unreadable.json()["fields"] == {"message": messages.FIELD_CONTROL_CHARACTERS,
                                           "reference": messages.FIELD_CONTROL_CHARACTERS}
    assert _contact(Client(), email="ann@example.com", message="Line one\n\tLine two").status_code == 202

    # Counted by where a stranger writes from (20 an hour), not by the address: the first was ann's, above.
    answers = [_contact(Client(), email="flood@example.com", message=f"hello {i}").status_code for i in range(20)]
    assert answers == [202] * 19 + [429]
    assert Contact.objects.filter(email="flood@example.com").count() == 19
