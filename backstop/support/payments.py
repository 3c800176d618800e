"""The desk's view of money, through billing: what was paid, what access it gave, and the actions on it.

Support never writes billing's tables; every change goes through billing's service functions, which make a
fulfilment or a refund happen once even when the checkout, a webhook and reconciliation race with a click here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from backstop.attention.models import AttentionKind, AttentionRecord
from backstop.billing import credits as billing_credits
from backstop.billing import fulfilment as billing_fulfilment
from backstop.billing import processor_status
from backstop.billing import refunds as billing_refunds
from backstop.billing.models import (
    NO_PAYMENT,
    AttemptState,
    FulfilledBy,
    KnownRefund,
    LearntFrom,
    Order,
    OrderStatus,
    ProcessorStatus,
    PurchaseAttempt,
)
from backstop.billing.outcome import money
from backstop.billing.providers import ProcessorPayment, RequestRefused, payment_processor
from backstop.lib.email_identity import email_key
from backstop.lib.errors import ProviderError
from backstop.support import messages, triage
from backstop.support.models import Signal

# Charged at the processor, no order yet: the money is in, the access is not.
PAID_WITHOUT_ORDER = (AttemptState.CHARGED, AttemptState.IN_DOUBT)
# The processor was asked to charge and we never learnt its answer: the money may be in (a crash after the charge).
MAYBE_PAID = (AttemptState.CHARGING, AttemptState.IN_DOUBT)
# A checkout reference as a customer types it: any case, a dash, a space or nothing between the groups, and
# Crockford's look-alikes (O for 0, I or L for 1) read as the digits they stand for.
QUOTED_REFERENCE = re.compile(r"\bBK[-\s]?([0-9A-Z]{5})[-\s]?([0-9A-Z]{5})\b", re.IGNORECASE)
QUOTED_PAYMENT_ID = re.compile(r"\bpi_[A-Za-z0-9]{8,}\b")
_LOOK_ALIKES = str.maketrans("OIL", "011")
# Signals naming a payment the desk can give back: taken without access, matching no checkout, or one our books call
# refunded while the processor does not.
REFUNDABLE_KINDS = triage.MONEY_KINDS | {AttentionKind.REFUND_UNCONFIRMED.value}


class PaymentActionFailed(Exception):
    """Billing refused or could not finish a money action; the text says why."""


@dataclass(frozen=True)
class PaidWithoutAccess:
    payment_id: str
    reference: str
    amount_text: str
    paid_at: dt.datetime


@dataclass(frozen=True)
class PaymentRow:
    """One payment as the processor reported it and as our books have it, side by side on the case page."""

    reference: str
    payment_id: str
    amount_text: str
    paid_at: dt.datetime | None
    processor_status: str
    our_status: str
    access: str
    # "$100 of $249 refunded on 3 Mar 2025", empty when nothing was refunded.
    refunded: str = ""


def quoted_identifiers(*texts: str) -> tuple[list[str], list[str]]:
    """The checkout references and the processor's payment ids quoted in what the customer wrote, in order."""
    references: dict[str, None] = {}
    payment_ids: dict[str, None] = {}
    for text in texts:
        for first, second in QUOTED_REFERENCE.findall(text):
            references[f"BK-{first.upper().translate(_LOOK_ALIKES)}-{second.upper().translate(_LOOK_ALIKES)}"] = None
        payment_ids.update(dict.fromkeys(QUOTED_PAYMENT_ID.findall(text)))
    return list(references), list(payment_ids)


def _quoted(references: list[str], payment_ids: list[str]) -> Q:
    """Checkouts a customer named: by reference, or by a payment id we recorded for it in any of our books."""
    return (Q(reference__in=references) | Q(payment_id__in=payment_ids) | Q(order__payment_id__in=payment_ids)
            | Q(processor_statuses__payment_id__in=payment_ids))


