"""A desk action is one intent: this action, on this case, as the page showed it. Two tabs (or two people) clicking it
on the same page make one effect, and the second is told who did it and when; the desk runs only what it offers; a
workspace "made by hand" must exist at the provisioner."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from backstop.accounts.models import Account, AccountState, StepStatus, VerificationCode
from backstop.demo.models import FaultSetting
from backstop.notify.models import Message
from backstop.support import messages
from backstop.support.actions import WORKSPACE_ID_MAX_LENGTH
from backstop.support.models import ActionOutcome, Case, SupportAction
from backstop.support.tests.helpers import (
    contacts_answered,
    staff_account,
    stalled_account,
    steps_of,
    workspace_made_in_the_console,
)
from backstop.workspaces.models import Workspace

pytestmark = pytest.mark.django_db


def _tab(staff: Account, case: Case) -> tuple[Client, str]:
    """A browser tab on the case page: its client (signed in as ``staff``) and the page as it was drawn."""
    client = Client()
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    return client, client.get(f"/desk/cases/{case.pk}").content.decode()


def _form(page: str, selector: str) -> dict[str, str]:
    """The hidden inputs of a form on the page, exactly as the browser would send them."""
    form = re.search(rf'<form [^>]*{selector}[^>]*>(.*?)</form>', page, re.DOTALL)
    assert form, selector
    return {name: html.unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(1))}


def _click(tab: tuple[Client, str], case: Case, action: str, **typed: str) -> str:
    """Click the action's button on the page the tab shows; the page it lands on, as text."""
    client, page = tab
    data = {**_form(page, f'data-action="{action}"'), **typed}
    response = client.post(f"/desk/cases/{case.pk}/act", data)
    assert response.status_code == 302, response.content
    return html.unescape(client.get(response["Location"]).content.decode())


def _notice(page: str) -> str:
    found = re.search(r'id="desk-(?:notice|problem)">(.*?)</div>', page, re.DOTALL)
    return found.group(1) if found else ""


def test_it_makes_one_effect_when_two_tabs_click_the_same_action_on_the_same_case() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    sam, kim = staff_account(), staff_account(email="kim@backstop.localhost", name="Kim Agent")
    first, second = _tab(sam, case), _tab(kim, case)  # both drawn before either click

    landed = _click(first, case, "send_code_sms")
    told = _click(second, case, "send_code_sms")

    assert VerificationCode.objects.filter(account=account).count() == 1
    assert Message.objects.filter(account=account, channel="sms", kind="sign_in_code").count() == 1
    action = SupportAction.objects.get()
    assert action.staff == sam
    done = messages.ACTIONS["send_code_sms"].done
    assert _notice(landed) == done
    assert _notice(told) == messages.ACTION_ALREADY_DONE_BY.format(
        who="agent@backstop.localhost", when=f"{action.created_at:%H:%M:%S UTC}", result=done)
    assert 'id="desk-problem"' not in told  # told, not an error


def test_it_runs_the_action_again_from_a_page_drawn_after_it_ran() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    sam = staff_account()

    _click(_tab(sam, case), case, "send_code_sms")
    _click(_tab(sam, case), case, "send_code_sms")  # the page reloaded: a new intent ("send another")

    assert Message.objects.filter(account=account, channel="sms", kind="sign_in_code").count() == 2
    assert SupportAction.objects.filter(action="send_code_sms").count() == 2


def test_it_refuses_an_action_the_desk_does_not_offer_on_the_case() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    client, page = _tab(staff_account(), case)
    assert 'data-action="grant_credit"' not in page  # no plan to credit

    response = client.post(f"/desk/cases/{case.pk}/act", {**_form(page, 'data-action="send_code_sms"'),
                                                           "action": "grant_credit", "days": "30"})

    assert response.status_code == 302
    assert not SupportAction.objects.exists()
    refused = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert _notice(refused) == messages.ACTION_NO_LONGER_APPLIES.format(label=messages.ACTIONS["grant_credit"].label)
    assert Account.objects.get(pk=account.pk).state == AccountState.NEEDS_ATTENTION


def test_it_refuses_a_workspace_id_the_provisioner_never_made() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    tab = _tab(staff_account(), case)

    page = _click(tab, case, "complete_workspace", external_id="i-just-made-this-up")

    assert _notice(page) == messages.WORKSPACE_ID_UNKNOWN.format(external_id="i-just-made-this-up")
    assert 'id="desk-problem"' in page
    assert not Workspace.objects.filter(account=account).exists()
    assert steps_of(account)["workspace"] == StepStatus.FAILED
    assert Account.objects.get(pk=account.pk).state == AccountState.NEEDS_ATTENTION
    assert "it's working now" not in page  # the drafted reply does not claim a fix that did not happen


def test_it_records_a_workspace_the_provisioner_knows_and_activates_the_account() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    made = workspace_made_in_the_console("Bobco")

    page = _click(_tab(staff_account(), case), case, "complete_workspace", external_id=made)

    assert _notice(page) == messages.ACTIONS["complete_workspace"].done
    assert Workspace.objects.get(account=account).external_id == made
    assert Account.objects.get(pk=account.pk).state == AccountState.ACTIVE


