"""The customer writes in: the contact recorded on their case, what is wrong diagnosed (and fixed, where automation
can), and a truthful answer."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.models import STEP_PROVIDERS, Account, AccountState, SetupStep, StepName, StepStatus
from backstop.accounts.validation import clean_email, has_control_characters
from backstop.attention.models import Harm
from backstop.billing.models import NOT_CHARGED, Order, OrderStatus, PurchaseAttempt
from backstop.billing.outcome import money as money_text
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify
from backstop.ratelimits.services import Limit, check_rate_limit
from backstop.support import commitments, messages, payments, triage
from backstop.support.actions import run_action
from backstop.support.cases import _join, clear_signals, join_setup_delay, refresh_case
from backstop.support.models import ActionOutcome, Contact, Finding, Signal, SignalKind

CONTACT_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
MAX_CONTACT_LENGTH = 5000
MAX_REFERENCE_LENGTH = 100
EXCERPT_LENGTH = 160


@dataclass(frozen=True)
class ContactResult:
    contact: Contact
    public_reply: str
    private_reply: str

    def reply_for(self, viewer: Any) -> str:
        """The full answer only to the signed-in owner of the address; anyone else sees the public one."""
        signed_in = getattr(viewer, "is_authenticated", False)
        owner = signed_in and getattr(viewer, "email_key", None) == self.contact.customer_key
        return self.private_reply if owner else self.public_reply


def _clean_contact(email: str, text: str, reference: str) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    email = clean_email(email, errors)
    if "email" in errors:
        errors["email"] = messages.FIELD_EMAIL
    text = text.strip()
    if not text:
        errors["message"] = messages.FIELD_MESSAGE
    elif len(text) > MAX_CONTACT_LENGTH:
        errors["message"] = messages.FIELD_MESSAGE_TOO_LONG.format(limit=MAX_CONTACT_LENGTH)
    elif has_control_characters(text, allowed="\t\n\r"):
        errors["message"] = messages.FIELD_CONTROL_CHARACTERS
    reference = reference.strip()
    if len(reference) > MAX_REFERENCE_LENGTH:
        errors["reference"] = messages.FIELD_REFERENCE_TOO_LONG.format(limit=MAX_REFERENCE_LENGTH)
    elif has_control_characters(reference):
        errors["reference"] = messages.FIELD_CONTROL_CHARACTERS
    if errors:
        raise InvalidInput(errors)
    return email, text, reference


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_LENGTH else flat[: EXCERPT_LENGTH - 1] + "…"


def new_contact_reference() -> str:
    return "S-" + uuid.uuid4().hex[:8].upper()


def receive_contact(
    *, email: str, text: str, reference: str = "", ip: str, submission_key: str = ""
) -> ContactResult:
    """A customer wrote in: record it, look them up, fix what automation can fix now, and answer truthfully.

    ``submission_key`` (the id the page gave its form) makes a form sent again, its answer lost in an outage, the
    same contact: answered as the first time, recorded and acted on once.
    """
    email, text, reference = _clean_contact(email, text, reference)
    submission_key = submission_key.strip()[:80]
    if submission_key and (earlier := Contact.objects.filter(submission_key=submission_key).first()):
        return _answered_again(earlier)
    key = email_key(email)
    check_rate_limit(action="contact", limit=CONTACT_LIMIT, ip=ip, email_key=key)
    account = Account.objects.by_email_key(key)
    our_reference = new_contact_reference()
    try:
        signal, contact = _record_contact(email=email, key=key, account=account, text=text, reference=reference,
                                          our_reference=our_reference, submission_key=submission_key)
    except IntegrityError:  # the same form, sent twice at once: the other request recorded it
        if not submission_key:
            raise
        return _answered_again(Contact.objects.get(submission_key=submission_key))
    finding, facts = _diagnose_and_fix(contact=contact, account=account, reference=reference)
    return _acknowledge(contact=contact, signal=signal, account=account, finding=finding, facts=facts)


def _answered_again(contact: Contact) -> ContactResult:
    """A contact already recorded, answered as it was the first time (or, while that first request is still
    looking into it, with the sentence that does not depend on what it finds)."""
    public = contact.public_reply or messages.CONTACT_PUBLIC.format(reference=contact.our_reference)
    return ContactResult(contact=contact, public_reply=public, private_reply=contact.private_reply or public)


def _record_contact(
    *, email: str, key: str, account: Account | None, text: str, reference: str, our_reference: str,
    submission_key: str,
) -> tuple[Signal, Contact]:
    with transaction.atomic():
        signal = _join(
            customer_key=key, email=account.email if account else email, account=account, kind=SignalKind.CONTACT,
            cause="", harm=Harm.QUESTION, summary=messages.SIGNAL_CONTACT.format(excerpt=_excerpt(text)),
            detail={"reference": reference, "our_reference": our_reference}, source=f"contact:{our_reference}",
        )
        contact = Contact.objects.create(
            case_id=signal.case_id, email=email, customer_key=key, account=account, text=text, reference=reference,
            our_reference=our_reference, finding="", public_reply="", private_reply="", submission_key=submission_key,
        )
    return signal, contact


def _diagnose_and_fix(*, contact: Contact, account: Account | None, reference: str) -> tuple[str, dict[str, Any]]:
    # The purchase they name (a reference or a payment id in the form or anywhere in the message) or one of theirs:
    # a buyer need not have an account, and one whose checkout crashed after the charge has money in and no order.
    purchase = payments.purchase_in_question(email=contact.email, account=account, text=contact.text,
                                             reference=reference)
    if purchase is not None and purchase.unsettled:
        return _settle_purchase(contact=contact, attempt=purchase.attempt)
    money = payments.find_paid_without_access(email=contact.email, account=account, reference=reference)
    if money is not None:
        return _fix_payment(contact=contact, money=money)
    if account is not None and account.state == AccountState.DISABLED:
        return Finding.DISABLED, {}
    unfinished = list(SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE)) if account else []
    if unfinished:
        assert account is not None
        return _fix_setup(contact=contact, account=account, steps=unfinished)
    if purchase is not None and (account is None or purchase.named):
        return _tell_purchase(purchase.attempt)
    if account is None:
        return Finding.NO_ACCOUNT, {}
    return Finding.ALL_WELL, {}


def _what_failed(steps: list[SetupStep]) -> str:
    parts = []
    for step in steps:
        error = step.last_error or "no answer yet"
        parts.append(f"{messages.STEP_NAMES[step.name]}: {error}")
    return "; ".join(parts)


def _fix_setup(*, contact: Contact, account: Account, steps: list[SetupStep]) -> tuple[str, dict[str, Any]]:
    failing = triage.failing_providers()
    down = [s for s in steps if triage.provider_is_down(failing, STEP_PROVIDERS[s.name])]
    facts: dict[str, Any] = {"what": _what_failed(steps)}
    if down and all(s.name == StepName.WELCOME_EMAIL for s in steps) and account.phone:
        return _send_code_instead(contact=contact, account=account, steps=down, error=failing["email"].last_error)
    if down:
        breaker = failing[STEP_PROVIDERS[down[0].name]]
        since = breaker.opened_at or breaker.updated_at
        facts.update(provider=messages.provider_name(breaker.provider), since=f"{since:%H:%M} UTC on {since:%-d %b}")
        for step in down:
            join_setup_delay(step=step, account=account)
        return Finding.SETUP_WAITING, facts
    started = timezone.now()
    if not any(_had_failed(s) for s in steps):
        # Setup is simply still under way (they wrote seconds after signing up): nothing failed, so nothing to fix or
        # own up to. Their message is a question for a person, with what automation saw attached.
        return _setup_under_way(account=account, steps=steps, since=started)
    run_action(case_id=contact.case_id, staff=None, action="retry_setup", key=f"contact:{contact.our_reference}:retry",
               params={"why": "the customer wrote in"})
    outcome = _wait_for_setup(account, [s.name for s in steps], since=started)
    if outcome == "done":
        now = ("your workspace is ready and you can sign in" if any(s.name == StepName.WORKSPACE for s in steps)
               else "our welcome email is on its way to you")
        return Finding.SETUP_FIXED, {**facts, "now": now}
    if outcome == "failing":
        return Finding.SETUP_NEEDS_HUMAN, {**facts, "what": _what_failed(
            list(SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE)))}
    for step in SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE):
        join_setup_delay(step=step, account=account)
    return Finding.SETUP_RETRYING, facts


def _had_failed(step: SetupStep) -> bool:
    """A step that actually failed (or waited out a failing provider): the only kind automation may claim to fix."""
    return step.status in (StepStatus.FAILED, StepStatus.RETRYING, StepStatus.WAITING) or bool(step.last_error)


def _setup_under_way(*, account: Account, steps: list[SetupStep], since: dt.datetime) -> tuple[str, dict[str, Any]]:
    outcome = _wait_for_setup(account, [s.name for s in steps], since=since)
    seen = messages.SETUP_SEEN_UNDER_WAY.format(
        steps=", ".join(f"{messages.STEP_NAMES[s.name]}: {s.get_status_display()}" for s in steps))
    if outcome == "done":
        return Finding.SETUP_FINISHED_ANYWAY, {"seen": seen, "now": messages.SETUP_NOW_READY}
    return Finding.SETUP_UNDER_WAY, {"seen": seen}


def _send_code_instead(
    *, contact: Contact, account: Account, steps: list[SetupStep], error: str
) -> tuple[str, dict[str, Any]]:
    """Our emails can't reach them right now: an SMS code signs them in and confirms the address."""
    for step in steps:
        join_setup_delay(step=step, account=account)
    run_action(case_id=contact.case_id, staff=None, action="send_code_sms", key=f"contact:{contact.our_reference}:code",
               params={"why": "the customer wrote in while our email provider is down"})
    return Finding.EMAIL_UNDELIVERED, {"error": error or "our email provider is not answering"}