def _customer_attempts(*, email: str, account: Any, reference: str = "", text: str = "") -> Any:
    """The customer's checkouts (by their email key, whichever form of the address they typed, or their account)
    and any they named by reference or payment id."""
    attempts = PurchaseAttempt.objects.of_customer(email=email, account=account)
    if reference or text:
        references, payment_ids = quoted_identifiers(reference, text)
        if reference.strip() and not references:
            references = [reference.strip().upper()]
        attempts = PurchaseAttempt.objects.filter(
            Q(pk__in=attempts.values("pk")) | Q(pk__in=PurchaseAttempt.objects.filter(
                _quoted(references, payment_ids)).values("pk")))
    return attempts


def _money_records(email: str) -> Any:
    """Money records about this customer, open or answered: joined to a case of their email key, or naming the
    address."""
    named = Q(detail__email=email) | Q(detail__email=email.lower())
    if key := email_key(email):
        named |= Q(signals__case__customer_key=key)
    return AttentionRecord.objects.filter(kind__in=triage.MONEY_KINDS).filter(named).distinct()


def _open_money_records(email: str) -> Any:
    return _money_records(email).filter(resolved_at__isnull=True)


def _refunded_text(refunded_cents: int, amount_cents: int, currency: str, when: dt.datetime | None) -> str:
    if not refunded_cents:
        return ""
    return messages.PAYMENT_REFUNDED.format(refunded=money(refunded_cents, currency),
                                            amount=money(amount_cents, currency),
                                            on=f"{when:%-d %b %Y}" if when else "")


def find_paid_without_access(*, email: str, account: Any, reference: str) -> PaidWithoutAccess | None:
    """A charge of this customer's (or under their reference) that gave them nothing, newest first."""
    attempt = (_customer_attempts(email=email, account=account, reference=reference)
               .filter(state__in=PAID_WITHOUT_ORDER).exclude(payment_id="").order_by("-id").first())
    if attempt is not None and not Order.objects.filter(attempt=attempt).exists():
        return PaidWithoutAccess(payment_id=attempt.payment_id, reference=attempt.reference,
                                 amount_text=money(attempt.amount_cents, attempt.currency),
                                 paid_at=attempt.charged_at or attempt.created_at)
    record = _open_money_records(email).order_by("-id").first()
    if record is not None and record.detail.get("payment_id"):
        created = record.detail.get("created_at")
        return PaidWithoutAccess(
            payment_id=str(record.detail["payment_id"]), reference="",
            amount_text=str(record.detail.get("amount") or ""),
            paid_at=dt.datetime.fromisoformat(created) if created else record.created_at)
    return None


# --- The checkout a customer's message is about --------------------------------------------------------------

# Checkouts without an order whose money may be in, or whose charge may still be under way: settle them first.
UNSETTLED = (AttemptState.RECORDED, AttemptState.CHARGING, AttemptState.CHARGED, AttemptState.IN_DOUBT)
# At most this many payment ids quoted in one message are looked up at the processor.
MAX_QUOTED_LOOKUPS = 3


@dataclass(frozen=True)
class PurchaseInQuestion:
    attempt: PurchaseAttempt
    # The customer quoted its reference or payment id (rather than our finding it by their address or account).
    named: bool

    @property
    def unsettled(self) -> bool:
        return _unsettled(self.attempt)


def _unsettled(attempt: PurchaseAttempt) -> bool:
    """No order yet, and the money may be in or the charge still under way (the order is read with the attempt)."""
    return attempt.state in UNSETTLED and getattr(attempt, "order", None) is None


