"""The customer writes in: the contact recorded on their case, what is wrong diagnosed (and fixed, where automation
can), and a truthful answer."""

from __future__ import annotations

import datetime as dt
import math
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
from backstop.ratelimits.models import Counter
from backstop.ratelimits.services import Limit, RateLimited, check_rate_limit
from backstop.support import commitments, messages, payments, triage
from backstop.support.actions import run_action
from backstop.support.cases import _join, clear_signals, join_setup_delay, refresh_case
from backstop.support.models import ActionOutcome, Case, Contact, Finding, Signal, SignalKind, StrangerNotice
from backstop.support.reply_addresses import case_email_headers
from backstop.support.search import index_case

# Strangers (anyone not signed in as the address's owner) are counted by where they write from, never by the address
# they write about: a per-address count that strangers fill would lock its owner out (docs/decisions.md, "Contact rate
# limits"). The signed-in owner is counted on their own account only.
STRANGER_CONTACT_LIMIT = Limit(per_ip=20, per_email=0, window_seconds=3600)
OWNER_CONTACTS_PER_HOUR = 20
# A stranger's contacts email the address at most this often; the rest reach a person on the case.
STRANGER_NOTICE_EVERY = dt.timedelta(hours=24)
MAX_CONTACT_LENGTH = 5000
MAX_REFERENCE_LENGTH = 100
EXCERPT_LENGTH = 160
# How often a signed-in owner's request looks whether the workflow has answered.
ANSWER_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class ContactResult:
    contact: Contact
    public_reply: str
    private_reply: str

    def reply_for(self, viewer: Any) -> str:
        """The full answer only to the signed-in owner of the address; anyone else sees the public one, which is
        the same sentence whatever the address (it is written before anything is looked up)."""
        if not _is_owner(viewer, self.contact.customer_key):
            return self.public_reply
        # The page's (and the API's) short answer, not the email's body with its greeting and sign-off; a contact
        # answered before page_reply was kept has only the email's.
        return (self.contact.page_reply or self.private_reply
                or messages.CONTACT_OWNER_PENDING.format(reference=self.contact.our_reference))


def _is_owner(viewer: Any, customer_key: str) -> bool:
    return bool(getattr(viewer, "is_authenticated", False)) and getattr(viewer, "email_key", None) == customer_key


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
    *, email: str, text: str, reference: str = "", ip: str, submission_key: str = "", requester: Any = None
) -> ContactResult:
    """A customer wrote in: validate, count it, write it down and start its workflow (``answer_contact``), which looks
    them up, fixes what automation can and emails the answer. Nothing here depends on whether the address has an
    account, so the answer takes as long for any address and says the same (only ``requester``, the signed-in owner
    of the address, waits for the full answer: ``wait_for_answer``).

    ``submission_key`` (the id the page gave its form) makes a form sent again, its answer lost in an outage, the
    same contact: answered as the first time, recorded and acted on once.
    """
    email, text, reference = _clean_contact(email, text, reference)
    submission_key = submission_key.strip()[:80]
    if submission_key and (earlier := Contact.objects.filter(submission_key=submission_key).first()):
        return _answered_again(earlier)
    key = email_key(email)
    from_owner = _is_owner(requester, key)
    _check_contact_budget(requester=requester if from_owner else None, ip=ip)
    try:
        contact = _record_contact(email=email, key=key, text=text, reference=reference, from_owner=from_owner,
                                  our_reference=new_contact_reference(), submission_key=submission_key)
    except IntegrityError:  # the same form, sent twice at once: the other request recorded it
        if not submission_key:
            raise
        return _answered_again(Contact.objects.get(submission_key=submission_key))
    return ContactResult(contact=contact, public_reply=contact.public_reply, private_reply="")


def _check_contact_budget(*, requester: Any, ip: str) -> None:
    """The signed-in owner spends their account's budget; anyone else the budget of where they write from."""
    if requester is None:
        check_rate_limit(action="contact", limit=STRANGER_CONTACT_LIMIT, ip=ip, email_key=None)
        return
    scale = settings.RATE_LIMIT_SCALE
    if scale == 0:
        return
    wait = Counter.objects.hit(f"contact:account:{requester.pk}", limit=math.ceil(OWNER_CONTACTS_PER_HOUR * scale),
                               window_seconds=3600)
    if wait > 0:
        raise RateLimited(wait)


def wait_for_answer(result: ContactResult, *, seconds: float) -> ContactResult:
    """For the signed-in owner only: the workflow's answer once it has one (or as it stands after ``seconds``)."""
    deadline = time.monotonic() + seconds
    contact = result.contact
    while contact.answered_at is None and time.monotonic() < deadline:
        time.sleep(ANSWER_POLL_SECONDS)
        contact = Contact.objects.get(pk=contact.pk)
    return ContactResult(contact=contact, public_reply=result.public_reply, private_reply=contact.private_reply)


