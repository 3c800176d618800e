"""Support's staff actions live in one registry (support.actions.STAFF_ACTIONS): every entry is complete, the desk
offers an action exactly where its predicate says it applies, and nothing else lists the actions (a new one is an
entry there and its texts in messages.py)."""

from __future__ import annotations

import html
import inspect
import re
from typing import Any

import pytest
from django import forms
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.attention.models import AttentionKind, Harm
from backstop.attention.services import raise_once as raise_attention
from backstop.billing.tests.conftest import buy, processor, settled  # noqa: F401
from backstop.support import messages
from backstop.support.actions import STAFF_ACTIONS, ActionRefused, Param, StaffAction, finishing_actions, run_action
from backstop.support.forms import ActionForm
from backstop.support.models import ActionOutcome, Case, CaseState, SupportAction
from backstop.support.tests.helpers import contacts_answered, desk_client, staff_account, stalled_account

HIDDEN_INPUTS = {"csrfmiddlewaretoken", "action", "case_version"}


def _offered_on_page(client: Client, case: Case) -> dict[str, set[str]]:
    """The actions the case page offers a button for, each with the names of the inputs its form asks for."""
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    forms_on_page = re.findall(r'<form [^>]*data-action="(\w+)"[^>]*>(.*?)</form>', page, re.DOTALL)
    offered = {name: set(re.findall(r'<input [^>]*name="(\w+)"', body)) - HIDDEN_INPUTS for name, body in forms_on_page}
    assert len(offered) == len(forms_on_page), "an action is offered twice on one page"
    for name, body in forms_on_page:
        action = STAFF_ACTIONS[name]
        assert f">{action.text.label}</button>" in body, name
        for param in action.params:
            text = action.text.inputs[param.name]
            assert re.search(rf'<input name="{param.name}"[^>]* placeholder="{re.escape(text.placeholder)}" '
                             rf'aria-label="{re.escape(text.label)}"', body), (name, param.name)
    return offered


def _applies(case: Case) -> set[str]:
    case = Case.objects.select_related("account").get(pk=case.pk)
    return {name for name, action in STAFF_ACTIONS.items() if action.applies(case)}


def _contact(email: str, text: str) -> Case:
    response = Client().post("/api/support/contact", {"email": email, "message": text},
                             content_type="application/json")
    assert response.status_code == 202, response.content
    contacts_answered()
    return Case.objects.get(email=email, state=CaseState.OPEN)


def test_it_has_every_entry_complete() -> None:
    assert list(STAFF_ACTIONS) == ["retry_setup", "complete_workspace", "send_code_sms", "fulfil_from_charge",
                                   "check_processor", "refund", "refund_payment", "grant_credit", "merge", "close",
                                   "assign_to_me", "wait_on_customer", "snooze", "wake"]
    for name, action in STAFF_ACTIONS.items():
        assert action.name == name
        assert callable(action.handler), name
        inspect.signature(action.handler).bind(None, None, {})  # (case, staff, params), as run_action calls it
        assert callable(action.applies), name
        inspect.signature(action.applies).bind(None)
        text = action.text
        assert text is messages.ACTIONS[name]
        assert text.label.strip() and text.done.strip() and text.already.strip(), name
        declared = [param.name for param in action.params]
        assert len(declared) == len(set(declared)), name
        assert set(text.inputs) == set(declared), f"{name}: every parameter has its input's texts, and only those"
        for param in action.params:
            assert isinstance(param, Param) and re.fullmatch(r"[a-z_]+", param.name)
            assert param.name not in HIDDEN_INPUTS and param.name != "action_key"  # run_action adds action_key
            assert isinstance(param.field, forms.Field)
            # The handler says what is missing in its own words (recorded on the audit), so the form never refuses
            # an empty input.
            assert not param.field.required, f"{name}.{param.name}"
            assert text.inputs[param.name].placeholder.strip() and text.inputs[param.name].label.strip()
        form = ActionForm({"action": name, "case_version": "3"})
        assert set(form.fields) == {"action", "case_version", *declared}, name
        assert form.is_valid(), form.errors


def test_it_takes_only_the_parameters_the_action_declares() -> None:
    form = ActionForm({"action": "close", "case_version": "3", "note": "fixed", "days": "7", "target": "3"})
    assert form.is_valid()
    assert form.cleaned_data == {"action": "close", "case_version": 3, "note": "fixed"}

    form = ActionForm({"action": "grant_credit", "case_version": "3", "days": "0"})
    assert not form.is_valid() and "days" in form.errors

    unknown = ActionForm({"action": "drop_tables", "case_version": "3", "note": "x"})
    assert unknown.is_valid() and set(unknown.cleaned_data) == {"action", "case_version"}


@pytest.mark.django_db
def test_it_runs_only_what_the_registry_holds() -> None:
    stalled_account("bob@example.com")
    case = Case.objects.get()
    with pytest.raises(ActionRefused, match=re.escape(messages.ACTION_NOT_AVAILABLE)):
        run_action(case_id=case.pk, staff=None, action="reply", key="k1")
    assert not SupportAction.objects.exists()