def purchase_in_question(*, email: str, account: Any, text: str, reference: str) -> PurchaseInQuestion | None:
    """The checkout a customer's message is most likely about, found by the references and payment ids they quoted
    and by their email key or account: an unsettled one they named, then any unsettled one of theirs (money may be
    in without access), then one they named, then their newest.

    A payment id they quote that none of our books knows is looked up at the processor (its metadata names our
    checkout), and what it says is recorded.
    """
    references, payment_ids = quoted_identifiers(reference, text)
    if reference.strip() and not references and not payment_ids:
        references = [reference.strip().upper()]
    _look_up_unknown_payments(payment_ids)
    named = list(PurchaseAttempt.objects.filter(_quoted(references, payment_ids)).distinct()
                 .select_related("order").order_by("-id")[:20])
    theirs = list(PurchaseAttempt.objects.of_customer(email=email, account=account).select_related("order")
                  .order_by("-id")[:50])
    for candidates, by_name, unsettled_only in ((named, True, True), (theirs, False, True), (named, True, False),
                                                (theirs, False, False)):
        for attempt in candidates:
            if not unsettled_only or _unsettled(attempt):
                return PurchaseInQuestion(attempt=attempt, named=by_name)
    return None


def _look_up_unknown_payments(payment_ids: list[str]) -> None:
    """Payment ids no book of ours knows: ask the processor which checkout they belong to (recorded with the answer).
    A processor that does not answer leaves them unknown: the answer to the customer does without them."""
    known = set(ProcessorStatus.objects.filter(payment_id__in=payment_ids).values_list("payment_id", flat=True))
    known |= set(PurchaseAttempt.objects.filter(payment_id__in=payment_ids).values_list("payment_id", flat=True))
    unknown = [p for p in payment_ids if p not in known][:MAX_QUOTED_LOOKUPS]
    if not unknown:
        return
    try:
        processor_status.check_with_processor(attempts=[], payment_ids=unknown)
    except ProviderError:
        pass


def paid_by(attempt: PurchaseAttempt) -> str:
    """The payment we know took the checkout's money (the charge's answer said so, or the processor has said so
    since), or "" when we do not know that any did."""
    if attempt.state in (AttemptState.CHARGED, AttemptState.FULFILLED) and attempt.payment_id:
        return attempt.payment_id
    return str(ProcessorStatus.objects.filter(attempt=attempt, status="succeeded").exclude(payment_id="")
               .values_list("payment_id", flat=True).order_by("-as_of").first() or "")


def processor_says(status: ProcessorStatus | None, *, attempt: PurchaseAttempt | None = None) -> str:
    """The processor's own status as we last heard it, and as of when; never a guess from our own state."""
    if status is None:
        asked = attempt is None or attempt.charge_calls > 0 or bool(attempt.payment_id)
        return messages.PROCESSOR_NOT_HEARD if asked else messages.PROCESSOR_NOT_ASKED
    said = _status_words(status.status, status.amount_refunded_cents, status.currency)
    return messages.PROCESSOR_SAYS.format(status=said, as_of=_moment(status.as_of),
                                          source=status.get_learnt_from_display())


def _moment(moment: dt.datetime) -> str:
    return f"{moment:%H:%M:%S} UTC, {moment:%-d %b %Y}"