def owner_wait_seconds() -> float:
    """How long the signed-in owner's page waits for the answer: the look-up's own wait for a retried setup, and a
    little for the workflow to start and write it."""
    return float(settings.SUPPORT_CONTACT_WAIT_SECONDS) + 3.0


def _answered_again(contact: Contact) -> ContactResult:
    """A contact already recorded, answered as it was the first time (the owner's full answer once the workflow has
    written it)."""
    public = contact.public_reply or messages.CONTACT_PUBLIC.format(reference=contact.our_reference)
    return ContactResult(contact=contact, public_reply=public, private_reply=contact.private_reply)


def _record_contact(
    *, email: str, key: str, text: str, reference: str, from_owner: bool, our_reference: str, submission_key: str,
) -> Contact:
    """The intent: one row, whatever the address; its workflow starts when it commits."""
    from backstop.support.workflows import contact_answer  # the workflow module imports this one

    with transaction.atomic():
        contact = Contact.objects.create(
            email=email, customer_key=key, text=text, reference=reference, our_reference=our_reference,
            finding="", public_reply=messages.CONTACT_PUBLIC.format(reference=our_reference), private_reply="",
            submission_key=submission_key, from_owner=from_owner,
        )
        contact_answer.start_after_commit(contact.pk, our_reference)
    return contact


def answer_contact(*, contact_id: int) -> None:
    """The contact's workflow: join it to the customer's case, look them up, fix what automation can fix now, and
    answer truthfully (by email; the signed-in owner's page shows it too). Safe to run again: it acts once."""
    contact = Contact.objects.get(pk=contact_id)
    if contact.answered_at is not None:
        return
    account = Account.objects.by_email_key(contact.customer_key)
    signal = _join_contact(contact=contact, account=account)
    contact.case_id, contact.account = signal.case_id, account
    finding, facts = _diagnose_and_fix(contact=contact, account=account, reference=contact.reference)
    _acknowledge(contact=contact, signal=signal, account=account, finding=finding, facts=facts)


def give_up_on_contact(*, contact_id: int) -> None:
    """Automation could not look into it: the contact reaches a person on the customer's case, as it was written."""
    contact = Contact.objects.get(pk=contact_id)
    if contact.answered_at is not None:
        return
    account = Account.objects.by_email_key(contact.customer_key)
    signal = _join_contact(contact=contact, account=account)
    Contact.objects.filter(pk=contact.pk, answered_at__isnull=True).update(
        case_id=signal.case_id, account=account, needs_human=True, answered_at=timezone.now())
    refresh_case(case_id=signal.case_id)


def unanswered_contacts(grace_seconds: float) -> list[tuple[int, str]]:
    """Contacts written down longer than the grace ago and not answered: the sweep starts any without a workflow."""
    before = timezone.now() - dt.timedelta(seconds=grace_seconds)
    return list(Contact.objects.filter(answered_at__isnull=True, created_at__lt=before)
                .order_by("created_at").values_list("pk", "our_reference")[:200])


def _case(contact: Contact) -> int:
    """The case the workflow joined the contact to (every step after the join has one)."""
    assert contact.case_id is not None, "the contact was not joined to a case yet"
    return contact.case_id


def _join_contact(*, contact: Contact, account: Account | None) -> Signal:
    with transaction.atomic():
        signal = _join(
            customer_key=contact.customer_key, email=account.email if account else contact.email, account=account,
            kind=SignalKind.CONTACT, cause="", harm=Harm.QUESTION,
            summary=messages.SIGNAL_CONTACT.format(excerpt=_excerpt(contact.text)),
            detail={"reference": contact.reference, "our_reference": contact.our_reference},
            source=f"contact:{contact.our_reference}",
        )
        Contact.objects.filter(pk=contact.pk).update(case_id=signal.case_id, account=account)
        index_case(case_id=signal.case_id)  # the contact's text and references, now that it is the case's
    return signal


