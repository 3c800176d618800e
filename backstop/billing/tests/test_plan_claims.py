"""One purchase per intent, rule by rule: what holds a plan's claim, what releases it, and what a second checkout
answers (to the owner, and to whoever else typed the address). In-process, against a real fakepay."""

from __future__ import annotations

import datetime as dt
import importlib
import threading
from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, connections, transaction
from django.test import Client
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.billing import checkout, claims, fulfilment, messages, refunds
from backstop.billing.models import AttemptState, AuditEntry, Entitlement, Order, PurchaseAttempt
from backstop.billing.outcome import already_answer, checkout_outcome
from backstop.billing.providers import ProcessorPayment
from backstop.billing.tests.conftest import annual_plan, buy, mailbox, settled
from backstop.lib.errors import InvalidInput
from backstop.notify.models import Message
from conftest import wait_for


def _account(email: str) -> Account:
    return Account.objects.create(email=email, email_key=email.lower(), name="Ann", company="Acme", state="active",
                                  activated_at=timezone.now())


def _checkout(email: str = "ann@example.com", *, account: Account | None = None, key: str, renewal: bool = False,
              renews: str = "", shown: tuple[str, ...] = (), card: str = "pm_card_visa") -> checkout.CheckoutResult:
    annual_plan()
    return checkout.start_checkout(product="annual", email=email, account=account, payment_method=card,
                                   idempotency_key=key, ip="127.0.0.1", renewal=renewal, renews=renews,
                                   shown_references=shown)


def _released(attempt: PurchaseAttempt) -> AuditEntry:
    attempt.refresh_from_db()
    assert attempt.plan_claim is None
    return AuditEntry.objects.get(reference=attempt.reference, action="plan_claim_released")


def test_it_records_the_claim_with_the_attempt(engine_db: str, processor: Any) -> None:
    attempt = settled(buy("Ann@Example.com", key="first"))

    assert attempt.plan_claim == "ann@example.com|annual"
    entry = AuditEntry.objects.get(reference=attempt.reference, action="checkout_recorded")
    assert entry.after["plan_claim"] == "ann@example.com|annual"


def test_it_keeps_one_claim_per_plan_in_the_database(engine_db: str, processor: Any) -> None:
    def attempt(key: str) -> PurchaseAttempt:
        return PurchaseAttempt.objects.create(
            idempotency_key=key, request_fingerprint="x", product=annual_plan(), amount_cents=24900, currency="usd",
            email="ann@example.com", payment_method="pm_card_visa", plan_claim="ann@example.com|annual")

    attempt("one")
    with pytest.raises(IntegrityError), transaction.atomic():
        attempt("two")


def test_it_records_one_of_two_checkouts_that_both_passed_the_check(
    engine_db: str, processor: Any, monkeypatch: Any
) -> None:
    # Both requests look for a holder before either inserts (on PostgreSQL; SQLite's write lock lets the second look
    # only after the first committed, and the barrier gives up waiting): the unique claim decides, not the check.
    barrier, real = threading.Barrier(2), claims.existing_purchase

    def look_then_wait(**kwargs: Any) -> Any:
        found = real(**kwargs)
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return found

    monkeypatch.setattr(claims, "existing_purchase", look_then_wait)
    results: list[Any] = []

    def pay(key: str) -> None:
        try:
            results.append(_checkout(key=key))
        except BaseException as error:  # reported below
            results.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pay, args=(f"tab-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(isinstance(result, checkout.CheckoutResult) for result in results), results
    assert sorted(result.already is None for result in results) == [False, True]
    assert PurchaseAttempt.objects.count() == 1
    settled(PurchaseAttempt.objects.get())
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]


def test_it_answers_a_stranger_with_an_email_to_the_owner_and_no_reference(engine_db: str, processor: Any) -> None:
    first = settled(buy("ann@example.com", key="first"))

    again = _checkout("ANN@example.com", key="second")
    third = _checkout("ann@example.com", key="third")

    assert again.already is not None and third.already is not None
    assert again.attempt.pk == first.pk and not again.already.shown and not again.already.under_way
    assert PurchaseAttempt.objects.count() == 1
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(1,)]
    # One email to the owner for both tries (a window of 15 minutes), with the link the stranger was not shown.
    [notice] = Message.objects.filter(kind="purchase_exists")
    assert notice.to == "ann@example.com" and first.reference in notice.text and "/checkout/" in notice.text
    assert "active until" in notice.text
    wait_for(lambda: [m for m in mailbox("ann@example.com") if "You already have" in m.subject])

    answer = already_answer(again.already, email="ANN@example.com")
    assert answer.kind == "emailed" and answer.existing is None
    assert first.reference not in answer.message and "until" not in answer.message
    assert "emailed" in answer.message and "ANN@example.com" in answer.message


