"""Collision detection: who else has a case open (colleagues, one's own other tabs), what is newer than a page, and a
reply that would go out over a newer message unseen is not sent: the page comes back with it shown."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from backstop.support import messages
from backstop.support.contact import answer_contact, receive_contact
from backstop.support.models import Case, CasePresence, SupportAction
from backstop.support.presence import FRESH_SECONDS, mark_present, timeline_marker
from backstop.support.tests.helpers import desk_client, staff_account, stalled_account


@pytest.mark.django_db
def test_it_tells_each_tab_who_else_is_on_the_case_and_forgets_tabs_gone_quiet() -> None:
    case = Case.objects.get(account=stalled_account("bob@example.com"))
    sam, kim = staff_account(), staff_account(email="kim@backstop.localhost", name="Kim")

    assert mark_present(case_id=case.pk, staff=sam, tab="sam-1").others == []
    assert mark_present(case_id=case.pk, staff=sam, tab="sam-2").others == [messages.PRESENCE_OWN_TAB]
    assert mark_present(case_id=case.pk, staff=kim, tab="kim-1").others == [
        messages.PRESENCE_COLLEAGUE.format(who="agent@backstop.localhost")]
    assert mark_present(case_id=case.pk, staff=sam, tab="sam-1").others == [
        messages.PRESENCE_COLLEAGUE.format(who="kim@backstop.localhost"), messages.PRESENCE_OWN_TAB]

    later = timezone.now() + dt.timedelta(seconds=FRESH_SECONDS + 1)
    assert mark_present(case_id=case.pk, staff=kim, tab="kim-1", now=later).others == []
    assert CasePresence.objects.filter(case=case).count() == 1  # the quiet tabs' rows are gone


@pytest.mark.django_db
def test_it_answers_the_heartbeat_and_the_goodbye_over_http() -> None:
    case = Case.objects.get(account=stalled_account("cy@example.com"))
    sam, kim = desk_client(staff_account()), desk_client(staff_account(email="kim@backstop.localhost", name="Kim"))
    url = f"/desk/cases/{case.pk}/presence"
    marker = timeline_marker(case_id=case.pk)
    sam.post(url, {"tab": "a", "seen_through": marker})
    assert kim.post(url, {"tab": "b", "seen_through": marker}).json() == {
        "others": [messages.PRESENCE_COLLEAGUE.format(who="agent@backstop.localhost")], "newer": ""}
    sam.post(url, {"tab": "a", "leave": "1"})
    assert kim.post(url, {"tab": "b", "seen_through": marker}).json()["others"] == []


@pytest.mark.django_db
def test_it_asks_first_before_replying_over_a_newer_message() -> None:
    case = Case.objects.get(account=stalled_account("di@example.com"))
    sam = desk_client(staff_account())
    drawn = timeline_marker(case_id=case.pk)
    contact = receive_contact(email="di@example.com", text="Never mind, it works now!", ip="127.0.0.1").contact
    answer_contact(contact_id=contact.pk)
    case.refresh_from_db()

    heartbeat = sam.post(f"/desk/cases/{case.pk}/presence", {"tab": "a", "seen_through": drawn}).json()
    assert heartbeat["newer"].startswith("Since this page was drawn: di@example.com wrote at ")

    reply = {"idempotency_key": "click-1", "case_version": case.version, "subject": "Your workspace",
             "body": "We are on it.", "seen_through": drawn}
    answer = sam.post(f"/desk/cases/{case.pk}/reply", reply)
    assert answer.status_code == 302 and answer["Location"].endswith("#reply")
    assert not SupportAction.objects.filter(case=case, action="reply").exists()
    page = sam.get(f"/desk/cases/{case.pk}").content.decode()
    assert "Not sent: since you opened this case, di@example.com wrote at" in page

    # The page drawn again carries the newer marker: the same reply, sent from it, goes.
    sam.post(f"/desk/cases/{case.pk}/reply", reply | {"seen_through": timeline_marker(case_id=case.pk)})
    assert SupportAction.objects.filter(case=case, action="reply").count() == 1
    # A colleague's reply is newer too, for a page drawn before it.
    kim = desk_client(staff_account(email="kim@backstop.localhost", name="Kim"))
    answer = kim.post(f"/desk/cases/{case.pk}/reply", reply | {"idempotency_key": "click-2", "body": "Also us."})
    assert "agent@backstop.localhost replied at" in kim.get(f"/desk/cases/{case.pk}").content.decode()
    assert SupportAction.objects.filter(case=case, action="reply").count() == 1