def payments_for(*, email: str, account: Any) -> list[PaymentRow]:
    rows = []
    attempts = list(_customer_attempts(email=email, account=account).exclude(state=AttemptState.RECORDED)
                    .order_by("-id").select_related("order__entitlement")[:50])
    records = list(_money_records(email).order_by("-id")[:20])
    heard = processor_status.latest_statuses(
        attempt_ids=[a.pk for a in attempts],
        payment_ids=[a.payment_id for a in attempts] + [str(r.detail.get("payment_id", "")) for r in records])
    for attempt in attempts:
        order = getattr(attempt, "order", None)
        entitlement = getattr(order, "entitlement", None) if order is not None else None
        if order is None:
            # Our own state, which the processor column used to borrow: "charge under way" was ours, not its.
            ours = ("no order yet" if attempt.state in PAID_WITHOUT_ORDER
                    else f"no order ({attempt.get_state_display()})")
            access = "none"
        else:
            ours = f"order {order.reference}: {order.get_status_display()} ({order.get_fulfilled_by_display()})"
            access = (f"{entitlement.get_state_display()} until {entitlement.ends_at:%-d %b %Y}"
                      if entitlement is not None else "none")
        rows.append(PaymentRow(
            reference=attempt.reference, payment_id=attempt.payment_id,
            amount_text=money(attempt.amount_cents, attempt.currency), paid_at=attempt.charged_at,
            processor_status=processor_says(
                heard.get(attempt.payment_id) or heard.get(f"attempt:{attempt.pk}"), attempt=attempt),
            our_status=ours, access=access,
            refunded=_refunded_text(order.refunded_cents, order.amount_cents, order.currency, order.refunded_at)
            if order is not None else ""))
    # Payments no checkout of ours explains: open, or given back from the desk (then their refund is the news).
    refunded = {known.payment_id: known for known in KnownRefund.objects.filter(
        payment_id__in=[str(record.detail.get("payment_id", "")) for record in records])}
    for record in records:
        detail = record.detail
        payment_id = str(detail.get("payment_id", ""))
        known = refunded.get(payment_id)
        if record.resolved_at is not None and known is None:
            continue
        said = processor_says(heard.get(payment_id))
        if payment_id not in heard and detail.get("status"):
            # The status in the processor's answer that billing raised the record from, as of that moment.
            said = messages.PROCESSOR_SAYS.format(status=detail["status"], as_of=_moment(record.created_at),
                                                  source=messages.PROCESSOR_FROM_RECORD)
        rows.append(PaymentRow(
            reference="", payment_id=payment_id, amount_text=str(detail.get("amount", "")),
            paid_at=record.created_at, processor_status=said, our_status=record.get_kind_display(), access="none",
            refunded=_refunded_text(known.amount_refunded, int(detail.get("amount_cents") or 0),
                                    str(detail.get("currency") or "usd"), known.updated_at) if known else ""))
    return rows


def snapshot(*, email: str, account: Any) -> dict[str, Any]:
    attempts = _customer_attempts(email=email, account=account).exclude(state=AttemptState.RECORDED)
    orders = dict(Order.objects.filter(attempt__in=attempts).values_list("reference", "status"))
    unpaid = list(attempts.filter(state__in=PAID_WITHOUT_ORDER).values_list("reference", flat=True))
    return {"orders": orders, "charged_without_order": unpaid} if orders or unpaid else {}


def is_about_money(case: Any) -> bool:
    """Whether the case has an open signal about a payment (one taken without access, or one matching no checkout).

    ``case.kinds`` is the kinds of its open signals, kept by every change to them (``cases.refresh_case``)."""
    return bool(set(case.kinds) & triage.MONEY_KINDS)


@dataclass(frozen=True)
class CheckoutFacts:
    """What the desk's money actions ask of a customer's checkouts, from one read of them (four questions were four
    queries, each compiling the customer's checkouts as a subquery, on every case page)."""

    charge_without_order: bool
    payment_at_processor: bool
    paid_order: bool


def checkout_facts(*, email: str, account: Any) -> CheckoutFacts:
    rows = list(_customer_attempts(email=email, account=account)
                .values_list("pk", "state", "payment_id", "charge_calls", "order__id", "order__status"))
    without_order = [(pk, state, payment_id) for pk, state, payment_id, _, order_id, _ in rows if order_id is None]
    # Charged with no order, as our books say; or a checkout whose charge never got its answer and that the processor
    # has told us succeeded (asked only when there is one).
    maybe_paid = [pk for pk, state, _ in without_order if state in MAYBE_PAID]
    charge_without_order = (
        any(state in PAID_WITHOUT_ORDER and payment_id for _, state, payment_id in without_order)
        or (bool(maybe_paid) and ProcessorStatus.objects.filter(attempt__in=maybe_paid, status="succeeded").exists()))
    return CheckoutFacts(
        charge_without_order=charge_without_order,
        # Any checkout that reached the processor: there is something to ask it about.
        payment_at_processor=any(charge_calls > 0 or payment_id for _, _, payment_id, charge_calls, _, _ in rows),
        paid_order=any(status == OrderStatus.PAID for *_, order_id, status in rows if order_id is not None))