@pytest.mark.usefixtures("engine_db", "processor")
def test_it_offers_an_action_on_the_desk_only_where_it_applies() -> None:
    # A setup that ran out of retries: an account with a phone, no workspace, no money.
    stalled = Case.objects.get(account=stalled_account("bob@example.com"))
    # A customer with a paid order and a plan running writes in; no account.
    settled(buy("dan@example.com"))
    paid = _contact("dan@example.com", "A question about my plan")
    # Somebody with neither an account nor a payment writes in.
    stranger = _contact("eve@example.com", "Hello?")
    # A payment the processor took that matches none of our checkouts: about money, nothing on our books.
    raise_attention(
        kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject="payment:pi_unmatched",
        summary="Payment matches no checkout.",
        detail={"payment_id": "pi_unmatched", "email": "fay@example.com", "amount": "$249.00"})
    unmatched = Case.objects.get(email="fay@example.com")
    client = desk_client(staff_account())

    # Working states apply to every open case in the queue (support.working_states).
    working = {"assign_to_me", "wait_on_customer", "snooze"}
    assert _applies(stalled) == {"retry_setup", "complete_workspace", "send_code_sms", "merge", "close"} | working
    assert _applies(paid) == {"check_processor", "refund", "grant_credit", "merge", "close"} | working
    assert _applies(stranger) == {"merge", "close"} | working  # no refund, credit or fulfilment without a payment
    # No order to refund there: the payment itself goes back (refund_payment), as the desk suggests.
    assert _applies(unmatched) == {"fulfil_from_charge", "check_processor", "refund_payment", "merge",
                                   "close"} | working
    # Put aside (waiting on the customer): back to the queue is offered, putting it aside again is not.
    Case.objects.filter(pk=stranger.pk).update(waiting_since=timezone.now())
    stranger.refresh_from_db()
    assert _applies(stranger) == {"merge", "close", "assign_to_me", "wake"}

    for case in (stalled, paid, stranger, unmatched):
        offered = _offered_on_page(client, case)
        assert set(offered) == _applies(case), case.email
        for name, inputs in offered.items():
            assert inputs == {param.name for param in STAFF_ACTIONS[name].params}, name

    # Every action is offered somewhere above, and all but closing, merging and assigning are withheld somewhere.
    every = [_applies(case) for case in (stalled, paid, stranger, unmatched)]
    assert set().union(*every) == set(STAFF_ACTIONS)
    assert set.intersection(*every) == {"merge", "close", "assign_to_me"}

    # Alone in the queue, a case has nothing to merge into.
    for case in (paid, stranger, unmatched):
        Case.objects.filter(pk=case.pk).update(state=CaseState.RESOLVED)
    assert "merge" not in _applies(stalled) and "merge" not in _offered_on_page(client, stalled)
    # A resolved case offers nothing.
    assert _offered_on_page(client, paid) == {}


@pytest.mark.usefixtures("engine_db", "processor")
def test_it_offers_a_credit_to_the_customer_whichever_form_of_their_domain_they_typed() -> None:
    # Bought with the domain in Unicode, no account; writes in with its ASCII form: one customer (lib.email_identity),
    # whose plan billing finds and credits, so the desk offers the credit.
    settled(buy("Hal@Bücher.example"))
    case = _contact("hal@xn--bcher-kva.example", "Could I have a few more days?")

    assert {"refund", "grant_credit"} <= _applies(case)
    assert "grant_credit" in _offered_on_page(desk_client(staff_account()), case)
    result = run_action(case_id=case.pk, staff=None, action="grant_credit", key="credit-1", params={"days": 3})
    assert result.outcome == ActionOutcome.DONE, result.note


@pytest.mark.django_db
def test_it_takes_an_entry_and_its_texts_to_add_an_action(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing else lists the actions: an entry and its texts put a button with its input on the desk, and a click
    runs its handler once, audited with the note its texts give."""
    calls: list[dict[str, Any]] = []

    def _send_flowers(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
        calls.append(params)
        return ActionOutcome.DONE, messages.ACTIONS["send_flowers"].done

    monkeypatch.setitem(messages.ACTIONS, "send_flowers", messages.ActionText(
        "Send flowers", "Flowers are on their way.", "Flowers were already sent.",
        {"colour": messages.InputText("colour", "Colour of the flowers")}))
    monkeypatch.setitem(STAFF_ACTIONS, "send_flowers", StaffAction(
        "send_flowers", _send_flowers, applies=lambda case: case.account is not None,
        params=(Param("colour", forms.CharField(required=False)),)))
    stalled_account("bob@example.com")
    case = Case.objects.get()
    client = desk_client(staff_account())

    assert _offered_on_page(client, case)["send_flowers"] == {"colour"}
    for _ in range(2):  # the double click
        client.post(f"/desk/cases/{case.pk}/act", {"action": "send_flowers", "idempotency_key": "f1", "colour": "red"})

    assert [call["colour"] for call in calls] == ["red"]
    action = SupportAction.objects.get()
    assert (action.action, action.outcome, action.note) == ("send_flowers", ActionOutcome.DONE,
                                                            "Flowers are on their way.")
    assert action.params == {"colour": "red"}



def test_it_marks_exactly_the_actions_that_can_finish_a_setup_or_a_payment() -> None:
    assert set(finishing_actions()) == {"retry_setup", "complete_workspace", "fulfil_from_charge", "refund",
                                        "refund_payment"}