def test_it_sends_one_reply_when_two_tabs_send_the_same_words() -> None:
    Account.objects.create(email="bob@example.com", email_key="bob@example.com", name="Bob Stone", company="Bobco",
                           state=AccountState.ACTIVE)
    stalled_account("cat@example.com")  # any case will do; Bob's is opened by his message
    Client().post("/api/support/contact", {"email": "bob@example.com", "message": "Where is my workspace?"},
                  content_type="application/json")
    contacts_answered()  # the contact's workflow opens Bob's case
    case = Case.objects.get(email="bob@example.com")
    sam = staff_account()
    tabs = [_tab(sam, case), _tab(sam, case)]
    words = {"subject": "Your workspace", "body": "Hello Bob,\n\nIt's ready now.\n\nSam"}

    for client, page in tabs:
        response = client.post(f"/desk/cases/{case.pk}/reply", {**_form(page, 'id="reply-form"'), **words})
        assert response.status_code == 302

    assert Message.objects.filter(kind="support_reply").count() == 1
    assert SupportAction.objects.filter(action="reply").count() == 1
    told = html.unescape(tabs[1][0].get(f"/desk/cases/{case.pk}").content.decode())
    assert _notice(told).startswith("Already done by agent@backstop.localhost at ")


def test_it_runs_a_corrected_click_from_the_same_page_after_a_refusal_and_keeps_colleagues_pages_current() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    sam, kim = staff_account(), staff_account(email="kim@backstop.localhost", name="Kim Agent")
    first, second = _tab(sam, case), _tab(kim, case)  # both drawn before either click
    drawn_at = Case.objects.get(pk=case.pk).version
    FaultSetting.objects.set_modes({"workspace": "error"})  # the provider can't be asked whether the id exists

    refused = _click(first, case, "complete_workspace", external_id="i-just-made-this-up")

    assert _notice(refused).startswith("We couldn't ask the workspace provider whether i-just-made-this-up exists")
    assert 'id="desk-problem"' in refused
    assert Case.objects.get(pk=case.pk).version == drawn_at  # nothing changed: open pages are not made stale
    audit = SupportAction.objects.get()
    assert audit.outcome == ActionOutcome.REFUSED and audit.staff == sam  # kept for the audit, as a refusal
    assert "refused: nothing changed" in refused

    FaultSetting.objects.set_modes({"workspace": "ok"})
    made = workspace_made_in_the_console("Bobco")
    landed = _click(second, case, "complete_workspace", external_id=made)  # the other tab, same page version

    assert _notice(landed) == messages.ACTIONS["complete_workspace"].done
    assert "Already done" not in landed
    assert Workspace.objects.get(account=account).external_id == made
    assert Account.objects.get(pk=account.pk).state == AccountState.ACTIVE
    assert SupportAction.objects.filter(outcome=ActionOutcome.DONE).count() == 1

    again = _click(first, case, "complete_workspace", external_id=made)  # the first tab, corrected too: one effect
    assert _notice(again).startswith("Already done by kim@backstop.localhost at ")


def test_it_says_what_was_wrong_with_a_desk_form_on_the_case_page() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    client, page = _tab(staff_account(), case)

    typed = {**_form(page, 'data-action="complete_workspace"'), "external_id": "ws_1", "case_version": "seven"}
    client.post(f"/desk/cases/{case.pk}/act", typed)
    out_of_date = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert _notice(out_of_date) == messages.DESK_PAGE_OUT_OF_DATE

    client.post(f"/desk/cases/{case.pk}/reply", {**_form(page, 'id="reply-form"'), "subject": "x" * 301,
                                                 "body": "Hello"})
    too_long = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert _notice(too_long).startswith("Nothing was done: Subject: ")
    assert "Each problem is shown next to its field" not in too_long
    assert not SupportAction.objects.exists()


def test_it_names_the_credit_days_that_are_out_of_range() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    client, page = _tab(staff_account(), case)

    client.post(f"/desk/cases/{case.pk}/act", {**_form(page, 'data-action="send_code_sms"'),
                                               "action": "grant_credit", "days": "100000"})

    told = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert _notice(told) == "Nothing was done: Credit in days: Ensure this value is less than or equal to 3650."
    assert not SupportAction.objects.exists()


def test_it_refuses_a_workspace_id_longer_than_any_the_provisioner_makes_without_echoing_it() -> None:
    account = stalled_account("bob@example.com")
    case = Case.objects.get()
    tab = _tab(staff_account(), case)
    assert f'maxlength="{WORKSPACE_ID_MAX_LENGTH}"' in tab[1]

    page = _click(tab, case, "complete_workspace", external_id="w" * 5000)

    assert _notice(page) == "Nothing was done: Workspace id created by hand: " + messages.WORKSPACE_ID_TOO_LONG % {
        "limit_value": WORKSPACE_ID_MAX_LENGTH, "show_value": 5000}
    assert "w" * (WORKSPACE_ID_MAX_LENGTH + 1) not in page
    assert not SupportAction.objects.exists()
    assert not Workspace.objects.filter(account=account).exists()