def names_refundable_payment(case: Any) -> bool:
    """Whether an open signal of the case is about a payment the desk can refund without an order (refund_payment
    also applies to a charge without an order, as our books say: ``CheckoutFacts.charge_without_order``)."""
    return bool(set(case.kinds) & REFUNDABLE_KINDS)


def has_active_plan(*, email: str, account: Any) -> bool:
    """Whether the customer has a plan running, the one a credit's days are added to."""
    return billing_credits.active_plan(email=email, account=account) is not None


def fulfilled_payment_ids(payment_ids: list[str]) -> set[str]:
    return set(Order.objects.filter(payment_id__in=[p for p in payment_ids if p]).values_list("payment_id", flat=True))


def _actor(staff: Any) -> str:
    return f"support:{staff.email}" if staff is not None else "support:automation"


def _payment_of_case(
    case: Any, *, kinds: frozenset[str] = triage.MONEY_KINDS
) -> tuple[str, PurchaseAttempt | None]:
    """The payment the case is about: named by one of its signals of ``kinds`` (directly or by checkout), or the
    customer's latest charge that has no order, or their latest checkout whose charge never got its answer (its
    payment is then found at the processor by the checkout's id)."""
    for detail in Signal.objects.filter(case=case, kind__in=kinds).order_by("-id").values_list("detail", flat=True):
        if detail.get("payment_id"):
            return str(detail["payment_id"]), None
        attempt = PurchaseAttempt.objects.by_reference(str(detail.get("reference") or "")) \
            if detail.get("reference") else None
        if attempt is not None and (attempt.payment_id or attempt.state in MAYBE_PAID):
            return attempt.payment_id, attempt
    attempts = _customer_attempts(email=case.email, account=case.account).filter(order__isnull=True)
    attempt = attempts.filter(state__in=PAID_WITHOUT_ORDER).exclude(payment_id="").order_by("-id").first()
    if attempt is None:
        attempt = attempts.filter(state__in=MAYBE_PAID, payment_id="", charge_calls__gt=0).order_by("-id").first()
    return (attempt.payment_id, attempt) if attempt is not None else ("", None)


def _named_payment(named: str, case: Any) -> tuple[str, PurchaseAttempt | None]:
    """What staff typed (a payment id or a checkout reference), or else the payment the case is about."""
    references, payment_ids = quoted_identifiers(named)
    if references:
        attempt = PurchaseAttempt.objects.by_reference(references[0])
        if attempt is None:
            raise PaymentActionFailed(messages.NO_SUCH_CHECKOUT.format(reference=references[0]))
        return attempt.payment_id, attempt
    if named.strip():
        return (payment_ids[0] if payment_ids else named.strip()), None
    return _payment_of_case(case)


def _look_up(payment_id: str, attempt: PurchaseAttempt | None) -> ProcessorPayment | None:
    """The payment at the processor (by its id, else by the checkout's), its answer recorded for the desk."""
    processor = payment_processor()
    if payment_id:
        payment = processor_status.retrieve_or_none(processor, payment_id)
    else:
        assert attempt is not None
        payment = processor_status.find_payment_of_attempt(attempt, processor)
    attempt_id = attempt.pk if attempt is not None else None
    if payment is None:
        processor_status.record_no_payment(attempt_id=attempt_id, payment_id=payment_id, learnt_from=LearntFrom.LOOKUP)
    else:
        processor_status.record_payment(payment=payment, learnt_from=LearntFrom.LOOKUP, attempt_id=attempt_id)
    return payment