def test_it_shows_the_owner_the_purchase_under_way_or_paid(engine_db: str, processor: Any) -> None:
    ann = _account("ann@example.com")
    under_way = PurchaseAttempt.objects.create(
        idempotency_key="held", request_fingerprint="x", product=annual_plan(), amount_cents=24900, currency="usd",
        email="ann@example.com", payment_method="pm_card_visa", state=AttemptState.CHARGING,
        plan_claim="ann@example.com|annual",
    )

    signed_in = _checkout(account=ann, key="signed-in")
    same_browser = _checkout("ann@example.com", key="same-browser", shown=(under_way.reference,))

    for result in (signed_in, same_browser):
        assert result.already is not None and result.already.shown and result.already.under_way
        assert result.attempt.pk == under_way.pk
    assert not Message.objects.filter(kind="purchase_exists").exists()  # they were shown it: no email
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(0,)]

    answer = Client()
    answer.force_login(ann)
    page = answer.get("/checkout")
    assert messages.ALREADY_TITLES["under_way"] in page.content.decode()
    assert f"/checkout/{under_way.reference}" in page.content.decode()
    assert 'id="checkout-form"' not in page.content.decode() and 'id="extend-form"' not in page.content.decode()
    assert page["Cache-Control"] == "no-store"


def test_it_lets_a_buyer_pay_again_after_a_decline(engine_db: str, processor: Any) -> None:
    declined = settled(buy("bob@example.com", key="declined", card="pm_card_chargeDeclined"), AttemptState.DECLINED)

    assert _released(declined).after == {"plan_claim": None, "reason": "declined"}
    paid = settled(buy("bob@example.com", key="paid"))
    assert paid.plan_claim == "bob@example.com|annual"


def test_it_releases_the_claim_of_a_checkout_the_processor_failed_or_never_charged(
    engine_db: str, processor: Any
) -> None:
    attempts = []
    for n in range(2):
        attempts.append(PurchaseAttempt.objects.create(
            idempotency_key=f"doubt-{n}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
            currency="usd", email=f"cy{n}@example.com", payment_method="pm_card_visa", state=AttemptState.IN_DOUBT,
            plan_claim=f"cy{n}@example.com|annual",
        ))
    payment = ProcessorPayment(id="pi_failed", status="requires_payment_method", amount=24900, currency="usd",
                               email="cy0@example.com", created=timezone.now(),
                               metadata={"attempt_id": str(attempts[0].pk)}, failure_code="card_declined")

    assert fulfilment.settle_declined_payment(payment=payment, actor="system:webhook")
    assert fulfilment.settle_not_charged(attempt_id=attempts[1].pk, actor="system:reconciler")

    assert _released(attempts[0]).after["reason"] == "declined"
    assert _released(attempts[1]).after["reason"] == "not charged"


def test_it_lets_a_buyer_pay_again_after_a_full_refund(engine_db: str, processor: Any) -> None:
    staff_refunded = settled(buy("dan@example.com", key="one"))
    refunds.refund_order(reference=staff_refunded.reference, actor="staff:sam@example.com")
    assert _released(staff_refunded).actor == "staff:sam@example.com"

    processor_refunded = settled(buy("dan@example.com", key="two"))
    assert refunds.record_refund_from_processor(payment_id=processor_refunded.payment_id, amount_refunded=24900,
                                                actor="system:webhook") == "refunded"
    assert _released(processor_refunded).after["reason"] == "refunded"

    third = settled(buy("dan@example.com", key="three"))
    assert third.plan_claim == "dan@example.com|annual"
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(3,)]


def test_it_releases_the_claim_of_a_plan_that_ended_when_the_next_checkout_comes(
    engine_db: str, processor: Any
) -> None:
    old = settled(buy("eve@example.com", key="last-year"))
    Entitlement.objects.filter(order__attempt=old).update(ends_at=timezone.now() - dt.timedelta(minutes=1))

    renewed = _checkout("eve@example.com", key="this-year")

    assert renewed.already is None and renewed.attempt.pk != old.pk
    entry = _released(old)
    assert (entry.actor, entry.after["reason"]) == ("buyer:eve@example.com", "plan ended")
    assert settled(renewed.attempt).plan_claim == "eve@example.com|annual"


