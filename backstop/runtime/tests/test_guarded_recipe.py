"""The guarded-operation recipe, shown on a toy operation: "send the account's invoice PDF to the accountant".

The operation (the first block below) is all a new operation needs: no model, no workflow module, no sweep of its
own. The tests run it with real DBOS workflows on the test database, the real email provider (the local mailbox) and
the demo's fault switch in front of it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from dbos import DBOS
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.attention.models import AttentionKind, AttentionRecord, Harm
from backstop.demo.models import FaultSetting
from backstop.notify.models import DELIVERY_QUEUE, LocalMailboxItem
from backstop.notify.providers import email_provider
from backstop.runtime import dispatch, engine
from backstop.runtime.guarded import Attention, GuardedOperation, IntentOperation
from backstop.runtime.models import CircuitBreaker, GuardedIntent, IntentState
from backstop.runtime.registry import sweeps
from backstop.runtime.retrying import AttemptResult, failed_attempt
from conftest import wait_for

# --- The operation ---------------------------------------------------------------------------------------------------


def send_invoice_pdf(intent: GuardedIntent) -> None:
    """The effect: one call to the email provider. The Message-ID is the intent's key, so a repeat is dropped."""
    invoice = intent.payload["invoice"]
    email_provider().send_email(
        to=intent.payload["accountant"], subject=f"Invoice {invoice}",
        text=f"Your client's invoice {invoice} as PDF: {settings.BASE_URL}/billing/invoices/{invoice}.pdf\n",
        html="", message_id=f"<invoice-pdf.{intent.key}@backstop>",
    )


def invoice_not_sent(intent: GuardedIntent) -> Attention:
    return Attention(
        kind=AttentionKind.EMAIL_UNDELIVERED, harm=Harm.DEGRADED, cause="provider:email",
        summary=f"Invoice {intent.payload['invoice']} could not be sent to the accountant: {intent.last_error}",
        detail={"provider": "email", "invoice": intent.payload["invoice"], "error": intent.last_error},
        account=Account.objects.filter(pk=intent.payload["account_id"]).first(),
    )


invoice_to_accountant = IntentOperation(
    "invoice_pdf", provider="email", queue=DELIVERY_QUEUE, effect=send_invoice_pdf, attention=invoice_not_sent)


def send_invoice_to_accountant(*, account: Account, invoice: str, accountant: str) -> GuardedIntent:
    return invoice_to_accountant.request(
        key=f"{account.pk}:{invoice}", payload={"account_id": account.pk, "invoice": invoice, "accountant": accountant})

# --- End of the operation (29 lines) ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def local_mailbox(settings: Any) -> None:
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"


@pytest.fixture
def account(engine_db: str) -> Account:
    return Account.objects.create(email="ann@example.com", email_key="ann@example.com", name="Ann", company="Acme")


def outcome(intent: GuardedIntent, timeout: float = 30) -> Any:
    workflow_id = invoice_to_accountant.guarded.workflow_id(intent.key)
    status = wait_for(
        lambda: (s := DBOS.get_workflow_status(workflow_id)) is not None and s.status in ("SUCCESS", "ERROR") and s,
        timeout=timeout, message=f"{workflow_id} did not finish",
    )
    assert status.status == "SUCCESS", status.error
    return status.output


def test_it_sends_the_invoice_once_the_request_commits(account: Account) -> None:
    with transaction.atomic():
        intent = send_invoice_to_accountant(account=account, invoice="INV-7", accountant="books@acme.example")
        assert DBOS.get_workflow_status(f"invoice_pdf:{intent.key}") is None  # nothing leaves before the commit

    assert outcome(intent) is True
    item = LocalMailboxItem.objects.get()
    assert (item.to, item.subject, item.message_id) == (
        "books@acme.example", "Invoice INV-7", f"<invoice-pdf.{account.pk}:INV-7@backstop>")
    progress = invoice_to_accountant.progress(intent.key)
    assert progress is not None and progress.done and not progress.being_retried
    assert (progress.attempts, progress.next_try_at, progress.last_error) == (1, None, "")


