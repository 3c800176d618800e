"""Money taken without access: the desk fixes it through billing (no new charge), once, against a real fakepay."""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.test import Client
from django.utils import timezone

from backstop.attention import services as attention
from backstop.attention.models import AttentionKind, AttentionRecord, Harm
from backstop.billing import fulfilment as billing_fulfilment
from backstop.billing.models import (
    AttemptState,
    AuditEntry,
    Entitlement,
    KnownRefund,
    Order,
    OrderStatus,
    PurchaseAttempt,
)
from backstop.billing.reconcile import reconcile_payments
from backstop.billing.tests.conftest import annual_plan, buy, processor, settled, stripe_client  # noqa: F401
from backstop.notify.models import Message
from backstop.support import automation
from backstop.support.contact import receive_contact
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    Contact,
    Finding,
    Resolution,
    SupportAction,
)
from backstop.support.tests.helpers import contacts_answered, desk_client, staff_account, suggested_action

pytestmark = pytest.mark.usefixtures("engine_db", "processor")


def _charged_without_access(email: str) -> PurchaseAttempt:
    """What a checkout whose process died right after the charge leaves: the money is in, no order, no access."""
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"key-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa", state=AttemptState.CHARGING)
    payment = stripe_client().charge(
        amount=24900, currency="usd", payment_method="pm_card_visa", email=email, description="Backstop annual plan",
        idempotency_key=attempt.processor_key,
        metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference, "email": email})
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(state=AttemptState.CHARGED, payment_id=payment.id,
                                                         charged_at=timezone.now())
    attempt.refresh_from_db()
    return attempt


def test_it_gives_access_for_a_payment_already_taken_when_the_buyer_writes_in() -> None:
    attempt = _charged_without_access("ann@example.com")

    answer = Client().post("/api/support/contact", {"email": "ann@example.com", "message": "I paid, no access!"},
                           content_type="application/json")

    contacts_answered()

    assert answer.status_code == 202
    assert "$249" not in answer.json()["message"]  # the page only says where the details went
    contact = Contact.objects.get()
    assert contact.finding == Finding.PAYMENT_FULFILLED
    assert contact.acknowledgement is not None
    paid_on = f"{attempt.charged_at:%-d %b %Y}"
    assert (f"We see your $249 payment from {paid_on}. You will not be charged again. Your access is active now."
            in contact.acknowledgement.text)
    order = Order.objects.get()
    assert (order.payment_id, order.fulfilled_by) == (attempt.payment_id, "support")
    assert Entitlement.objects.get(order=order).state == "active"
    assert Message.objects.filter(key=billing_fulfilment.confirmation_key(attempt.reference)).count() == 1
    assert SupportAction.objects.get(action="fulfil_from_charge").staff is None

    automation.run_support_cycle()
    assert Case.objects.get().state == CaseState.RESOLVED


def test_it_fulfils_from_the_charge_with_one_click_once_however_often_it_is_clicked() -> None:
    attempt = _charged_without_access("bob@example.com")
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNRESOLVED, harm=Harm.MONEY, cause="", subject=f"checkout:{attempt.reference}",
        summary=f"Checkout {attempt.reference} ($249, bob@example.com) is unsettled.",
        detail={"reference": attempt.reference, "email": "bob@example.com", "amount_cents": 24900})
    case = Case.objects.get()
    assert case.harm == Harm.MONEY
    staff = staff_account()
    client = desk_client(staff)
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert suggested_action(page) == "fulfil_from_charge"
    assert "no order yet" in page  # the payment as we see it, next to the processor's "succeeded"

    for _ in range(2):
        client.post(f"/desk/cases/{case.pk}/act", {"action": "fulfil_from_charge", "idempotency_key": "c1"})

    assert Order.objects.filter(payment_id=attempt.payment_id).count() == 1
    action = SupportAction.objects.get()
    assert action.outcome == ActionOutcome.DONE and action.staff == staff
    assert action.before["charged_without_order"] == [attempt.reference]
    assert action.after["orders"] == {attempt.reference: OrderStatus.PAID}
    assert AttentionRecord.objects.get().resolved_at is not None
    automation.run_support_cycle()
    case.refresh_from_db()
    assert case.state == CaseState.RESOLVED and case.resolution == Resolution.STAFF


def test_it_loses_gracefully_to_a_checkout_that_fulfilled_the_payment_first() -> None:
    attempt = _charged_without_access("cat@example.com")
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNRESOLVED, harm=Harm.MONEY, cause="",
        subject=f"checkout:{attempt.reference}", summary="unsettled",
        detail={"reference": attempt.reference, "email": "cat@example.com"})
    payment = stripe_client().retrieve(attempt.payment_id)
    # automation got there
    billing_fulfilment.fulfil_payment(payment=payment, source="checkout", actor="system:checkout")

    client = desk_client(staff_account())
    client.post(f"/desk/cases/{Case.objects.get().pk}/act", {"action": "fulfil_from_charge", "idempotency_key": "c"})

    assert Order.objects.get().fulfilled_by == "checkout"
    assert SupportAction.objects.get().outcome == ActionOutcome.ALREADY_DONE


