"""One open case per customer: every signal about them joins it, ranked by harm, resolved only when all is clear."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from backstop.accounts.models import Account, AccountState
from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, AttentionRecord, Harm, provider_cause
from backstop.notify import services as notify
from backstop.notify.models import DeliveryStatus, Message
from backstop.support import automation, cases, contact
from backstop.support.models import (
    Case,
    CaseState,
    Resolution,
    Signal,
    SignalKind,
)
from backstop.support.tests.helpers import contacts_answered, finish_setup, open_breaker, stalled_account


def _failed_message(account: Account, kind: str = "sign_in_code") -> Message:
    message = notify.create_email(account=account, kind="sign_in_code", key=f"code:test:{account.pk}:{kind}",
                                  to=account.email, context={"account": account, "code": "123456",
                                                             "verify_url": "http://x/verify"})
    Message.objects.filter(pk=message.pk).update(status=DeliveryStatus.FAILED, attempts=4,
                                                 last_error="the email provider did not answer within 10 seconds")
    message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_it_joins_every_signal_about_a_customer_into_one_open_case() -> None:
    account = stalled_account("bob@example.com")
    attention.raise_once(kind=AttentionKind.EMAIL_UNDELIVERED, harm=Harm.DEGRADED, cause=provider_cause("email"),
                         account=account, detail={},
                         summary="Welcome email to bob@example.com could not be delivered: timeout")
    _failed_message(account)
    automation.join_failed_messages()
    open_breaker("workspace")  # so the contact below finds the provider down and waits instead of retrying
    contact.receive_contact(email="BOB@example.com", text="My workspace never appeared", ip="10.0.0.9")
    contacts_answered()
    # The same record raised again (a second give-up) joins nothing new.
    attention.raise_once(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause=provider_cause("workspace"),
                         account=account, detail={}, summary="again")

    cases = list(Case.objects.all())
    assert len(cases) == 1
    case = cases[0]
    assert case.account_id == account.pk and case.customer_key == "bob@example.com"
    kinds = sorted(Signal.objects.filter(case=case).values_list("kind", flat=True))
    assert kinds == sorted([AttentionKind.SETUP_STALLED, AttentionKind.EMAIL_UNDELIVERED,
                            SignalKind.MESSAGE_UNDELIVERED, SignalKind.CONTACT, SignalKind.SETUP_DELAYED])
    causes = dict(Signal.objects.filter(case=case).values_list("kind", "cause"))
    assert causes[AttentionKind.SETUP_STALLED] == "provider:workspace"
    assert causes[SignalKind.MESSAGE_UNDELIVERED] == "provider:email"
    assert case.harm == Harm.LOCKED_OUT
    assert "could not be created after 4 attempts" in case.summary


@pytest.mark.django_db
def test_it_refuses_a_second_open_case_for_one_customer_in_the_database() -> None:
    Case.objects.create(customer_key="ann@example.com", email="ann@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(customer_key="ann@example.com", email="ann@example.com")
    Case.objects.filter(customer_key="ann@example.com").update(state=CaseState.RESOLVED, resolved_at=timezone.now())
    Case.objects.create(customer_key="ann@example.com", email="ann@example.com")
    assert Case.objects.filter(customer_key="ann@example.com").count() == 2


@pytest.mark.django_db
def test_it_opens_a_fresh_case_once_the_last_one_is_resolved() -> None:
    account = stalled_account("carol@example.com")
    first = Case.objects.get()
    finish_setup(account)
    automation.run_support_cycle()
    first.refresh_from_db()
    assert first.state == CaseState.RESOLVED and first.resolution == Resolution.AUTOMATION

    contact.receive_contact(email="carol@example.com", text="Hello again", ip="10.0.0.9")
    contacts_answered()
    second = Case.objects.get(state=CaseState.OPEN)
    assert second.pk != first.pk
    assert Signal.objects.filter(case=first).count() == 1


@pytest.mark.django_db
def test_it_ranks_the_queue_by_harm_then_age() -> None:
    now = timezone.now()

    def case(email: str, harm: int, hours_old: float) -> Case:
        return Case.objects.create(customer_key=email, email=email, harm=harm,
                                   opened_at=now - dt.timedelta(hours=hours_old))

    question = case("q@example.com", Harm.QUESTION, 30)
    degraded_old = case("d1@example.com", Harm.DEGRADED, 20)
    degraded_new = case("d2@example.com", Harm.DEGRADED, 1)
    locked = case("l@example.com", Harm.LOCKED_OUT, 2)
    money = case("m@example.com", Harm.MONEY, 0.1)
    assert list(Case.objects.queue()) == [money, locked, degraded_old, degraded_new, question]


@pytest.mark.django_db
def test_it_ranks_a_payment_nobody_can_be_matched_to_as_money_taken_without_access() -> None:
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject="payment:pi_123",
        summary="A $249 payment (pi_123) from dana@example.com matches no checkout",
        detail={"email": "dana@example.com", "payment_id": "pi_123", "amount_cents": 24900})
    case = Case.objects.get()
    assert case.harm == Harm.MONEY
    assert case.customer_key == "dana@example.com" and case.account is None


@pytest.mark.django_db
def test_it_keeps_a_case_open_when_a_signal_joined_after_automation_looked() -> None:
    account = stalled_account("erin@example.com")
    case = Case.objects.get()
    finish_setup(account)
    automation.clear_fixed_signals({})
    seen_version = Case.objects.get(pk=case.pk).version
    contact.receive_contact(email="erin@example.com", text="Still there?", ip="10.0.0.9")  # joins: version moves on
    contacts_answered()

    assert automation._resolve_by_automation(case.pk, seen_version) == 0
    assert Case.objects.get(pk=case.pk).state == CaseState.OPEN


@pytest.mark.django_db(transaction=True)
def test_it_joins_simultaneous_signals_for_one_customer_into_one_case() -> None:
    account = Account.objects.create(email="fay@example.com", email_key="fay@example.com", name="Fay", company="F",
                                     state=AccountState.ACTIVE)
    messages = [_failed_message(account, kind=f"k{i}") for i in range(8)]
    barrier = threading.Barrier(len(messages))
    errors: list[Any] = []

    def join(message: Message) -> None:
        try:
            barrier.wait(timeout=10)
            cases.join_undelivered_message(message=message)
        except Exception as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=join, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert Case.objects.count() == 1
    assert Signal.objects.filter(case=Case.objects.get()).count() == len(messages)


@pytest.mark.django_db
def test_it_lets_a_failed_join_be_picked_up_by_the_next_cycle() -> None:
    account = Account.objects.create(email="gus@example.com", email_key="gus@example.com", name="Gus", company="G",
                                     state=AccountState.NEEDS_ATTENTION)
    # A record raised behind the desk's back (as if the join at raise time had failed).
    AttentionRecord.objects.create(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT,
                                   cause=provider_cause("workspace"), account=account, summary="stuck", detail={})
    assert not Case.objects.exists()
    automation.run_support_cycle()
    assert Case.objects.get().kinds == [AttentionKind.SETUP_STALLED]
