"""Every promise we make to a customer, tracked on their case until it is kept.

A promise is recorded where the message making it is sent (the answer to a contact, the setup page's next-try time
while a case is open), and kept when the promised thing happens: an email that says it is done, a person's reply, the
setup finishing, the attempt at the time we named. The support cycle (and each staff action) checks the open ones;
closing a case with one still open needs a confirm, and the desk's drafted reply is the message that keeps it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from backstop.accounts import progress
from backstop.accounts.models import STEP_PROVIDERS, Account, SetupStep, StepStatus
from backstop.notify.models import DeliveryStatus, Message
from backstop.support import messages, payments
from backstop.support.actions import finishing_actions
from backstop.support.models import (
    ActionOutcome,
    Case,
    CaseState,
    Commitment,
    CommitmentKind,
    Contact,
    Finding,
    Signal,
    SignalKind,
    SupportAction,
)

BATCH = 500
# Emails that tell the customer it is done: setup's "your workspace is ready", support's "it's fixed", a person's
# reply (a person writing to them speaks for where it stands), and billing's word on how a purchase settled.
DONE_EMAIL_KINDS = ("account_ready", "support_resolved", "support_reply", "purchase_confirmation",
                    "purchase_recovered", "purchase_not_charged", "purchase_refunded", "order_refund")
ONE_WORKING_DAY = dt.timedelta(days=1)

# What each automatic answer to a contact promises (the sentences are in messages.CONTACT_FINDINGS).
_REPLY = (CommitmentKind.PERSON_REPLIES,)
_FINISH = (CommitmentKind.PERSON_FINISHES, CommitmentKind.EMAIL_WHEN_DONE)
FINDING_PROMISES: dict[str, tuple[CommitmentKind, ...]] = {
    Finding.NO_ACCOUNT: _REPLY, Finding.ALL_WELL: _REPLY, Finding.DISABLED: _REPLY,
    Finding.EMAIL_UNDELIVERED: _REPLY, Finding.PAYMENT_COMPLETE: _REPLY, Finding.PAYMENT_REFUNDED: _REPLY,
    Finding.PAYMENT_NOT_CHARGED: _REPLY, Finding.SETUP_UNDER_WAY: _REPLY, Finding.SETUP_FINISHED_ANYWAY: _REPLY,
    Finding.SETUP_RETRYING: (CommitmentKind.EMAIL_WHEN_DONE,), Finding.SETUP_WAITING: (CommitmentKind.EMAIL_WHEN_DONE,),
    Finding.SETUP_NEEDS_HUMAN: _FINISH, Finding.PAYMENT_NEEDS_HUMAN: _FINISH,
    Finding.PAYMENT_BEING_CHECKED: (CommitmentKind.EMAIL_WHEN_DONE,),
}


def _record(*, case_id: int, kind: str, made_in: str, detail: dict[str, Any], due_at: dt.datetime | None,
            text: str = "") -> None:
    if kind != CommitmentKind.RETRY_AT and Commitment.objects.filter(case_id=case_id, kind=kind,
                                                                     kept_at__isnull=True).exists():
        # One open promise of a kind per case: the second "a person will reply" is kept by the same reply, and a
        # case listing it fifteen times says nothing more (each contact is on the case's timeline).
        return
    try:
        with transaction.atomic():
            Commitment.objects.create(case_id=case_id, kind=kind, made_in=made_in[:120], detail=detail,
                                      due_at=due_at, text=(text or messages.COMMITMENT_TEXTS[kind])[:500])
    except IntegrityError:  # the same promise, shown again: one commitment
        pass


def record_contact_promises(*, contact: Contact, finding: str, facts: dict[str, Any]) -> None:
    """The answer to ``contact`` promised what its finding says: each promise becomes a commitment on the case."""
    if contact.case_id is None:  # not joined to a case (the contact's workflow joins it before answering)
        return
    now = timezone.now()
    detail: dict[str, Any] = {"account_id": contact.account_id, "contact": contact.our_reference}
    paid = Signal.objects.filter(case_id=contact.case_id, kind=SignalKind.PAID_WITHOUT_ACCESS,
                                 cleared_at__isnull=True).values_list("detail", flat=True).first()
    if paid and paid.get("payment_id"):
        detail["payment_id"] = paid["payment_id"]
    for kind in FINDING_PROMISES.get(finding, ()):
        due = now + ONE_WORKING_DAY
        if finding == Finding.PAYMENT_BEING_CHECKED:
            due = now + dt.timedelta(minutes=float(settings.IN_DOUBT_REPLY_MINUTES))
        _record(case_id=contact.case_id, kind=kind, made_in=f"contact:{contact.our_reference}", detail=detail,
                due_at=due)


def record_setup_promise(*, account: Account, step: SetupStep, promise: str, due_at: dt.datetime | None) -> None:
    """The setup page, while the customer has an open case, named a time for the next try ("retry_at") or said our
    support team has a step that stopped retrying ("handed_over"): a commitment on the case."""
    case = Case.objects.filter(account=account, state=CaseState.OPEN).values_list("pk", flat=True).first()
    if case is None:
        return
    if promise == "retry_at" and due_at is not None:
        _record(case_id=case, kind=CommitmentKind.RETRY_AT, made_in=f"setup:{step.pk}:attempt:{step.attempts}",
                detail={"account_id": account.pk, "step": step.name, "attempts": step.attempts}, due_at=due_at,
                text=messages.COMMITMENT_RETRY_TEXT.format(at=f"{due_at:%H:%M:%S UTC}"))
    elif promise == "handed_over":
        _record(case_id=case, kind=CommitmentKind.PERSON_FINISHES, made_in=f"setup:{step.pk}:run:{account.setup_run}",
                detail={"account_id": account.pk, "step": step.name}, due_at=None,
                text=messages.COMMITMENT_HANDED_OVER_TEXT)


# --- Keeping -----------------------------------------------------------------------------------------------

def unkept(case_id: int) -> list[Commitment]:
    keep_commitments(case_ids=[case_id])
    return list(Commitment.objects.filter(case_id=case_id, kept_at__isnull=True))


def keep_commitments(*, case_ids: Iterable[int] | None = None) -> int:
    """Mark kept what has happened since it was promised. Returns how many were kept now."""
    open_ones: QuerySet[Commitment] = Commitment.objects.filter(kept_at__isnull=True).select_related("case")
    if case_ids is not None:
        open_ones = open_ones.filter(case_id__in=list(case_ids))
    kept = 0
    for commitment in open_ones[:BATCH]:
        found = _kept_how(commitment)
        if found is None:
            continue
        at, staff_id, how = found
        kept += Commitment.objects.filter(pk=commitment.pk, kept_at__isnull=True).update(
            kept_at=at, kept_by_id=staff_id, kept_how=how[:300])
    return kept


def _staff_actions_since(commitment: Commitment) -> QuerySet[SupportAction]:
    return SupportAction.objects.filter(case_id=commitment.case_id, staff__isnull=False, outcome=ActionOutcome.DONE,
                                        created_at__gte=commitment.made_at).order_by("-id")


def _kept_how(commitment: Commitment) -> tuple[dt.datetime, int | None, str] | None:
    kind, case, detail = commitment.kind, commitment.case, commitment.detail
    if kind == CommitmentKind.PERSON_REPLIES:
        reply = _staff_actions_since(commitment).filter(action="reply").first()
        return (reply.created_at, reply.staff_id, messages.KEPT_BY_REPLY) if reply else None
    if kind == CommitmentKind.EMAIL_WHEN_DONE:
        to_them = Q(account_id=case.account_id) if case.account_id else Q(to__iexact=case.email)
        email = (Message.objects.filter(to_them, kind__in=DONE_EMAIL_KINDS, created_at__gte=commitment.made_at)
                 .exclude(status=DeliveryStatus.FAILED).order_by("id").first())
        if email is None:
            return None
        by = SupportAction.objects.filter(message=email).values_list("staff_id", flat=True).first()
        return email.created_at, by, messages.KEPT_BY_EMAIL.format(subject=email.subject or email.kind)
    if kind == CommitmentKind.PERSON_FINISHES:
        if not _finished(case, detail):
            return None
        # Only an action that can finish it (the registry's ``finishes``): a person who only sent a code or merged
        # is not credited when automation finishes it.
        last = _staff_actions_since(commitment).filter(action__in=finishing_actions()).first()
        return (timezone.now(), last.staff_id if last else None,
                messages.KEPT_BY_FINISHING.format(who=last.staff.email if last and last.staff else "automation"))
    if kind == CommitmentKind.RETRY_AT:
        step = SetupStep.objects.filter(account_id=detail.get("account_id"), name=detail.get("step")).first()
        if step is None or step.status == StepStatus.DONE or step.attempts > int(detail.get("attempts", 0)):
            return (step.updated_at if step else timezone.now()), None, messages.KEPT_BY_ATTEMPT
        if progress.providers_down([step]):
            # The provider went down before the time named: the try waits for it to answer again, and the setup page
            # now says so (no time). The promise is superseded, with why, rather than left to show as overdue.
            return timezone.now(), None, messages.SUPERSEDED_PROVIDER_DOWN.format(
                provider=messages.provider_name(STEP_PROVIDERS[step.name]))
        return None
    return None


def _finished(case: Case, detail: dict[str, Any]) -> bool:
    """What a person was to finish is finished: the setup is done, the payment has its access (or went back)."""
    payment_id = detail.get("payment_id")
    if payment_id:
        returned = SupportAction.objects.filter(case__customer_key=case.customer_key, outcome=ActionOutcome.DONE,
                                                action__in=("refund", "refund_payment"),
                                                created_at__gte=case.opened_at).exists()
        return returned or bool(payments.fulfilled_payment_ids([str(payment_id)]))
    account_id = detail.get("account_id") or case.account_id
    return account_id is not None and setup_finished(account_id=int(account_id))


def setup_finished(*, account_id: int) -> bool:
    """Every setup step of the account is done."""
    steps = SetupStep.objects.filter(account_id=account_id)
    return steps.exists() and not steps.exclude(status=StepStatus.DONE).exists()


def email_promised(case_id: int) -> bool:
    """Whether the case holds an "we'll email you when it's done" not kept yet."""
    keep_commitments(case_ids=[case_id])
    return Commitment.objects.filter(case_id=case_id, kind=CommitmentKind.EMAIL_WHEN_DONE,
                                     kept_at__isnull=True).exists()


def close_warning(case_id: int) -> str:
    """What staff must hear before closing: the promises not kept yet (empty when there are none)."""
    promises = unkept(case_id)
    if not promises:
        return ""
    listed = "; ".join(f"“{c.text}”" for c in promises)
    return messages.CLOSE_UNKEPT.format(count=len(promises), s=messages.plural(len(promises)), promises=listed)