def test_it_retries_a_failing_provider_with_backoff_until_it_recovers(account: Account, settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 50
    FaultSetting.objects.set_modes({"email": "error"})
    intent = send_invoice_to_accountant(account=account, invoice="INV-8", accountant="books@acme.example")
    wait_for(lambda: GuardedIntent.objects.get(pk=intent.pk).attempts >= 2, timeout=15)

    progress = invoice_to_accountant.progress(intent.key)
    assert progress is not None and progress.being_retried and not progress.done
    assert progress.next_try_at is not None
    assert progress.last_error == "the email provider answered with an error"
    assert CircuitBreaker.objects.get(provider="email").consecutive_failures >= 2  # each failure went through it
    FaultSetting.objects.set_modes({"email": "ok"})

    assert outcome(intent) is True
    intent.refresh_from_db()
    assert (intent.state, intent.next_try_at, intent.last_error) == (IntentState.DONE, None, "")
    assert intent.attempts >= 3
    assert LocalMailboxItem.objects.count() == 1
    assert CircuitBreaker.objects.get(provider="email").consecutive_failures == 0  # the success closed it again
    assert not AttentionRecord.objects.exists()


def test_it_gives_up_once_the_budget_is_spent_and_tells_a_person_once(account: Account, settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    FaultSetting.objects.set_modes({"email": "error"})
    intent = send_invoice_to_accountant(account=account, invoice="INV-9", accountant="books@acme.example")

    assert outcome(intent) is False

    progress = invoice_to_accountant.progress(intent.key)
    assert progress is not None and progress.state == IntentState.GIVEN_UP
    assert (progress.done, progress.being_retried, progress.attempts, progress.next_try_at) == (False, False, 3, None)
    record = AttentionRecord.objects.get()
    assert (record.kind, record.account, record.resolved_at) == ("email_undelivered", account, None)
    assert (record.harm, record.cause, record.detail["invoice"]) == (Harm.DEGRADED, "provider:email", "INV-9")
    assert record.summary == ("Invoice INV-9 could not be sent to the accountant: "
                              "the email provider answered with an error")
    assert not LocalMailboxItem.objects.exists()
    # Asked again, the operation does not start a second time: one workflow, one record.
    send_invoice_to_accountant(account=account, invoice="INV-9", accountant="books@acme.example")
    assert invoice_to_accountant.guarded.sweep(0) == 0
    assert AttentionRecord.objects.count() == 1


def test_it_starts_an_intent_whose_workflow_never_started_from_its_safety_net_once(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the workflow engine's database did not answer")

    with monkeypatch.context() as patched:
        patched.setattr(dispatch, "enqueue", unreachable)
        with transaction.atomic():
            stranded = send_invoice_to_accountant(account=account, invoice="INV-1", accountant="books@acme.example")
        fresh = send_invoice_to_accountant(account=account, invoice="INV-2", accountant="books@acme.example")
    assert GuardedIntent.objects.get(pk=stranded.pk).state == IntentState.WAITING  # the commit stood

    assert dict(sweeps())["invoice_pdf"] == invoice_to_accountant.guarded.sweep  # the supervisor runs it too
    # This process's own supervisor runs the same sweep every half minute: held, so the calls below are the only ones.
    with engine.hold_background_threads():
        GuardedIntent.objects.filter(pk=stranded.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
        assert invoice_to_accountant.guarded.sweep(60) == 1
        assert outcome(stranded) is True
        assert invoice_to_accountant.guarded.sweep(60) == 0

    assert LocalMailboxItem.objects.get().subject == "Invoice INV-1"
    assert DBOS.get_workflow_status(f"invoice_pdf:{fresh.key}") is None  # its hand-over may still be under way


def test_it_starts_once_when_asked_twice(account: Account) -> None:
    first = send_invoice_to_accountant(account=account, invoice="INV-3", accountant="books@acme.example")
    again = send_invoice_to_accountant(account=account, invoice="INV-3", accountant="someone@else.example")
    invoice_to_accountant.guarded.start(first.pk, first.key)

    assert again.pk == first.pk
    assert outcome(first) is True
    invoice_to_accountant.guarded.start(first.pk, first.key)

    assert len(DBOS.list_workflows(workflow_ids=[f"invoice_pdf:{first.key}"])) == 1
    assert GuardedIntent.objects.count() == 1
    assert list(LocalMailboxItem.objects.values_list("to", flat=True)) == ["books@acme.example"]


# --- An operation over intents of its own, with a safety net of its own and two records to raise -------------------

report_calls: list[int] = []


def try_report(account_id: int, attempt: int) -> AttemptResult:
    report_calls.append(account_id)
    return failed_attempt(attempt, "the report service answered with an error")


def reports_not_made(account_id: int, failed: list[str]) -> list[Attention]:
    account = Account.objects.get(pk=account_id)
    return [Attention(kind=kind, harm=harm, cause="provider:reports", summary=f"{kind}: {failed}", detail={},
                      account=account)
            for kind, harm in ((AttentionKind.SETUP_STALLED, Harm.LOCKED_OUT),
                               (AttentionKind.EMAIL_UNDELIVERED, Harm.DEGRADED))]


reports = GuardedOperation("reports", queue=DELIVERY_QUEUE, steps={"report": try_report}, give_up=reports_not_made,
                           stranded=None)


def report_outcome(key: str) -> Any:
    status = wait_for(
        lambda: (s := DBOS.get_workflow_status(reports.workflow_id(key))) is not None
        and s.status in ("SUCCESS", "ERROR") and s, timeout=30, message=f"reports:{key} did not finish")
    assert status.status == "SUCCESS", status.error
    return status.output


def test_it_registers_no_sweep_for_an_operation_with_a_safety_net_of_its_own() -> None:
    assert "reports" not in dict(sweeps())
    assert reports.sweep(0) == 0


def test_it_raises_every_record_a_give_up_returns(account: Account, settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 2
    reports.start(account.pk, f"{account.pk}:1")

    assert report_outcome(f"{account.pk}:1") is False
    assert sorted(AttentionRecord.objects.values_list("kind", "harm", "cause", "summary", "account")) == [
        ("email_undelivered", Harm.DEGRADED, "provider:reports", "email_undelivered: ['report']", account.pk),
        ("setup_stalled", Harm.LOCKED_OUT, "provider:reports", "setup_stalled: ['report']", account.pk),
    ]


def test_it_carries_on_from_first_results_made_elsewhere(account: Account) -> None:
    report_calls.clear()
    reports.start(account.pk, f"{account.pk}:2", first_results={"report": {"status": "done", "retry_in": 0.0,
                                                                           "error": ""}})

    assert report_outcome(f"{account.pk}:2") is True
    assert report_calls == []  # the batch's attempt counted: no second call
    assert not AttentionRecord.objects.exists()
