"""The message outbox: one message per key, delivered once, retried with a budget, then marked failed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from dbos import DBOS
from django.db import transaction
from django.utils import timezone

from backstop.demo.models import FaultSetting
from backstop.notify import services
from backstop.notify.models import Channel, DeliveryStatus, LocalMailboxItem, Message
from backstop.runtime import dispatch, engine
from conftest import wait_for

CODE_CONTEXT = {"account": {"name": "Ann"}, "code": "123456", "verify_url": "http://testserver/verify"}


@pytest.fixture(autouse=True)
def local_mailbox(settings: Any) -> None:
    settings.EMAIL_BACKEND = "backstop.notify.providers.LocalMailboxEmailBackend"
    settings.SMS_PROVIDER = "mailbox"


def new_key() -> str:
    return f"code:{uuid.uuid4().hex}"


def code_email(key: str) -> Message:
    return services.create_email(account=None, kind="sign_in_code", key=key, to="ann@example.com",
                                 context=CODE_CONTEXT)


def code_sms(key: str) -> Message:
    return services.create_sms(account=None, kind="sign_in_code", key=key, to="+14155550100", context=CODE_CONTEXT)


def delivery_outcome(key: str, timeout: float = 30) -> Any:
    workflow_id = f"deliver:{key}"
    status = wait_for(
        lambda: (s := DBOS.get_workflow_status(workflow_id)) is not None and s.status in ("SUCCESS", "ERROR") and s,
        timeout=timeout, message=f"delivery {workflow_id} did not finish",
    )
    assert status.status == "SUCCESS", status.error
    return status.output


@pytest.mark.django_db
def test_it_renders_and_records_a_message_once_per_key() -> None:
    key = new_key()
    first = code_email(key)
    again = services.create_email(account=None, kind="sign_in_code", key=key, to="other@example.com",
                                  context={**CODE_CONTEXT, "code": "999999"})

    assert first.pk == again.pk
    assert Message.objects.count() == 1
    assert (first.channel, first.status, first.to) == (Channel.EMAIL, DeliveryStatus.QUEUED, "ann@example.com")
    assert first.subject == "Your Backstop sign-in code: 123456"
    assert "Your sign-in code is 123456." in first.text
    assert "<strong>123456</strong>" in first.html
    assert first.message_id_header == f"<{key.replace(':', '.')}@backstop>"


@pytest.mark.django_db
def test_it_delivers_a_message_once_even_when_the_attempt_runs_twice() -> None:
    message = code_email(new_key())

    first = services.deliver_message(message_id=message.pk, attempt=1)
    again = services.deliver_message(message_id=message.pk, attempt=2)

    assert first["status"] == again["status"] == "done"
    assert LocalMailboxItem.objects.count() == 1
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == (DeliveryStatus.SENT, 1, "")
    assert message.sent_at is not None
    assert LocalMailboxItem.objects.get().message_id == message.message_id_header


@pytest.mark.django_db
def test_it_records_a_failed_attempt_for_the_next_retry() -> None:
    FaultSetting.objects.set_modes({"sms": "error"})
    message = code_sms(new_key())

    result = services.deliver_message(message_id=message.pk, attempt=1)

    assert result["status"] == "failed"
    message.refresh_from_db()
    assert (message.status, message.attempts) == (DeliveryStatus.RETRYING, 1)
    assert message.last_error == "the sms provider answered with an error"
    assert message.next_attempt_at is not None
    assert not LocalMailboxItem.objects.exists()


@pytest.mark.django_db
def test_it_keeps_an_email_refused_by_the_injected_error_open_to_rewording() -> None:
    # The demo's "error" fault answers before any call: nothing was delivered, so the words may still change (a late
    # welcome says sorry itself); only a timeout leaves the provider maybe holding them.
    FaultSetting.objects.set_modes({"email": "error"})
    message = code_email(new_key())

    assert services.deliver_message(message_id=message.pk, attempt=1)["status"] == "failed"

    message.refresh_from_db()
    assert not message.maybe_sent
    assert services.reword_late_email(message=message, template="welcome_late", context={
        "account": {"name": "Seán O'Brien", "company": "Smith & Sons"}, "verify_url": "http://testserver/verify/x",
        "signed_up": "20:07 UTC on 7 Dec", "since": "20:07 UTC on 7 Dec", "until": "20:08 UTC on 7 Dec"})
    message.refresh_from_db()
    assert message.carries_apology and message.subject.endswith("(sorry, this is late)")
    assert "Hello Seán O'Brien," in message.text and "for Smith & Sons is created" in message.text


@pytest.mark.django_db
def test_it_never_marks_a_sent_message_failed() -> None:
    message = code_email(new_key())
    services.deliver_message(message_id=message.pk, attempt=1)

    services.give_up_message(message_id=message.pk)

    message.refresh_from_db()
    assert message.status == DeliveryStatus.SENT


@pytest.mark.django_db
def test_it_masks_a_one_time_secret_once_the_message_is_sent_or_given_up() -> None:
    sent = services.create_sms(account=None, kind="sign_in_code", key=new_key(), to="+14155550100",
                               context=CODE_CONTEXT, secret="123456")
    FaultSetting.objects.set_modes({"email": "error"})
    given_up = services.create_email(account=None, kind="sign_in_code", key=new_key(), to="ann@example.com",
                                     context=CODE_CONTEXT, secret="123456")
    assert "123456" in given_up.subject and "123456" in given_up.html  # needed until it goes out

    services.deliver_message(message_id=sent.pk, attempt=1)
    services.deliver_message(message_id=given_up.pk, attempt=1)
    assert Message.objects.get(pk=given_up.pk).secret == "123456"  # a failed attempt will be retried with it
    services.give_up_message(message_id=given_up.pk)

    assert "123456" in LocalMailboxItem.objects.get(to="+14155550100").text  # the person got the code
    for message in Message.objects.filter(pk__in=(sent.pk, given_up.pk)):
        assert message.secret == ""
        assert "123456" not in message.subject + message.text + message.html
        assert services.SECRET_MASK in message.text


def test_it_delivers_in_a_workflow_once_the_transaction_commits(engine_db: str) -> None:
    key = new_key()
    with transaction.atomic():
        message = code_sms(key)
        services.send_soon(message)
        assert DBOS.get_workflow_status(f"deliver:{key}") is None  # nothing leaves before the commit

    assert delivery_outcome(key) is True
    message.refresh_from_db()
    assert message.status == DeliveryStatus.SENT
    item = LocalMailboxItem.objects.get()
    assert (item.channel, item.to, item.message_id) == (Channel.SMS, "+14155550100", message.message_id_header)
    assert item.text.startswith("Backstop: your sign-in code is 123456.")


def test_it_sends_nothing_when_the_transaction_rolls_back(engine_db: str) -> None:
    key = new_key()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.send_soon(code_sms(key))
        raise RuntimeError("the surrounding action failed")

    assert not Message.objects.filter(key=key).exists()
    assert DBOS.get_workflow_status(f"deliver:{key}") is None


def test_it_runs_one_delivery_per_message_however_often_it_is_queued(engine_db: str) -> None:
    key = new_key()
    message = code_email(key)

    services.enqueue_delivery(message.pk, key)
    services.enqueue_delivery(message.pk, key)
    assert delivery_outcome(key) is True
    services.enqueue_delivery(message.pk, key)

    assert len(DBOS.list_workflows(workflow_ids=[f"deliver:{key}"])) == 1
    assert LocalMailboxItem.objects.count() == 1


def test_it_keeps_the_commit_when_the_hand_over_fails(engine_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the workflow engine's database did not answer")

    monkeypatch.setattr(dispatch, "enqueue", unreachable)
    key = new_key()
    with transaction.atomic():
        services.send_soon(code_email(key))

    assert Message.objects.get(key=key).status == DeliveryStatus.QUEUED  # the safety net's to hand on
    assert DBOS.get_workflow_status(f"deliver:{key}") is None


def test_it_starts_the_delivery_of_a_message_never_handed_on_once(engine_db: str) -> None:
    stranded, fresh, expired, stale = new_key(), new_key(), new_key(), new_key()
    # This process's own supervisor runs the same sweep every half minute: held from before the messages are aged, so
    # the calls below are the only ones (held only around them, a sweep could start in between and take the message).
    with engine.hold_background_threads():
        now = timezone.now()
        code_email(stranded)  # recorded; the process stopped before handing it on
        code_email(fresh)  # recorded a moment ago: its hand-over may be under way
        code_email(expired)  # a sign-in code that no longer works
        services.create_email(account=None, kind="support_reply", key=stale, to="ann@example.com",
                              context={"subject": "Re: your order", "text": "Sorted."})  # two days late: news no more
        for key, age in ((stranded, dt.timedelta(minutes=5)), (expired, dt.timedelta(minutes=11)),
                         (stale, dt.timedelta(days=2))):
            Message.objects.filter(key=key).update(created_at=now - age)
        Message.objects.create(key="welcome:1", channel=Channel.EMAIL, kind="welcome", to="bo@example.com", text="Hi",
                               created_at=now - dt.timedelta(minutes=5))  # setup delivers it

        assert services.hand_on_stranded_messages(grace_seconds=60) == 1
        assert delivery_outcome(stranded) is True
        assert services.hand_on_stranded_messages(grace_seconds=60) == 0

    assert list(LocalMailboxItem.objects.values_list("message_id", flat=True)) == [
        Message.objects.get(key=stranded).message_id_header]
    for key in (fresh, expired, stale, "welcome:1"):
        assert DBOS.get_workflow_status(f"deliver:{key}") is None


def test_it_marks_the_message_failed_once_the_retry_budget_is_spent(engine_db: str, settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 3
    FaultSetting.objects.set_modes({"sms": "error"})
    key = new_key()
    services.enqueue_delivery(code_sms(key).pk, key)

    assert delivery_outcome(key) is False

    message = Message.objects.get(key=key)
    assert (message.status, message.attempts) == (DeliveryStatus.FAILED, 3)
    assert message.last_error == "the sms provider answered with an error"
    assert message.next_attempt_at is None
    assert not LocalMailboxItem.objects.exists()


def test_it_delivers_after_a_few_failures_within_the_budget(engine_db: str, settings: Any) -> None:
    settings.SETUP_MAX_ATTEMPTS = 50
    FaultSetting.objects.set_modes({"email": "error"})
    key = new_key()
    services.enqueue_delivery(code_email(key).pk, key)
    wait_for(lambda: Message.objects.get(key=key).attempts >= 2, timeout=15)

    FaultSetting.objects.set_modes({"email": "ok"})

    assert delivery_outcome(key) is True
    message = Message.objects.get(key=key)
    assert message.status == DeliveryStatus.SENT
    assert message.attempts >= 3
    assert LocalMailboxItem.objects.count() == 1