def test_it_extends_a_running_plan_once_per_period(engine_db: str, processor: Any) -> None:
    ann = _account("ann@example.com")
    first = settled(_checkout(account=ann, key="buy").attempt)
    plan = Entitlement.objects.get(order__attempt=first)
    period = claims.period_of(plan)

    browser = Client()
    browser.force_login(ann)
    page = browser.get("/checkout").content.decode()
    assert messages.ALREADY_TITLES["paid"] in page and 'id="extend-form"' in page
    assert f'name="renews" value="{period}"' in page

    extension = _checkout(account=ann, key="extend-1", renewal=True, renews=period)
    assert extension.already is None
    assert extension.attempt.plan_claim == f"renew|{period}" and extension.attempt.renews_id == plan.pk
    extended = settled(extension.attempt)
    # A second "Extend" from a page that showed the same period (another tab, Back) charges nothing.
    twice = _checkout(account=ann, key="extend-2", renewal=True, renews=period)
    assert twice.already is not None and twice.already.renewal and twice.attempt.pk == extended.pk

    later = Entitlement.objects.get(order__attempt=extended)
    assert later.starts_at == plan.ends_at
    assert later.ends_at == plan.ends_at + dt.timedelta(days=365)
    assert twice.already.until == later.ends_at
    assert processor.query("SELECT COUNT(*) FROM payment_intents") == [(2,)]
    confirmation = Message.objects.get(key=fulfilment.confirmation_key(extended.reference))
    assert f"extended until {later.ends_at:%B %-d, %Y}" in confirmation.subject
    assert "is extended until" in checkout_outcome(extended).message
    # A new purchase (not an extension) still answers with the plan, now running until the extension's end.
    again = _checkout(account=ann, key="buy-again")
    assert again.already is not None and again.already.until == later.ends_at


def test_it_refuses_an_extension_without_a_signed_in_plan(engine_db: str, processor: Any) -> None:
    for account, field in ((None, "renewal_sign_in"), (_account("fay@example.com"), "renewal_nothing_to_extend")):
        try:
            _checkout("fay@example.com", account=account, key=f"renew-{field}", renewal=True)
        except InvalidInput as error:
            assert error.errors == {"renewal": messages.FIELD_ERRORS[field]}
        else:
            raise AssertionError("an extension with nothing to extend was accepted")
    assert not PurchaseAttempt.objects.exists()


def test_it_claims_running_and_open_purchases_when_migrating(engine_db: str) -> None:
    product, now = annual_plan(), timezone.now()

    def attempt(email: str, state: str, *, ends: dt.datetime | None = None) -> PurchaseAttempt:
        row = PurchaseAttempt.objects.create(
            idempotency_key=f"{email}-{state}-{ends}", request_fingerprint="x", product=product, amount_cents=24900,
            currency="usd", email=email, payment_method="pm_card_visa", state=state)
        if ends is not None:
            order = Order.objects.create(reference=row.reference, attempt=row, product=product, email=email,
                                         amount_cents=24900, currency="usd", payment_id=f"pi_{row.pk}",
                                         payment_created_at=now, fulfilled_by="checkout")
            Entitlement.objects.create(order=order, product=product, email=email, starts_at=now, ends_at=ends)
        return row

    # Two plans bought twice by one customer (the double charge), one that ended, one checkout under way.
    sooner = attempt("gus@example.com", "fulfilled", ends=now + dt.timedelta(days=30))
    later = attempt("gus@example.com", "fulfilled", ends=now + dt.timedelta(days=300))
    ended = attempt("hal@example.com", "fulfilled", ends=now - dt.timedelta(days=1))
    open_ = attempt("ivy@example.com", "charging")
    declined = attempt("ivy@example.com", "declined")

    importlib.import_module("backstop.billing.migrations.0008_fill_plan_claim").fill_plan_claim(apps, None)

    claimed = dict(PurchaseAttempt.objects.values_list("pk", "plan_claim"))
    assert claimed == {sooner.pk: None, later.pk: "gus@example.com|annual", ended.pk: None,
                       open_.pk: "ivy@example.com|annual", declined.pk: None}