def _wait_for_setup(account: Account, step_names: list[str], *, since: dt.datetime) -> str:
    """Watch the retried setup for a few seconds: "done", "failing" (failed again since the retry) or "running"."""
    deadline = time.monotonic() + settings.SUPPORT_CONTACT_WAIT_SECONDS
    while True:
        steps = list(SetupStep.objects.filter(account=account, name__in=step_names))
        if all(s.status == StepStatus.DONE for s in steps):
            return "done"
        if any(s.status in (StepStatus.FAILED, StepStatus.RETRYING) and s.updated_at > since for s in steps):
            return "failing"
        if time.monotonic() >= deadline:
            return "running"
        time.sleep(0.2)


def _fix_payment(*, contact: Contact, money: payments.PaidWithoutAccess) -> tuple[str, dict[str, Any]]:
    facts = {"amount": money.amount_text, "paid_on": f"{money.paid_at:%-d %b %Y}"}
    action = run_action(case_id=contact.case_id, staff=None, action="fulfil_from_charge",
                        key=f"contact:{contact.our_reference}:fulfil", params={"payment_id": money.payment_id})
    if action.outcome in (ActionOutcome.DONE, ActionOutcome.ALREADY_DONE):
        return Finding.PAYMENT_FULFILLED, facts
    return _needs_a_person(contact=contact, money=money, error=action.note)


