"""Automation claims only what it did, every promise to a customer is tracked until kept, and the pages say what is
true: a question is not a fixed failure, a next-try time is never past, "Try again now" always tries."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.attention.models import Harm
from backstop.demo.models import FaultSetting
from backstop.notify.models import Message
from backstop.runtime.models import BreakerState, CircuitBreaker
from backstop.support import automation, commitments
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    Commitment,
    CommitmentKind,
    Contact,
    Finding,
    Incident,
    IncidentState,
    Resolution,
    SupportAction,
)
from backstop.support.tests.helpers import (
    contacts_answered,
    desk_client,
    new_account,
     open_breaker,
    staff_account,
    stalled_account,
)
from conftest import setup_finished, wait_for

pytestmark = pytest.mark.usefixtures("workflows_finish_before_cleanup", "engine_db")


def _contact(client: Client, **payload: str) -> Any:
    response = client.post("/api/support/contact", payload, content_type="application/json")
    assert response.status_code == 202, response.content
    contacts_answered()  # the request only writes the contact down; its workflow answers it
    return response


def _signed_in(account: Account) -> Client:
    client = Client()
    client.force_login(account, backend="django.contrib.auth.backends.ModelBackend")
    return client


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return html.unescape(response.content.decode())


def _quiet_account(email: str, *, step_status: str, attempts: int, next_attempt_at: dt.datetime | None,
                   error: str = "the workspace provider answered with an error") -> Account:
    """An account with one unfinished workspace step, written directly (no workflow runs it)."""
    account = Account.objects.create(email=email, email_key=email, name="Eve Ray", company="Evco",
                                     state=AccountState.SETTING_UP)
    SetupStep.objects.create(account=account, name=StepName.WORKSPACE, status=step_status, attempts=attempts,
                             last_error=error, next_attempt_at=next_attempt_at)
    SetupStep.objects.create(account=account, name=StepName.WELCOME_EMAIL, status=StepStatus.DONE, attempts=1,
                             done_at=timezone.now())
    return account


def test_it_answers_a_question_asked_while_setup_runs_as_a_question_for_a_person(settings: Any) -> None:
    # Healthy but unhurried providers: the customer writes while their setup is still under way (slow enough that
    # the contact's workflow, which answers after the request, still finds it under way on a loaded machine).
    settings.FAULT_SLOW_SECONDS = 4.0
    FaultSetting.objects.set_modes({"workspace": "slow"})
    account = new_account("ann@example.com")

    _contact(Client(), email="ann@example.com", message="How do I invite my team?")

    contact = Contact.objects.get()
    assert contact.finding in (Finding.SETUP_UNDER_WAY, Finding.SETUP_FINISHED_ANYWAY)
    assert contact.needs_human
    assert contact.acknowledgement is not None
    assert "our failure" not in contact.acknowledgement.text
    assert "A person will read your message and reply within one working day" in contact.acknowledgement.text
    assert not SupportAction.objects.filter(action="retry_setup").exists()  # nothing had failed: nothing to retry
    setup_finished(account, timeout=90)  # a slow provider on a loaded machine
    automation.run_support_cycle()
    case = Case.objects.get()
    assert case.state == CaseState.OPEN and list(Case.objects.queue()) == [case]
    signal = case.signals.get(kind="contact")
    assert signal.is_open and "nothing had failed" in signal.detail["seen"]
    assert Commitment.objects.get(case=case).kind == CommitmentKind.PERSON_REPLIES
    desk = _page(desk_client(staff_account()), "/desk")
    assert "promised by " in desk and "a person will read your message and reply within one working day" in desk
    # Its due time is a <time> the reader's browser shows in their own zone; in UTC (saying so) without a script.
    due = Commitment.objects.get(case=case).due_at
    assert due is not None
    assert (f'promised by <time datetime="{due.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S}Z" data-local-time="absolute"'
            in desk)


def test_it_never_shows_a_next_try_time_already_past() -> None:
    account = _quiet_account("eve@example.com", step_status=StepStatus.RETRYING, attempts=2,
                             next_attempt_at=timezone.now() - dt.timedelta(seconds=40))

    shown = _signed_in(account).get("/api/setup").json()
    page = _page(_signed_in(account), "/setup")

    workspace = next(step for step in shown["steps"] if step["name"] == "workspace")
    assert workspace["status_text"].endswith("We'll try again now.")
    assert workspace["next_attempt_at"] is None
    assert "We'll try again now." in page and "try again at" not in page


def test_it_keeps_the_next_try_time_shown_as_a_promise_on_an_open_case() -> None:
    due = timezone.now() + dt.timedelta(minutes=2)
    account = _quiet_account("fay@example.com", step_status=StepStatus.RETRYING, attempts=2, next_attempt_at=due)
    case = Case.objects.create(customer_key=account.email_key, email=account.email, account=account)

    page = _page(_signed_in(account), "/setup")

    # Without a script the sentence reads in UTC; its time is an element the browser shows in the reader's zone.
    assert f"We'll try again at {due:%H:%M:%S} UTC." in re.sub(r"<[^>]+>", "", page)
    assert f'<time datetime="{due:%Y-%m-%dT%H:%M:%S}Z" data-local-time="relative"' in page
    promise = Commitment.objects.get(case=case)
    assert promise.kind == CommitmentKind.RETRY_AT and promise.due_at == due and not promise.is_kept
    _page(_signed_in(account), "/setup")
    assert Commitment.objects.count() == 1  # shown again: the same promise
    SetupStep.objects.filter(account=account, name=StepName.WORKSPACE).update(attempts=3)
    automation.run_support_cycle()
    promise.refresh_from_db()
    assert promise.is_kept and promise.kept_by is None


def test_it_tries_again_now_a_step_whose_budget_was_spent_while_another_still_ran() -> None:
    # The workspace provider errors at once (its budget goes in a moment) while the welcome email waits out an
    # email outage: the run goes on, for the email.
    FaultSetting.objects.set_modes({"workspace": "error"})
    open_breaker("email", error="the email provider did not answer")
    account = new_account("gus@example.com")
    spent = wait_for(lambda: SetupStep.objects.filter(
        account=account, name=StepName.WORKSPACE, status=StepStatus.RETRYING,
        attempts__gte=4).first(), timeout=30, message="the workspace never spent its budget")
    assert SetupStep.objects.get(account=account, name=StepName.WELCOME_EMAIL).status != StepStatus.DONE
    client = _signed_in(account)

    shown = client.get("/api/setup").json()
    workspace = next(step for step in shown["steps"] if step["name"] == "workspace")
    assert "try again at" not in workspace["status_text"] and workspace["next_attempt_at"] is None
    assert "last automatic try" in workspace["status_text"]

    FaultSetting.objects.set_modes({"workspace": "ok"})
    CircuitBreaker.objects.filter(provider="email").update(state=BreakerState.CLOSED, consecutive_failures=0)
    assert client.post("/api/setup/retry").status_code == 202

    wait_for(lambda: SetupStep.objects.get(pk=spent.pk).status == StepStatus.DONE, timeout=15,
             message="'Try again now' did not try the step whose budget was spent")
    setup_finished(account)
    account.refresh_from_db()
    assert account.state == AccountState.ACTIVE


def _stalled_and_written_in(email: str) -> tuple[Account, Case]:
    FaultSetting.objects.set_modes({"workspace": "error"})
    account = new_account(email)
    setup_finished(account)
    _contact(Client(), email=email, message="My workspace never appeared")
    assert Contact.objects.get().finding == Finding.SETUP_NEEDS_HUMAN
    setup_finished(account)  # the run automation started when the message arrived has given up too
    return account, Case.objects.get()


def test_it_will_not_close_a_case_with_a_promise_unkept_without_a_confirm_and_drafts_the_message() -> None:
    account, case = _stalled_and_written_in("hal@example.com")
    promised = {c.kind: c for c in Commitment.objects.filter(case=case)}
    assert set(promised) == {CommitmentKind.PERSON_FINISHES, CommitmentKind.EMAIL_WHEN_DONE}
    FaultSetting.objects.set_modes({"workspace": "ok"})
    staff = staff_account()
    client = desk_client(staff)
    client.post(f"/desk/cases/{case.pk}/act", {"action": "retry_setup", "idempotency_key": "retry-1"})
    wait_for(lambda: Account.objects.get(pk=account.pk).state == AccountState.ACTIVE, timeout=30)

    client.post(f"/desk/cases/{case.pk}/act", {"action": "close", "idempotency_key": "close-1"})

    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    page = _page(client, f"/desk/cases/{case.pk}")
    assert "Not closed: we promised this customer 1 thing not done yet: “we'll email you when it's done”" in page
    assert 'id="close-anyway"' in page
    # The drafted reply that keeps it: automation's retry (when the message arrived) and the agent's own click.
    assert "What we did: We automatically restarted your account set-up at" in page
    assert "; I restarted your account set-up at" in page
    assert "a person on our team will finish it within one working day" in page and "kept" in page
    assert not Message.objects.filter(kind="support_reply").exists()

    reply = {"idempotency_key": "reply-1", "subject": "Your workspace is ready", "body": "It's ready now. Sorry!"}
    assert client.post(f"/desk/cases/{case.pk}/reply", reply).status_code == 302
    email = Commitment.objects.get(case=case, kind=CommitmentKind.EMAIL_WHEN_DONE)
    assert email.is_kept and email.kept_by == staff
    client.post(f"/desk/cases/{case.pk}/act", {"action": "close", "idempotency_key": "close-2"})
    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED and case.resolved_by == staff


def test_it_closes_with_a_promise_unkept_when_staff_confirm() -> None:
    _, case = _stalled_and_written_in("ida@example.com")
    client = desk_client(staff_account())

    client.post(f"/desk/cases/{case.pk}/act", {"action": "close", "idempotency_key": "close-1", "confirm": "1"})

    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED
    assert len(commitments.unkept(case.pk)) == 2  # closed anyway: the record still says what was not kept


def test_it_drafts_what_automation_did_as_we_and_each_action_once() -> None:
    account = _quiet_account("jon@example.com", step_status=StepStatus.FAILED, attempts=4, next_attempt_at=None)
    case = Case.objects.create(customer_key=account.email_key, email=account.email, account=account,
                               harm=Harm.LOCKED_OUT)
    staff = staff_account()
    colleague = staff_account(email="lee@backstop.localhost", name="Lee Colleague")
    for key, who, action in (("auto-1", None, "retry_setup"), ("tab-1", staff, "retry_setup"),
                             ("tab-2", staff, "retry_setup"), ("other-1", colleague, "send_code_sms")):
        SupportAction.objects.create(idempotency_key=key, case=case, staff=who, action=action,
                                     outcome=ActionOutcome.DONE)

    page = _page(desk_client(staff), f"/desk/cases/{case.pk}")

    assert "We automatically restarted your account set-up at" in page
    assert page.count("I restarted your account set-up") == 1
    assert "we sent you a sign-in code by SMS at" in page and "I sent you" not in page


def test_it_shows_a_resolved_case_as_resolved_not_locked_out_or_waiting() -> None:
    account = _quiet_account("kim@example.com", step_status=StepStatus.DONE, attempts=2, next_attempt_at=None)
    incident = Incident.objects.create(cause="provider:workspace", provider="workspace",
                                       state=IncidentState.RESOLVED, resolved_at=timezone.now())
    now = timezone.now()
    case = Case.objects.create(customer_key=account.email_key, email=account.email, account=account,
                               harm=Harm.LOCKED_OUT, incident=incident, state=CaseState.RESOLVED, resolved_at=now,
                               resolution=Resolution.AUTOMATION)

    page = _page(desk_client(staff_account()), f"/desk/cases/{case.pk}")

    assert "Locked out" not in page and "Waiting on" not in page
    assert '<span class="badge resolved">Resolved</span>' in page


def test_it_carries_what_we_promised_into_the_case_a_case_is_merged_into() -> None:
    _contact(Client(), email="lou@example.com", message="Can I buy for my team?")
    _contact(Client(), email="lou.private@example.com", message="It's Lou, from my own address")
    work, private = Case.objects.get(email="lou@example.com"), Case.objects.get(email="lou.private@example.com")
    client = desk_client(staff_account())

    client.post(f"/desk/cases/{private.pk}/act", {"action": "merge", "idempotency_key": "m-1",
                                                    "target": str(work.pk)})

    assert set(Commitment.objects.values_list("case_id", flat=True)) == {work.pk}
    assert Commitment.objects.filter(kind=CommitmentKind.PERSON_REPLIES).count() == 2


def test_it_credits_a_person_with_finishing_only_when_their_action_could_have_finished_it() -> None:
    """Seen in the demo: staff sent a sign-in code, automation then finished the setup, and the desk said the
    promise "a person will finish it" was kept by that staff member ("finished (staff@...)")."""
    account = stalled_account("sam@example.com")
    case = Case.objects.get()
    _page(_signed_in(account), "/setup")  # the page says "Our support team has it": the promise
    client = desk_client(staff_account())
    client.post(f"/desk/cases/{case.pk}/act", {"action": "send_code_sms", "idempotency_key": "code-1"})
    assert SupportAction.objects.get(action="send_code_sms").outcome == ActionOutcome.DONE

    SetupStep.objects.filter(account=account).update(status=StepStatus.DONE)  # automation's later attempt worked
    commitments.keep_commitments(case_ids=[case.pk])

    promise = Commitment.objects.get(case=case, kind=CommitmentKind.PERSON_FINISHES)
    assert promise.is_kept and promise.kept_by is None
    assert promise.kept_how == "finished (automation)"


def test_it_holds_the_setup_pages_our_support_team_has_it_as_a_promise_on_the_case() -> None:
    account = stalled_account("max@example.com")
    case = Case.objects.get()

    page = _page(_signed_in(account), "/setup")

    assert "Our support team has it." in page
    promise = Commitment.objects.get(case=case)
    assert promise.kind == CommitmentKind.PERSON_FINISHES and not promise.is_kept
    client = desk_client(staff_account())
    client.post(f"/desk/cases/{case.pk}/act", {"action": "close", "idempotency_key": "close-1"})
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
    assert "our support team has it" in _page(client, f"/desk/cases/{case.pk}")