def test_it_refunds_with_one_click_once() -> None:
    attempt = settled(buy("dan@example.com"))
    Client().post("/api/support/contact", {"email": "dan@example.com", "message": "Please refund me"},
                  content_type="application/json")
    contacts_answered()
    case = Case.objects.get()
    client = desk_client(staff_account())

    client.post(f"/desk/cases/{case.pk}/act", {"action": "refund", "idempotency_key": "r1", "reason": "asked"})
    client.post(f"/desk/cases/{case.pk}/act", {"action": "refund", "idempotency_key": "r2"})

    order = Order.objects.get(reference=attempt.reference)
    assert order.status == OrderStatus.REFUNDED
    assert Entitlement.objects.get(order=order).state == "revoked"
    # The second click came from a page drawn after the refund: nothing left to refund, so it is refused unrun.
    [first] = SupportAction.objects.filter(action="refund")
    assert first.outcome == ActionOutcome.DONE
    assert first.before["orders"] == {attempt.reference: "paid"}
    assert first.after["orders"] == {attempt.reference: "refunded"}


def test_it_grants_a_credit_of_days_once_per_click_and_audits_it() -> None:
    attempt = settled(buy("eve@example.com"))
    Client().post("/api/support/contact", {"email": "eve@example.com", "message": "Your outage cost me a week"},
                  content_type="application/json")
    contacts_answered()
    case = Case.objects.get()
    order = Order.objects.get(reference=attempt.reference)
    ends_at = Entitlement.objects.get(order=order).ends_at
    client = desk_client(staff_account())

    for key in ("c1", "c1"):  # the double click
        client.post(f"/desk/cases/{case.pk}/act",
                    {"action": "grant_credit", "idempotency_key": key, "days": "7", "reason": "outage"})
    client.post(f"/desk/cases/{case.pk}/act", {"action": "grant_credit", "idempotency_key": "c2", "days": "500"})

    assert Entitlement.objects.get(order=order).ends_at == ends_at + dt.timedelta(days=7)
    granted, refused = SupportAction.objects.filter(action="grant_credit").order_by("id")
    assert granted.outcome == ActionOutcome.DONE and refused.outcome == ActionOutcome.FAILED
    assert "Nothing was changed" in refused.note
    [entry] = AuditEntry.objects.filter(action="credit_granted")
    assert entry.reference == attempt.reference and entry.actor.endswith("agent@backstop.localhost")
    assert (entry.before["ends_at"], entry.after["days"]) == (ends_at.isoformat(), 7)


def test_it_refuses_a_credit_for_a_customer_without_a_plan() -> None:
    Client().post("/api/support/contact", {"email": "fay@example.com", "message": "hello"},
                  content_type="application/json")
    contacts_answered()
    case = Case.objects.get()

    client = desk_client(staff_account())
    client.post(f"/desk/cases/{case.pk}/act", {"action": "grant_credit", "idempotency_key": "c1", "days": "7"})

    # The desk does not offer it there, and a hand-made post is refused before it runs.
    assert not SupportAction.objects.exists()
    assert "no longer applies" in html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert not AuditEntry.objects.filter(action="credit_granted").exists()


def test_it_refunds_a_payment_that_has_no_order_from_the_case_once() -> None:
    stranger = stripe_client().charge(
        amount=4900, currency="usd", payment_method="pm_card_visa", email="gus@example.com",
        description="made in the processor's dashboard", idempotency_key="dashboard-gus", metadata={})
    reconcile_payments(actor="test", full=True)  # no checkout explains it: a record, and a case, for a person
    case = Case.objects.get(email="gus@example.com")
    staff = staff_account()
    client = desk_client(staff)
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert suggested_action(page) == "refund_payment"

    for key in ("r1", "r1", "r2"):  # a double click, then another click once it is done
        client.post(f"/desk/cases/{case.pk}/act", {"action": "refund_payment", "idempotency_key": key,
                                                   "reason": "not ours"})

    assert stripe_client().retrieve(stranger.id).amount_refunded == 4900  # the processor and our books agree
    assert KnownRefund.objects.get(payment_id=stranger.id).amount_refunded == 4900
    # The click from a page drawn after the refund is refused unrun: nothing is left to return.
    [first] = SupportAction.objects.filter(action="refund_payment")
    assert first.outcome == ActionOutcome.DONE and first.staff == staff
    [request] = AuditEntry.objects.filter(action="refund_requested", payment_id=stranger.id)
    assert request.actor == "support:agent@backstop.localhost"
    assert (request.after["outcome"], request.after["amount_cents"]) == ("refunded", 4900)
    assert AttentionRecord.objects.get(kind=AttentionKind.PAYMENT_UNMATCHED).resolved_at is not None
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert f"$49 of $49 refunded on {timezone.now():%-d %b %Y}" in page  # the case still shows the payment


