"""Working states: assign to me, waiting on the customer, snooze; a case put aside leaves the queue and comes back by
itself when the customer writes (anything new joins it) or when its snooze ends. Every change is an audited action."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.support import messages
from backstop.support.actions import run_action
from backstop.support.contact import answer_contact, receive_contact
from backstop.support.models import ActionOutcome, Case, SupportAction
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account
from backstop.support.wakeups import wake_snoozes_that_ended
from backstop.support.working_states import sleeping_cases


def _act(case: Case, staff: Account, action: str, **params: object) -> SupportAction:
    case.refresh_from_db()
    return run_action(case_id=case.pk, staff=staff, action=action, case_version=case.version,
                      params=dict(params)).action


def _in_queue(case: Case) -> bool:
    return Case.objects.queue().filter(pk=case.pk).exists()


@pytest.mark.django_db
def test_it_takes_a_snoozed_case_out_of_the_queue_and_wakes_it_when_the_customer_writes() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    staff = staff_account()
    snoozed = _act(case, staff, "snooze", hours=48)
    assert snoozed.outcome == ActionOutcome.DONE and "Snoozed until" in snoozed.note
    assert snoozed.after["case"]["snoozed_until"] and not snoozed.before["case"]["snoozed_until"]
    assert not _in_queue(case)
    assert [c.pk for c, _ in sleeping_cases()] == [case.pk]

    contact = receive_contact(email="bob@example.com", text="Any news on my workspace?", ip="127.0.0.1").contact
    answer_contact(contact_id=contact.pk)

    assert _in_queue(case)
    case.refresh_from_db()
    assert case.snoozed_until is None
    woke = SupportAction.objects.get(case=case, action="wake")
    assert woke.staff is None and woke.outcome == ActionOutcome.DONE
    assert woke.note.startswith(messages.WOKEN_BECAUSE.format(why="new about the customer: Wrote in"))


@pytest.mark.django_db
def test_it_brings_a_snooze_back_when_its_time_comes_and_records_the_wake_once() -> None:
    case = Case.objects.get(account=stalled_account("cy@example.com"))
    _act(case, staff_account(), "snooze", hours=1)
    assert not _in_queue(case)

    Case.objects.filter(pk=case.pk).update(snoozed_until=timezone.now() - dt.timedelta(seconds=1))
    assert _in_queue(case)  # due: back in the queue before any sweep has run
    assert wake_snoozes_that_ended() == 1
    assert wake_snoozes_that_ended() == 0
    case.refresh_from_db()
    assert case.snoozed_until is None
    assert SupportAction.objects.filter(case=case, action="wake").count() == 1
    assert SupportAction.objects.get(case=case, action="wake").note == messages.WOKEN_BECAUSE.format(
        why=messages.WAKE_WHY_SNOOZE_OVER)


@pytest.mark.django_db
def test_it_waits_on_the_customer_until_a_person_brings_it_back() -> None:
    case = Case.objects.get(account=stalled_account("di@example.com"))
    staff = staff_account()
    assert _act(case, staff, "wait_on_customer").outcome == ActionOutcome.DONE
    assert not _in_queue(case)
    page = desk_client(staff).get("/desk").content.decode()
    assert 'id="sleeping"' in page and "Waiting on the customer since" in page

    case_page = desk_client(staff).get(f"/desk/cases/{case.pk}").content.decode()
    assert 'data-action="wake"' in case_page and 'data-action="snooze"' not in case_page
    assert _act(case, staff, "wake").note == messages.ACTIONS["wake"].done
    assert _in_queue(case)


@pytest.mark.django_db
def test_it_assigns_to_me_and_says_whose_it_was() -> None:
    case = Case.objects.get(account=stalled_account("ed@example.com"))
    sam, kim = staff_account(), staff_account(email="kim@backstop.localhost", name="Kim")
    assert _act(case, sam, "assign_to_me").note == messages.ACTIONS["assign_to_me"].done
    assert _act(case, sam, "assign_to_me").outcome == ActionOutcome.ALREADY_DONE
    taken = _act(case, kim, "assign_to_me")
    assert taken.note == messages.ASSIGNED_FROM.format(who="agent@backstop.localhost")
    assert taken.before["case"]["assigned_to"] == "agent@backstop.localhost"
    assert taken.after["case"]["assigned_to"] == "kim@backstop.localhost"
    assert "Assigned to kim@backstop.localhost" in desk_client(sam).get(f"/desk/cases/{case.pk}").content.decode()