def _customer_payment_ids(case: Any) -> set[str]:
    """Payments that are this customer's: named by the case's signals, or by their checkouts and orders."""
    named = {str(detail.get("payment_id") or "") for detail in
             Signal.objects.filter(case=case).values_list("detail", flat=True) if isinstance(detail, dict)}
    attempts = _customer_attempts(email=case.email, account=case.account)
    named |= set(attempts.exclude(payment_id="").values_list("payment_id", flat=True))
    named |= set(Order.objects.filter(attempt__in=attempts).values_list("payment_id", flat=True))
    return named - {""}


def _resolve_money_records(case: Any, *, payment_id: str, how: str,
                           kinds: frozenset[str] = triage.MONEY_KINDS) -> None:
    """The records that brought this money problem to the desk are answered."""
    AttentionRecord.objects.filter(resolved_at__isnull=True, kind__in=kinds).filter(
        Q(signals__case=case) | Q(detail__payment_id=payment_id)).update(resolved_at=timezone.now(), resolution=how)


def fulfil_from_charge(*, case: Any, staff: Any, payment_id: str) -> bool:
    """Give access for a payment already taken: no new charge. ``payment_id`` may also be a checkout reference (its
    payment is found at the processor even when the charge's answer never reached us); blank: the payment the case
    is about. True when this call created the order."""
    payment_id, attempt = _named_payment(payment_id, case)
    if not payment_id and attempt is None:
        raise PaymentActionFailed(messages.NO_CHARGE_FOUND)
    try:
        payment = _look_up(payment_id, attempt)
    except ProviderError as error:
        raise PaymentActionFailed(str(error)) from error
    if payment is None and payment_id:
        raise PaymentActionFailed(messages.NO_SUCH_PAYMENT.format(payment_id=payment_id))
    if payment is None:
        assert attempt is not None
        raise PaymentActionFailed(messages.NO_PAYMENT_FOR_CHECKOUT.format(reference=attempt.reference))
    payment_id = payment.id
    if not payment.succeeded:
        raise PaymentActionFailed(messages.PAYMENT_NOT_SUCCEEDED.format(status=payment.status))
    try:
        result = billing_fulfilment.fulfil_payment(payment=payment, source=FulfilledBy.SUPPORT, actor=_actor(staff),
                                                   attempt_id=attempt.pk if attempt is not None else None)
    except billing_fulfilment.UnmatchedPayment as error:
        raise PaymentActionFailed(messages.PAYMENT_MATCHES_NO_CHECKOUT) from error
    if result.order is None or result.problem:
        raise PaymentActionFailed(result.problem or messages.NO_CHARGE_FOUND)
    if result.order.status == OrderStatus.REFUNDED:
        # Refunded in full before any order: billing recorded the order refunded and told the buyer; no access to give.
        _resolve_money_records(case, payment_id=payment_id, how="refunded at the processor before any order")
        raise PaymentActionFailed(messages.PAYMENT_WAS_REFUNDED.format(reference=result.order.reference))
    _resolve_money_records(case, payment_id=payment_id, how=f"fulfilled from charge by {_actor(staff)}")
    return result.created


def refund(*, case: Any, staff: Any, reference: str, reason: str) -> bool:
    """Refund the order in full through billing (once, whatever the number of clicks). True when it changed."""
    if not reference.strip():
        # Their latest order: still paid, it is refunded; refunded already, the click changes nothing.
        order = (Order.objects.filter(attempt__in=_customer_attempts(email=case.email, account=case.account))
                 .order_by("-id").first())
        if order is None:
            raise PaymentActionFailed(messages.REFUND_NEEDS_ORDER)
        reference = order.reference
    before = Order.objects.filter(reference=reference.strip().upper()).values_list("status", flat=True).first()
    if before is None:
        raise PaymentActionFailed(messages.NO_SUCH_ORDER.format(reference=reference))
    if not Order.objects.filter(reference=reference.strip().upper(),
                                attempt__in=_customer_attempts(email=case.email, account=case.account)).exists():
        # A typed reference must be this customer's: the desk never refunds someone else's order from this case.
        raise PaymentActionFailed(messages.NOT_THIS_CUSTOMERS_ORDER.format(reference=reference.strip().upper()))
    try:
        order = billing_refunds.refund_order(reference=reference, actor=_actor(staff))
    except (RequestRefused, ProviderError, billing_refunds.NotRefundable) as error:
        raise PaymentActionFailed(str(error)) from error
    _resolve_money_records(case, payment_id=order.payment_id, how=f"refunded by {_actor(staff)}: {reason}"[:200])
    return before == OrderStatus.PAID and order.status == OrderStatus.REFUNDED


