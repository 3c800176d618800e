"""Support finds a buyer's purchase however they name it, answers from what it actually finds, and the desk shows the
processor's own status (as recorded, never asked on a page view) beside ours. Against a real fakepay process."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from backstop.billing.models import (
    NOT_CHARGED,
    AttemptState,
    Order,
    OrderStatus,
    ProcessorStatus,
    PurchaseAttempt,
)
from backstop.billing.reconcile import reconcile_payments
from backstop.billing.tests.conftest import annual_plan, buy, events_for, processor, settled, signed, stripe_client  # noqa: F401
from backstop.support.models import ActionOutcome, Case, Contact, Finding, SupportAction
from backstop.support.payments import quoted_identifiers
from backstop.support.tests.helpers import contacts_answered, desk_client, staff_account

pytestmark = pytest.mark.usefixtures("engine_db", "processor")


def _crashed_after_the_charge(email: str, *, charged: bool = True) -> PurchaseAttempt:
    """What a checkout whose process died right after asking for the charge leaves: the attempt `charging`, its
    payment id never recorded; the processor took the money (or, with ``charged=False``, never got the request)."""
    attempt = PurchaseAttempt.objects.create(
        idempotency_key=f"crash-{email}", request_fingerprint="x", product=annual_plan(), amount_cents=24900,
        currency="usd", email=email, payment_method="pm_card_visa", state=AttemptState.CHARGING, charge_calls=1,
        charge_started_at=timezone.now())
    if charged:
        stripe_client().charge(
            amount=24900, currency="usd", payment_method="pm_card_visa", email=email,
            description="Backstop annual plan", idempotency_key=attempt.processor_key,
            metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference, "email": email})
    return attempt


def _write_in(email: str, message: str, reference: str = "") -> Contact:
    answer = Client().post("/api/support/contact", {"email": email, "message": message, "reference": reference},
                           content_type="application/json")
    assert answer.status_code == 202, answer.content
    contacts_answered()
    return Contact.objects.select_related("acknowledgement").get(our_reference=answer.json()["reference"])


def _told(contact: Contact) -> str:
    """What the customer was emailed in answer."""
    assert contact.acknowledgement is not None
    return contact.acknowledgement.text


def _payments_row(client: Client, case: Case, reference: str) -> str:
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    row = re.search(rf"<tr[^>]*><td>{reference}</td>.*?</tr>", page, re.DOTALL)
    assert row, page
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(0)))


def test_it_reads_references_and_payment_ids_as_customers_type_them() -> None:
    references, payment_ids = quoted_identifiers(
        "my order bk-7h2kq-9xo1l, and BK 7H2KQ 9X0L1 again", "receipt: pi_3NzAbCdEfGh12345, ref BK7H2KQ9X011")
    assert references == ["BK-7H2KQ-9X011"]
    assert payment_ids == ["pi_3NzAbCdEfGh12345"]


def test_it_finds_a_crashed_checkout_by_a_payment_id_quoted_from_another_address() -> None:
    attempt = _crashed_after_the_charge("ann@work.example")
    [(payment_id,)] = processor_payments()

    contact = _write_in("ann@home.example", f"I was charged ({payment_id}) but have nothing. Wrote from home.")

    assert contact.finding == Finding.PAYMENT_FULFILLED and not contact.needs_human
    order = Order.objects.get()
    assert (order.reference, order.payment_id, order.email) == (attempt.reference, payment_id, "ann@work.example")
    assert "We see your $249 payment from" in _told(contact)
    assert "We don't have an account" not in _told(contact)
    assert len(processor_payments()) == 1


def processor_payments() -> list[tuple[str]]:
    return [(payment.id,) for page in stripe_client().list_pages(created_gte=None, created_lte=None)
            for payment in page]


def test_it_finds_a_paid_buyer_without_an_account_by_their_email_key_and_says_what_they_have() -> None:
    attempt = settled(buy("Hal@Bücher.example"))
    order = Order.objects.select_related("entitlement").get(attempt=attempt)

    contact = _write_in("hal@xn--bcher-kva.example", "Did my payment go through?")

    assert contact.finding == Finding.PAYMENT_COMPLETE and contact.needs_human  # a person still reads the question
    text = _told(contact)
    assert "We don't have an account" not in text
    assert (f"We see your $249 payment from {attempt.charged_at:%-d %b %Y} (order {attempt.reference}). It went "
            f"through once and your order is complete: Backstop annual plan is active until "
            f"{order.entitlement.ends_at:%-d %b %Y}.") in text


def test_it_says_a_checkout_is_being_settled_when_the_processor_has_no_payment_for_it_yet() -> None:
    attempt = _crashed_after_the_charge("bob@example.com", charged=False)

    contact = _write_in("bob@example.com", "The page hung while paying, was I charged?", reference=attempt.reference)

    assert contact.finding == Finding.PAYMENT_BEING_CHECKED and not contact.needs_human
    assert (f"We see your checkout {attempt.reference} for $249 from {attempt.created_at:%-d %b %Y}. It hasn't "
            "finished on our side yet") in _told(contact)
    assert "Either way we'll email you within 15 minutes." in _told(contact)
    assert not Order.objects.exists()
    status = ProcessorStatus.objects.get()
    assert (status.attempt_id, status.payment_id, status.status) == (attempt.pk, "", "no_payment")


def test_it_says_the_same_when_the_processor_does_not_answer(processor: Any) -> None:  # noqa: F811
    attempt = _crashed_after_the_charge("cy@example.com")
    processor.set_fault("error")

    contact = _write_in("cy@example.com", f"Charged for {attempt.reference}?")

    assert contact.finding == Finding.PAYMENT_BEING_CHECKED
    assert not Order.objects.exists() and not ProcessorStatus.objects.exists()


def test_it_tells_a_buyer_their_refunded_or_uncharged_purchase_as_it_is() -> None:
    refunded = settled(buy("dan@example.com"))
    Order.objects.filter(attempt=refunded).update(status=OrderStatus.REFUNDED, refunded_at=timezone.now())
    declined = settled(buy("eve@example.com", card="pm_card_chargeDeclined"), AttemptState.DECLINED)
    never = PurchaseAttempt.objects.create(
        idempotency_key="never", request_fingerprint="x", product=annual_plan(), amount_cents=24900, currency="usd",
        email="fay@example.com", payment_method="pm_card_visa", state=AttemptState.DECLINED, decline_code=NOT_CHARGED)

    told = {email: _write_in(email, f"What happened to {ref}?") for email, ref in (
        ("dan@example.com", refunded.reference), ("eve@example.com", declined.reference),
        ("fay@example.com", never.reference))}

    assert told["dan@example.com"].finding == Finding.PAYMENT_REFUNDED
    assert "It was refunded in full on" in _told(told["dan@example.com"])
    assert told["eve@example.com"].finding == Finding.PAYMENT_NOT_CHARGED
    assert "your card was not charged (the card was declined)" in _told(told["eve@example.com"])
    assert ("your card was not charged (our payment processor confirmed that no payment was made)"
            in _told(told["fay@example.com"]))


def test_it_shows_the_processors_own_status_beside_ours_as_recorded_and_checks_it_on_request(
    processor: Any,  # noqa: F811
) -> None:
    paid = settled(buy("gus@example.com"))
    _write_in("gus@example.com", "A question about my plan")
    case = Case.objects.get()
    # Later, a second checkout of theirs crashes after the charge (nobody has written in about it).
    crashed = _crashed_after_the_charge("gus@example.com")
    client = desk_client(staff_account())

    # From the charge's own answer; ours beside it.
    row = _payments_row(client, case, paid.reference)
    assert re.search(r"processor: succeeded \(as of \d\d:\d\d:\d\d UTC, .* from the charge's answer\)", row), row
    assert f"order {paid.reference}: paid (the checkout itself)" in row
    # A checkout whose charge never got its answer: nothing heard, and nothing made up from our own state.
    row = _payments_row(client, case, crashed.reference)
    assert "processor: nothing heard yet; check with the processor now" in row

    # The page never asks the processor: with it hanging, the page answers at once.
    processor.set_fault("timeout")
    started = time.monotonic()
    assert client.get(f"/desk/cases/{case.pk}").status_code == 200
    assert time.monotonic() - started < 1.0
    processor.set_fault("ok")

    client.post(f"/desk/cases/{case.pk}/act", {"action": "check_processor", "idempotency_key": "k1"})
    action = SupportAction.objects.get(action="check_processor")
    assert action.outcome == ActionOutcome.DONE
    assert f"{crashed.reference}: succeeded" in action.note and f"{paid.reference}: succeeded" in action.note
    row = _payments_row(client, case, crashed.reference)
    assert "processor: succeeded (as of " in row and "from a lookup at the processor)" in row
    assert "no order (asking the processor to charge)" in row  # ours beside it, unchanged by what the processor said
    # Now that the processor has said it took the money, the desk offers to give access from it.
    page = html.unescape(client.get(f"/desk/cases/{case.pk}").content.decode())
    assert 'data-action="fulfil_from_charge"' in page


def test_it_keeps_the_newest_answer_when_webhooks_arrive_out_of_order_and_records_refunds(
    processor: Any,  # noqa: F811
) -> None:
    attempt = settled(buy("hal@example.com"))
    [succeeded] = events_for(processor, attempt.payment_id, "payment_intent.succeeded")
    client = desk_client(staff_account())
    _write_in("hal@example.com", "hi")
    case = Case.objects.get()
    ProcessorStatus.objects.all().delete()  # as if the charge's own answer had never been recorded

    def processing(event_id: str, created: int) -> dict[str, Any]:
        return {**succeeded, "id": event_id, "type": "payment_intent.processing", "created": created,
                "data": {"object": {**succeeded["data"]["object"], "status": "processing"}}}

    same_second = processing("evt_same_second_processing", succeeded["created"])
    late = processing("evt_late_processing", succeeded["created"] - 60)
    refunded_at = int(time.time()) + 5
    refund = {"id": "evt_refund", "object": "event", "type": "charge.refunded", "created": refunded_at,
              "data": {"object": {"id": "ch_1", "object": "charge", "payment_intent": attempt.payment_id,
                                  "amount": 24900, "currency": "usd", "amount_refunded": 24900}}}

    for event in (succeeded, same_second, late, refund):
        body, signature = signed(event)
        assert Client().post("/api/webhooks/payments", body, content_type="application/json",
                             HTTP_STRIPE_SIGNATURE=signature).status_code == 200

    status = ProcessorStatus.objects.get(payment_id=attempt.payment_id)
    assert (status.status, status.amount_refunded_cents, status.learnt_from) == ("succeeded", 24900, "webhook")
    assert status.as_of == dt.datetime.fromtimestamp(refunded_at, tz=dt.UTC)
    assert "processor: succeeded, $249 refunded (as of " in _payments_row(client, case, attempt.reference)


def test_it_records_what_reconciliation_learns_of_a_checkout() -> None:
    attempt = _crashed_after_the_charge("ivy@example.com")
    PurchaseAttempt.objects.filter(pk=attempt.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    reconcile_payments(actor="test")

    status = ProcessorStatus.objects.get(attempt=attempt)
    assert (status.status, status.learnt_from) == ("succeeded", "reconciliation")
    assert Order.objects.filter(attempt=attempt).exists()


def test_it_hands_a_paid_checkout_it_cannot_finish_to_a_person_and_says_so() -> None:
    attempt = _crashed_after_the_charge("jay@example.com", charged=False)
    # The processor took another amount than the checkout asked for: no order can be made from it automatically.
    payment = stripe_client().charge(
        amount=9900, currency="usd", payment_method="pm_card_visa", email="jay@example.com", description="odd",
        idempotency_key=attempt.processor_key, metadata={"attempt_id": str(attempt.pk), "reference": attempt.reference})

    contact = _write_in("jay@example.com", f"Charged for {attempt.reference}, no access")

    assert contact.finding == Finding.PAYMENT_NEEDS_HUMAN and contact.needs_human
    assert "That is our failure. You will not be charged again." in _told(contact)
    case = Case.objects.get()
    assert case.harm == 30 and "paid_without_access" in case.kinds
    assert case.signals.get(kind="paid_without_access").detail["payment_id"] == payment.id
    assert not Order.objects.exists()