def _needs_a_person(*, contact: Contact, money: payments.PaidWithoutAccess, error: str) -> tuple[str, dict[str, Any]]:
    """Money in and no access, and automation could not fix it: the case ranks as money taken, for a person."""
    facts = {"amount": money.amount_text, "paid_on": f"{money.paid_at:%-d %b %Y}"}
    _join(customer_key=contact.customer_key, email=contact.email, account=contact.account,
          kind=SignalKind.PAID_WITHOUT_ACCESS, cause="", harm=Harm.MONEY,
          summary=messages.SIGNAL_PAID_WITHOUT_ACCESS.format(amount=money.amount_text, paid_on=facts["paid_on"],
                                                             payment_id=money.payment_id, error=error),
          detail={"payment_id": money.payment_id, "reference": money.reference, "amount_text": money.amount_text},
          source=f"paid:{money.payment_id}")
    return Finding.PAYMENT_NEEDS_HUMAN, facts


def _settle_purchase(*, contact: Contact, attempt: PurchaseAttempt) -> tuple[str, dict[str, Any]]:
    """A checkout without an order: finish it from its payment when the processor has one (no new charge), else say
    truthfully that it is being settled and what happens either way."""
    amount = money_text(attempt.amount_cents, attempt.currency)
    facts = {"reference": attempt.reference, "amount": amount, "started_on": f"{attempt.created_at:%-d %b %Y}",
             "minutes": settings.IN_DOUBT_REPLY_MINUTES}
    action = None
    if attempt.charge_calls or attempt.payment_id:
        action = run_action(case_id=contact.case_id, staff=None, action="fulfil_from_charge",
                            key=f"contact:{contact.our_reference}:fulfil", params={"payment_id": attempt.reference})
    attempt.refresh_from_db()
    if action is not None and action.outcome in (ActionOutcome.DONE, ActionOutcome.ALREADY_DONE):
        return Finding.PAYMENT_FULFILLED, {**facts, "paid_on": f"{attempt.charged_at or attempt.created_at:%-d %b %Y}"}
    if action is not None and (payment_id := payments.paid_by(attempt)):
        # The processor has the money and the order could not be made: a person finishes it.
        paid = payments.PaidWithoutAccess(payment_id=payment_id, reference=attempt.reference, amount_text=amount,
                                          paid_at=attempt.charged_at or attempt.created_at)
        return _needs_a_person(contact=contact, money=paid, error=action.note)
    return Finding.PAYMENT_BEING_CHECKED, facts