def refund_payment(*, case: Any, staff: Any, payment_id: str, reason: str) -> bool:
    """Give back what is left of a payment of this customer's, order or not (e.g. one no checkout explains), through
    billing: once per state of the payment, audited. True when this call moved money."""
    payment_id = payment_id.strip() or _payment_of_case(case, kinds=REFUNDABLE_KINDS)[0]
    if not payment_id:
        raise PaymentActionFailed(messages.NO_PAYMENT_TO_REFUND)
    if payment_id not in _customer_payment_ids(case):
        # A typed id must be this customer's: the desk never returns someone else's payment from this case.
        raise PaymentActionFailed(messages.NOT_THIS_CUSTOMERS_PAYMENT.format(payment_id=payment_id))
    try:
        result = billing_refunds.refund_payment(payment_id=payment_id, actor=_actor(staff))
    except (ProviderError, billing_refunds.NotRefundable) as error:
        raise PaymentActionFailed(str(error)) from error
    _resolve_money_records(case, payment_id=payment_id, how=f"refunded by {_actor(staff)}: {reason}"[:200],
                           kinds=REFUNDABLE_KINDS)
    return result.refunded_now


def grant_credit(*, case: Any, staff: Any, days: int, reason: str, key: str) -> bool:
    """Add days to the customer's plan through billing, once per action key. True when this call granted it."""
    try:
        return billing_credits.grant_credit(email=case.email, account=case.account, days=days, reason=reason,
                                    actor=_actor(staff), key=key)
    except billing_credits.NotCreditable as error:
        raise PaymentActionFailed(str(error)) from error


def check_with_processor(*, case: Any, named: str) -> str:
    """Ask the processor now about the customer's payments (or the one named: a payment id or a checkout reference)
    and record each answer for the desk; returns the answers in words, or "" when nothing reached the processor."""
    references, payment_ids = quoted_identifiers(named)
    if named.strip() and not references and not payment_ids:
        payment_ids = [named.strip()]
    if references or payment_ids:
        attempts = list(PurchaseAttempt.objects.filter(reference__in=references))
    else:
        attempts = list(_customer_attempts(email=case.email, account=case.account)
                        .filter(Q(charge_calls__gt=0) | ~Q(payment_id="")).order_by("-id")[:20])
        payment_ids = [str(r.detail["payment_id"]) for r in _open_money_records(case.email)[:20]
                       if r.detail.get("payment_id")]
    if not attempts and not payment_ids:
        return ""
    try:
        checked = processor_status.check_with_processor(attempts=attempts, payment_ids=payment_ids)
    except ProviderError as error:
        raise PaymentActionFailed(str(error)) from error
    return "; ".join(messages.PROCESSOR_CHECKED.format(
        what=answer.reference or answer.payment_id,
        status=_status_words(answer.status, answer.amount_refunded, answer.currency)) for answer in checked)


def _status_words(status: str, refunded: int, currency: str) -> str:
    said = messages.PROCESSOR_NO_PAYMENT if status == NO_PAYMENT else status
    return said + (messages.PROCESSOR_REFUNDED.format(amount=money(refunded, currency)) if refunded else "")
