"""raise_once and resolve, and the hooks the apps above attention plug in."""

from __future__ import annotations

import logging
from collections.abc import Collection

import pytest

from backstop.accounts.models import Account
from backstop.attention import hooks
from backstop.attention.models import AttentionKind, AttentionRecord, Harm, provider_cause
from backstop.attention.services import raise_once, resolve

pytestmark = pytest.mark.django_db


def _account(email: str) -> Account:
    return Account.objects.create(email=email, email_key=email, name="Ann", company="Annco")


def _heard(monkeypatch: pytest.MonkeyPatch) -> list[AttentionRecord]:
    """Only a recording subscriber hears of records in this test."""
    heard: list[AttentionRecord] = []
    monkeypatch.setattr(hooks, "_subscribers", [])
    hooks.subscribe(heard.append)
    return heard


def test_it_keeps_one_open_record_per_account_and_kind_and_tells_the_subscribers_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard = _heard(monkeypatch)
    account = _account("ann@example.com")
    first = raise_once(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause=provider_cause("workspace"),
                       account=account, summary="stalled", detail={"attempts": 4})
    again = raise_once(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause=provider_cause("workspace"),
                       account=account, summary="stalled again", detail={})
    other = raise_once(kind=AttentionKind.EMAIL_UNDELIVERED, harm=Harm.DEGRADED, cause=provider_cause("email"),
                       account=account, summary="undelivered", detail={})

    assert again.pk == first.pk and other.pk != first.pk
    assert AttentionRecord.objects.count() == 2
    stored = AttentionRecord.objects.get(pk=first.pk)
    assert (stored.harm, stored.cause, stored.summary) == (Harm.LOCKED_OUT, "provider:workspace", "stalled")
    assert [r.pk for r in heard] == [first.pk, first.pk, other.pk]


def test_it_keeps_one_open_record_per_kind_and_subject_whoever_it_belongs_to(monkeypatch: pytest.MonkeyPatch) -> None:
    _heard(monkeypatch)
    first = raise_once(kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject="payment:pi_1",
                       summary="unmatched", detail={"email": "bo@example.com"})
    again = raise_once(kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject="payment:pi_1",
                       account=_account("bo@example.com"), summary="unmatched", detail={})
    assert again.pk == first.pk and again.account_id is None
    assert resolve(kind=AttentionKind.PAYMENT_UNMATCHED, subject="payment:pi_1", how="refunded") == 1
    # Resolved, the subject may be raised again as a new record.
    third = raise_once(kind=AttentionKind.PAYMENT_UNMATCHED, harm=Harm.MONEY, cause="", subject="payment:pi_1",
                       summary="unmatched", detail={})
    assert third.pk != first.pk
    assert AttentionRecord.objects.get(pk=first.pk).resolution == "refunded"


def test_it_logs_a_failing_subscriber_and_still_raises_the_record_and_tells_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(record: AttentionRecord) -> None:
        AttentionRecord.objects.filter(pk=record.pk).update(summary="changed by a subscriber that then failed")
        raise RuntimeError("the desk is down")

    heard: list[AttentionRecord] = []
    monkeypatch.setattr(hooks, "_subscribers", [])
    hooks.subscribe(broken)
    hooks.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="backstop.attention.services"):
        record = raise_once(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause="",
                            account=_account("cy@example.com"), summary="stalled", detail={})

    assert [r.pk for r in heard] == [record.pk]
    # The failed subscriber's own writes were rolled back with it; the record stays.
    assert AttentionRecord.objects.get(pk=record.pk).summary == "stalled"
    assert "the desk is down" in caplog.text


def test_it_resolves_only_the_open_records_of_the_kind_for_the_accounts_given(monkeypatch: pytest.MonkeyPatch) -> None:
    _heard(monkeypatch)
    ann, bo, cy = _account("ann@example.com"), _account("bo@example.com"), _account("cy@example.com")
    for account in (ann, bo, cy):
        raise_once(kind=AttentionKind.SETUP_STALLED, harm=Harm.LOCKED_OUT, cause="", account=account,
                   summary="stalled", detail={})
    raise_once(kind=AttentionKind.EMAIL_UNDELIVERED, harm=Harm.DEGRADED, cause="", account=ann, summary="email",
               detail={})

    assert resolve(kind=AttentionKind.SETUP_STALLED, account_ids=[ann.pk, bo.pk], how="setup finished") == 2
    assert resolve(kind=AttentionKind.SETUP_STALLED, account_ids=[ann.pk], how="again") == 0
    assert resolve(kind=AttentionKind.SETUP_STALLED, account_ids=[], how="nobody") == 0
    still_open = set(AttentionRecord.objects.filter(resolved_at__isnull=True).values_list("account_id", "kind"))
    assert still_open == {(cy.pk, AttentionKind.SETUP_STALLED), (ann.pk, AttentionKind.EMAIL_UNDELIVERED)}
    with pytest.raises(TypeError):
        resolve(kind=AttentionKind.SETUP_STALLED, how="everyone")


def test_it_answers_nobody_told_until_someone_registers_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "_customers_told", [])
    assert hooks.customers_told_by_a_person([1, 2, 3]) == set()

    asked: list[Collection[int]] = []

    def desk(account_ids: Collection[int]) -> set[int]:
        asked.append(account_ids)
        return {2} & set(account_ids)

    hooks.answer_customers_told(desk)
    hooks.answer_customers_told(desk)  # registering twice (ready() run again) answers once
    assert hooks.customers_told_by_a_person([1, 2, 3]) == {2}
    assert hooks.customers_told_by_a_person([]) == set()
    assert asked == [[1, 2, 3]]
