"""Promises kept over real HTTP against `backstop serve` (the tester's round on issue 17): "we'll email you when it's
done" is kept when it is done, whether or not the case is resolved; "Try again now" while the provider is down says
so, and the setup page keeps no stale next-try time."""

from __future__ import annotations

import datetime as dt
import html
import time
from typing import Any

import httpx
import pytest
from django.utils import timezone

from backstop.accounts.models import Account, AccountState, SetupStep, StepName, StepStatus
from backstop.attention.models import Harm, provider_cause
from backstop.notify.models import Message
from backstop.support import automation
from backstop.support.cases import _join
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    Finding,
    Resolution,
    Signal,
    SignalKind,
    SupportAction,
)
from backstop.support.tests.helpers import desk_client, new_account, staff_account, stalled_account
from backstop.support.tests.test_promises_server import _set_faults, _signed_up, _text
from conftest import wait_for


def _csrf(browser: httpx.Client) -> dict[str, str]:
    return {"X-CSRFToken": browser.cookies.get("csrftoken") or ""}


def test_it_emails_when_done_as_promised_although_the_case_stays_open_for_a_person(
    server_factory: Any, smtp_sink: Any,
) -> None:
    # The breaker opens after five failures (after she wrote in): her setup waits on the provider in her case.
    server = server_factory(BACKSTOP_BREAKER_THRESHOLD="5", BACKSTOP_BREAKER_PROBE_SECONDS="1",
                            BACKSTOP_SUPPORT_CYCLE_SECONDS="1").start()
    _set_faults(server, workspace="error")
    browser = _signed_up(server, "wendy@example.com")
    # She writes once her workspace has failed (not while it is merely under way: that is a question for a person).
    wait_for(lambda: next(s for s in browser.get("/api/setup").json()["steps"]
                          if s["name"] == "workspace")["attempts"] >= 1,
             timeout=30, message="the workspace never failed")

    answer = browser.post("/api/support/contact", headers=_csrf(browser), timeout=60,
                          json={"email": "wendy@example.com", "message": "My workspace is not there"})

    assert answer.status_code in (200, 202), answer.text
    database = server.database
    wait_for(lambda: database.scalar("SELECT answered_at FROM support_contact"), timeout=60, message="no answer")
    assert database.scalar("SELECT finding FROM support_contact") == "setup_needs_human"
    # The answer owned a failure ("our failure"): the desk says she is locked out, not that it is a question.
    assert database.scalar("SELECT harm FROM support_case") == 20
    ack = wait_for(lambda: [m for m in smtp_sink.to("wendy@example.com") if "got your message" in str(m["Subject"])],
                   timeout=30, message="no acknowledgement")[0]
    assert "We'll email you when it's done" in _text(ack)
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_signal WHERE kind = 'setup_delayed'"), timeout=30,
             message=f"her setup never waited on the provider in her case:\n{server.log()}")
    _set_faults(server, workspace="ok")

    wait_for(lambda: database.scalar("SELECT state FROM accounts_account") == "active", timeout=60,
             message=f"the setup never finished:\n{server.log()}")
    ready = wait_for(lambda: [m for m in smtp_sink.to("wendy@example.com") if "ready" in str(m["Subject"])],
                     timeout=30, message="the promised email never came")
    assert len(ready) == 1
    wait_for(lambda: not database.scalar("SELECT COUNT(*) FROM support_commitment WHERE kind = 'email_when_done' "
                                         "AND kept_at IS NULL"), timeout=10, message="the promise is not kept")
    time.sleep(2.5)  # more support cycles: the email is sent once
    assert len([m for m in smtp_sink.to("wendy@example.com") if "ready" in str(m["Subject"])]) == 1


def test_it_says_the_provider_is_down_on_try_again_now_and_supersedes_the_next_try_time_it_had_named(
    server_factory: Any,
) -> None:
    # Four seconds between tries; the breaker opens at the third failure in a row and stays open (a long cooldown).
    server = server_factory(BACKSTOP_RETRY_BASE_SECONDS="4", BACKSTOP_RETRY_CAP_SECONDS="4",
                            BACKSTOP_BREAKER_THRESHOLD="3", BACKSTOP_BREAKER_COOLDOWN_SECONDS="600",
                            BACKSTOP_BREAKER_PROBE_SECONDS="600", BACKSTOP_SUPPORT_CYCLE_SECONDS="1").start()
    _set_faults(server, workspace="error")
    browser = _signed_up(server, "xena@example.com")
    database = server.database

    def workspace() -> dict[str, Any]:
        steps = browser.get("/api/setup").json()["steps"]
        return next(step for step in steps if step["name"] == "workspace")

    wait_for(lambda: workspace()["attempts"] >= 1, timeout=30, message="the workspace was never tried")
    answer = browser.post("/api/support/contact", headers=_csrf(browser), timeout=60,
                          json={"email": "xena@example.com", "message": "Where is my workspace?"})
    assert answer.status_code in (200, 202), answer.text
    wait_for(lambda: database.scalar("SELECT answered_at FROM support_contact"), timeout=60, message="no answer")
    # While the breaker is still closed the page names the next try: a promise on her open case.
    named = wait_for(lambda: (w := workspace())["next_attempt_at"] and w, timeout=30,
                     message="the page never named a next try")
    assert "We'll try again at" in named["status_text"]
    assert database.scalar("SELECT COUNT(*) FROM support_commitment WHERE kind = 'retry_at'")
    _signed_up(server, "yuri@example.com")  # another signup's failure opens the breaker before that time

    wait_for(lambda: database.scalar("SELECT state FROM runtime_circuitbreaker WHERE provider = 'workspace'")
             == "open", timeout=30, message=f"the breaker never opened:\n{server.log()}")
    time.sleep(4.5)  # past every time that was named

    waiting = workspace()
    assert waiting["next_attempt_at"] is None, waiting
    said = waiting["status_text"]
    assert "provider is down right now" in said and "try again at" not in said, waiting
    retried = browser.post("/api/setup/retry", headers=_csrf(browser))
    assert retried.status_code == 202, retried.text
    assert retried.json()["message"] == ("Our workspace provider is down right now; we'll try the moment it answers "
                                         "again — no need to press again.")
    wait_for(lambda: not database.scalar("SELECT COUNT(*) FROM support_commitment WHERE kind = 'retry_at' "
                                         "AND kept_at IS NULL"), timeout=10,
             message="a next-try time the outage overtook is still open (shown overdue)")
    kept = [how for (how,) in database.query("SELECT kept_how FROM support_commitment WHERE kind = 'retry_at'")]
    assert any(how.startswith("superseded: our workspace provider went down") for how in kept), kept