def _tell_purchase(attempt: PurchaseAttempt) -> tuple[str, dict[str, Any]]:
    """A settled purchase, as it stands: paid and active, refunded, or not charged."""
    facts: dict[str, Any] = {"reference": attempt.reference, "started_on": f"{attempt.created_at:%-d %b %Y}",
                             "amount": money_text(attempt.amount_cents, attempt.currency)}
    order = Order.objects.select_related("entitlement", "product").filter(attempt=attempt).first()
    if order is None:
        why = messages.NOT_CHARGED_CONFIRMED if attempt.decline_code == NOT_CHARGED else messages.NOT_CHARGED_DECLINED
        return Finding.PAYMENT_NOT_CHARGED, {**facts, "why": why, "checkout_url": f"{settings.BASE_URL}/checkout"}
    facts.update(paid_on=f"{attempt.charged_at or order.created_at:%-d %b %Y}", reference=order.reference)
    if order.status == OrderStatus.REFUNDED:
        return Finding.PAYMENT_REFUNDED, {**facts, "refunded_on": f"{order.refunded_at or order.created_at:%-d %b %Y}"}
    entitlement = getattr(order, "entitlement", None)
    until = f"{entitlement.ends_at:%-d %b %Y}" if entitlement is not None else "the end of its period"
    return Finding.PAYMENT_COMPLETE, {**facts, "product": order.product.name, "until": until}


# A human reads these; the others were answered completely by automation (a follow-up email is promised and sent
# by the case resolving itself).
NEEDS_HUMAN = frozenset({Finding.NO_ACCOUNT, Finding.ALL_WELL, Finding.SETUP_NEEDS_HUMAN, Finding.EMAIL_UNDELIVERED,
                         Finding.SETUP_UNDER_WAY, Finding.SETUP_FINISHED_ANYWAY,
                         Finding.PAYMENT_NEEDS_HUMAN, Finding.DISABLED, Finding.PAYMENT_COMPLETE,
                         Finding.PAYMENT_REFUNDED, Finding.PAYMENT_NOT_CHARGED})


def _acknowledge(
    *, contact: Contact, signal: Signal, account: Account | None, finding: str, facts: dict[str, Any]
) -> ContactResult:
    name = f" {account.name}" if account else ""
    public = messages.CONTACT_PUBLIC.format(reference=contact.our_reference)
    what_we_see = messages.CONTACT_FINDINGS[finding].format(
        **{"email": contact.email, "verify_url": f"{settings.BASE_URL}/verify", **facts})
    private = "\n\n".join([messages.CONTACT_GREETING.format(name=name), what_we_see,
                           messages.CONTACT_REFERENCE.format(reference=contact.our_reference),
                           messages.CONTACT_SIGNOFF])
    needs_human = finding in NEEDS_HUMAN
    with transaction.atomic():
        ack = notify.create_email(
            account=account, kind="support_ack", key=f"support-ack:{contact.our_reference}",
            to=account.email if account else contact.email,
            context={"subject": messages.CONTACT_SUBJECT.format(reference=contact.our_reference), "text": private},
        )
        Contact.objects.filter(pk=contact.pk).update(
            finding=finding, needs_human=needs_human, public_reply=public, private_reply=private, acknowledgement=ack)
        summary = (messages.SIGNAL_CONTACT if needs_human else messages.SIGNAL_CONTACT_ANSWERED).format(
            excerpt=_excerpt(contact.text), finding=Finding(finding).label)
        # What automation saw goes with the case, so the person who reads it starts from there.
        seen = {"finding": finding, "seen": facts.get("seen") or Finding(finding).label}
        Signal.objects.filter(pk=signal.pk).update(summary=summary[:500], detail={**signal.detail, **seen})
        commitments.record_contact_promises(contact=contact, finding=finding, facts=facts)
        if not needs_human:
            clear_signals(signal_ids=[signal.pk], how=f"answered automatically: {Finding(finding).label}")
        else:
            refresh_case(case_id=contact.case_id)
        notify.send_soon(ack)
    contact.refresh_from_db()
    return ContactResult(contact=contact, public_reply=public, private_reply=private)