def test_it_refuses_to_refund_a_payment_that_is_not_the_customers() -> None:
    theirs = stripe_client().charge(
        amount=4900, currency="usd", payment_method="pm_card_visa", email="hal@example.com",
        description="dashboard", idempotency_key="dashboard-hal", metadata={})
    someone_elses = settled(buy("ida@example.com"))
    reconcile_payments(actor="test", full=True)
    case = Case.objects.get(email="hal@example.com")

    desk_client(staff_account()).post(f"/desk/cases/{case.pk}/act", {
        "action": "refund_payment", "idempotency_key": "r1", "payment_id": someone_elses.payment_id})

    action = SupportAction.objects.get()
    assert action.outcome == ActionOutcome.FAILED and someone_elses.payment_id in action.note
    assert stripe_client().retrieve(someone_elses.payment_id).amount_refunded == 0
    assert stripe_client().retrieve(theirs.id).amount_refunded == 0


def test_it_refuses_to_refund_another_customers_order_typed_on_a_case() -> None:
    someone_elses = settled(buy("kit@example.com"))
    theirs = settled(buy("lee@example.com"))
    # Lee writes in quoting Kit's reference (a typo, or a stranger): the case is Lee's.
    receive_contact(email="lee@example.com", text=f"about {someone_elses.reference}", ip="127.0.0.1")
    contacts_answered()
    case = Case.objects.get(email="lee@example.com")

    desk_client(staff_account()).post(f"/desk/cases/{case.pk}/act", {
        "action": "refund", "idempotency_key": "r1", "reference": someone_elses.reference})

    action = SupportAction.objects.get(case=case)
    assert action.outcome == ActionOutcome.FAILED and someone_elses.reference in action.note
    assert ".." not in action.note
    assert Order.objects.get(reference=someone_elses.reference).status == OrderStatus.PAID
    assert stripe_client().retrieve(someone_elses.payment_id).amount_refunded == 0
    assert stripe_client().retrieve(theirs.payment_id).amount_refunded == 0


def test_it_shows_a_partial_refund_on_the_case_and_refunds_the_rest() -> None:
    attempt = settled(buy("jay@example.com"))
    stripe_client().refund(payment_id=attempt.payment_id, amount=10000, idempotency_key="dashboard-jay")
    reconcile_payments(actor="test", full=True)  # the refund's event never reached us
    case = Case.objects.get(email="jay@example.com")  # the partial refund's record: a person decides on access
    client = desk_client(staff_account())
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert f"$100 of $249 refunded on {timezone.now():%-d %b %Y}" in page

    client.post(f"/desk/cases/{case.pk}/act", {"action": "refund", "idempotency_key": "r1"})

    order = Order.objects.get(reference=attempt.reference)
    assert (order.status, order.refunded_cents) == (OrderStatus.REFUNDED, 24900)
    assert stripe_client().retrieve(attempt.payment_id).amount_refunded == order.refunded_cents
    assert SupportAction.objects.get(action="refund").outcome == ActionOutcome.DONE
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert f"$249 of $249 refunded on {timezone.now():%-d %b %Y}" in page


def test_it_pays_back_a_refund_our_books_promised_and_the_processor_never_made() -> None:
    attempt = settled(buy("kay@example.com"))
    Order.objects.filter(reference=attempt.reference).update(status=OrderStatus.REFUNDED, refunded_cents=24900,
                                                             refunded_at=timezone.now())
    reconcile_payments(actor="test", full=True)
    case = Case.objects.get(email="kay@example.com")
    assert case.harm == Harm.MONEY
    client = desk_client(staff_account())
    assert suggested_action(html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())) == "refund_payment"

    client.post(f"/desk/cases/{case.pk}/act", {"action": "refund_payment", "idempotency_key": "r1"})

    assert SupportAction.objects.get().outcome == ActionOutcome.DONE
    assert stripe_client().retrieve(attempt.payment_id).amount_refunded == 24900 == \
        Order.objects.get(reference=attempt.reference).refunded_cents
    assert AttentionRecord.objects.get(kind=AttentionKind.REFUND_UNCONFIRMED).resolved_at is not None


def test_it_gives_no_access_for_a_charge_refunded_before_any_order() -> None:
    attempt = _charged_without_access("lee@example.com")
    stripe_client().refund(payment_id=attempt.payment_id, amount=24900, idempotency_key="dashboard-lee")
    attention.raise_once(
        kind=AttentionKind.PAYMENT_UNRESOLVED, harm=Harm.MONEY, cause="", subject=f"checkout:{attempt.reference}",
        summary="unsettled", detail={"reference": attempt.reference, "email": "lee@example.com"})
    case = Case.objects.get()

    desk_client(staff_account()).post(f"/desk/cases/{case.pk}/act",
                                      {"action": "fulfil_from_charge", "idempotency_key": "f1"})

    action = SupportAction.objects.get()
    assert action.outcome == ActionOutcome.FAILED and "refunded in full" in action.note
    order = Order.objects.get(reference=attempt.reference)
    assert (order.status, order.refunded_cents) == (OrderStatus.REFUNDED, 24900)
    assert not Entitlement.objects.filter(order=order).exists()
    assert AttentionRecord.objects.get().resolved_at is not None