def test_it_keeps_one_open_promise_of_a_kind_on_a_case_however_many_strangers_write(server_factory: Any) -> None:
    server = server_factory().start()
    _signed_up(server, "vic@example.com")
    for n in range(3):
        answer = httpx.post(f"{server.url}/api/support/contact", timeout=30,
                            json={"email": "vic@example.com", "message": f"Is this account mine? ({n})"})
        assert answer.status_code == 202, answer.text
    database = server.database
    wait_for(lambda: database.scalar("SELECT COUNT(*) FROM support_contact WHERE answered_at IS NOT NULL") == 3,
             timeout=60, message=f"the contacts were not answered:\n{server.log()}")

    assert database.scalar("SELECT COUNT(DISTINCT case_id) FROM support_contact") == 1
    assert database.scalar("SELECT COUNT(*) FROM support_commitment WHERE kind = 'person_replies' "
                           "AND kept_at IS NULL") == 1


@pytest.mark.django_db
def test_it_relabels_a_question_asked_while_setup_ran_once_that_setup_fails() -> None:
    account = new_account("una@example.com")
    _join(customer_key=account.email_key, email=account.email, account=account, kind=SignalKind.CONTACT, cause="",
          harm=Harm.QUESTION, summary="Where is my workspace?", detail={"finding": Finding.SETUP_UNDER_WAY},
          source="contact:S-UNA")
    assert Case.objects.get().harm == Harm.QUESTION
    SetupStep.objects.filter(account=account, name=StepName.WORKSPACE).update(
        status=StepStatus.RETRYING, attempts=2, last_error="the workspace provider answered with an error")

    automation.run_support_cycle()

    assert Case.objects.get().harm == Harm.LOCKED_OUT
    assert Case.objects.get().get_harm_display() != "a question, nothing wrong found"


@pytest.mark.django_db
def test_it_counts_the_waiting_in_the_apology_from_the_signup_not_from_when_the_problem_was_recorded() -> None:
    account = new_account("oli@example.com")
    signed_up = timezone.now() - dt.timedelta(minutes=30)
    Account.objects.filter(pk=account.pk).update(created_at=signed_up)
    account.refresh_from_db()
    _join(customer_key=account.email_key, email=account.email, account=account, kind=SignalKind.SETUP_DELAYED,
          cause=provider_cause("email"), harm=Harm.DEGRADED, summary="welcome email waiting",
          detail={"step": StepName.WELCOME_EMAIL}, source="setup:oli:welcome_email")  # recorded just now

    automation._tell_customer_it_is_fixed(Case.objects.select_related("account", "incident").get(), timezone.now())

    told = Message.objects.get(kind="support_resolved").text
    assert "cost you 30 minutes of waiting" in told, told


@pytest.mark.django_db
def test_it_drafts_working_now_only_once_it_is_signs_as_the_team_and_says_resolved_once() -> None:
    account = stalled_account("pia@example.com")
    client = desk_client(staff_account(email="support@backstop.localhost", name="Support"))
    case = Case.objects.get()
    SupportAction.objects.create(idempotency_key="auto-retry", case=case, action="retry_setup",
                                 outcome=ActionOutcome.DONE, finished_at=timezone.now())
    # The automatic restart failed again: its setup-delay signal cleared as handed over, the setup still unfinished.
    Signal.objects.filter(case=case).update(cleared_at=timezone.now(), cleared_how="handed over")

    failed_again = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())

    assert "We automatically restarted your account set-up at" in failed_again
    assert "working now" not in failed_again and "ready now" not in failed_again
    assert "for that.\n\nBackstop support" in failed_again and "Support\nBackstop support" not in failed_again

    SetupStep.objects.filter(account=account).update(status=StepStatus.DONE)
    Account.objects.filter(pk=account.pk).update(state=AccountState.ACTIVE, activated_at=timezone.now())
    done = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert "We automatically restarted your account set-up at" in done
    assert "Your workspace is ready now, and you can sign in." in done and "it's working now" not in done

    Case.objects.filter(pk=case.pk).update(state=CaseState.RESOLVED, resolved_at=timezone.now(),
                                           resolution=Resolution.AUTOMATION)
    closed = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert '<span class="badge resolved">Resolved</span>' in closed
    assert '<strong id="case-state">Fixed by automation</strong>' in closed
    assert '<strong id="case-state">Resolved</strong>' not in closed