def _claim_stranger_notice(customer_key: str) -> bool:
    """True for the one contact a day whose answer a stranger may have emailed to the address (conditional UPDATE or
    the first row: of two at once, one wins)."""
    now = timezone.now()
    if StrangerNotice.objects.filter(customer_key=customer_key, sent_at__lte=now - STRANGER_NOTICE_EVERY).update(
            sent_at=now):
        return True
    try:
        with transaction.atomic():
            StrangerNotice.objects.create(customer_key=customer_key, sent_at=now)
    except IntegrityError:  # one was sent within the day
        return False
    return True


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
    facts: dict[str, Any] = {"what": _what_failed(steps), "harm": setup_harm(steps)}
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
    if not any(had_failed(s) for s in steps):
        # Setup is simply still under way (they wrote seconds after signing up): nothing failed, so nothing to fix or
        # own up to. Their message is a question for a person, with what automation saw attached.
        return _setup_under_way(account=account, steps=steps, since=started)
    run_action(case_id=_case(contact), staff=None, action="retry_setup", key=f"contact:{contact.our_reference}:retry",
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


def had_failed(step: SetupStep) -> bool:
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
    run_action(case_id=_case(contact), staff=None, action="send_code_sms", key=f"contact:{contact.our_reference}:code",
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
    action = run_action(case_id=_case(contact), staff=None, action="fulfil_from_charge",
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
        action = run_action(case_id=_case(contact), staff=None, action="fulfil_from_charge",
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


# Findings whose answer owns a failure, and how bad it was (a setup's: locked out when the workspace was unfinished,
# else degraded, decided where it was diagnosed: facts["harm"]).
OWNED_FAILURE_HARM: dict[str, int] = {
    Finding.SETUP_FIXED: Harm.LOCKED_OUT, Finding.SETUP_RETRYING: Harm.LOCKED_OUT,
    Finding.SETUP_WAITING: Harm.LOCKED_OUT, Finding.SETUP_NEEDS_HUMAN: Harm.LOCKED_OUT,
    Finding.EMAIL_UNDELIVERED: Harm.DEGRADED, Finding.PAYMENT_FULFILLED: Harm.MONEY,
    Finding.PAYMENT_NEEDS_HUMAN: Harm.MONEY,
}


def owned_harm(finding: str, facts: dict[str, Any]) -> int:
    """How bad the failure the answer to a contact owned was (``Harm.QUESTION`` when it owned none)."""
    if finding not in OWNED_FAILURE_HARM:
        return int(Harm.QUESTION)
    return int(facts.get("harm", OWNED_FAILURE_HARM[finding]))


def setup_harm(steps: list[SetupStep]) -> int:
    """An unfinished workspace locks the customer out; only the welcome email unfinished degrades."""
    return int(Harm.LOCKED_OUT if any(s.name == StepName.WORKSPACE for s in steps) else Harm.DEGRADED)


def _acknowledge(
    *, contact: Contact, signal: Signal, account: Account | None, finding: str, facts: dict[str, Any]
) -> ContactResult:
    name = f" {account.name}" if account else ""
    public = messages.CONTACT_PUBLIC.format(reference=contact.our_reference)
    what_we_see = messages.CONTACT_FINDINGS[finding].format(
        **{"email": contact.email, "verify_url": f"{settings.BASE_URL}/verify", **facts})
    on_page = "\n\n".join([what_we_see, messages.CONTACT_REFERENCE.format(reference=contact.our_reference)])
    private = "\n\n".join([messages.CONTACT_GREETING.format(name=name), on_page, messages.CONTACT_SIGNOFF])
    with transaction.atomic():
        # The owner's own contacts are always answered by email; a stranger's about an address, once a day at most.
        # One that is not emailed is left for a person, who reads them all on the one case: nobody is left untold.
        emailed = contact.from_owner or _claim_stranger_notice(contact.customer_key)
        needs_human = finding in NEEDS_HUMAN or not emailed
        ack = notify.create_email(
            account=account, kind="support_ack", key=f"support-ack:{contact.our_reference}",
            to=account.email if account else contact.email,
            context={"subject": messages.CONTACT_SUBJECT.format(reference=contact.our_reference), "text": private},
            **case_email_headers(case_id=_case(contact), key=f"support-ack:{contact.our_reference}"),
        ) if emailed else None
        Contact.objects.filter(pk=contact.pk).update(
            finding=finding, needs_human=needs_human, public_reply=public, private_reply=private, page_reply=on_page,
            acknowledgement=ack,
            answered_at=timezone.now())
        summary = (messages.SIGNAL_CONTACT if needs_human else messages.SIGNAL_CONTACT_ANSWERED).format(
            excerpt=_excerpt(contact.text), finding=Finding(finding).label)
        # What automation saw goes with the case, so the person who reads it starts from there.
        seen = {"finding": finding, "seen": facts.get("seen") or Finding(finding).label}
        # The case is labelled with what the customer was told: an answer that owned a failure ("our failure") makes
        # the contact as bad as that failure, not "a question, nothing wrong found". (No cause: a contact that needs
        # a person must not wait on an incident.)
        owned = {"harm": harm} if (harm := owned_harm(finding, facts)) > signal.harm else {}
        Signal.objects.filter(pk=signal.pk).update(summary=summary[:500], detail={**signal.detail, **seen}, **owned)
        if owned:  # a case whose signals all clear keeps the harm it had: it must have had this one
            Case.objects.filter(pk=_case(contact), harm__lt=owned["harm"]).update(harm=owned["harm"])
        commitments.record_contact_promises(contact=contact, finding=finding, facts=facts)
        if not needs_human:
            clear_signals(signal_ids=[signal.pk], how=f"answered automatically: {Finding(finding).label}")
        else:
            refresh_case(case_id=_case(contact))
        if ack is not None:
            notify.send_soon(ack)
    contact.refresh_from_db()
    return ContactResult(contact=contact, public_reply=public, private_reply=private)

