"""Staff replies to the customer, by email, and the saved replies they start from."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from backstop.accounts.models import Account
from backstop.notify import services as notify
from backstop.support import commitments, messages
from backstop.support.actions import ActionRefused, ActionResult, snapshot
from backstop.support.cases import clear_signals
from backstop.support.models import ActionOutcome, Case, SavedReply, Signal, SignalKind, SupportAction
from backstop.support.reply_addresses import case_email_headers


def send_reply(
    *, case_id: int, staff: Account, key: str, subject: str, body: str, save_as: str = ""
) -> ActionResult:
    """Email the customer, once per ``key``; the reply answers their open contacts and joins the timeline."""
    body = body.strip()
    if not body:
        raise ActionRefused(messages.REPLY_EMPTY)
    case = Case.objects.select_related("account").get(pk=case_id)
    to = case.account.email if case.account is not None else case.email
    if not to or case.customer_key.startswith("unmatched:"):
        raise ActionRefused(messages.NO_REPLY_ADDRESS)
    scoped_key = _scoped_key(staff, key)
    try:
        with transaction.atomic():
            record = SupportAction.objects.create(
                idempotency_key=scoped_key, case=case, staff=staff, action="reply",
                params={"subject": subject}, before=snapshot(case_id),
            )
            message_key = f"support-reply:{record.pk}"
            message = notify.create_email(
                account=case.account, kind="support_reply", key=message_key, to=to,
                context={"subject": subject.strip() or messages.REPLY_SUBJECT, "text": body},
                **case_email_headers(case_id=case.pk, key=message_key),
            )
            contacts = Signal.objects.filter(case=case, kind=SignalKind.CONTACT, cleared_at__isnull=True)
            clear_signals(signal_ids=list(contacts.values_list("pk", flat=True)), how=f"answered by {staff.email}")
            Case.objects.filter(pk=case.pk, human_touched_at__isnull=True).update(human_touched_at=timezone.now())
            if save_as.strip():
                save_reply(title=save_as, body=_generalise(body, case, staff), staff=staff)
            SupportAction.objects.filter(pk=record.pk).update(
                outcome=ActionOutcome.DONE, note=messages.ACTIONS["reply"].done, message=message,
                after=snapshot(case_id), finished_at=timezone.now())
            notify.send_soon(message)
    except IntegrityError:
        return ActionResult(SupportAction.objects.get(idempotency_key=scoped_key), repeated=True)
    commitments.keep_commitments(case_ids=[case_id])
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


def _scoped_key(staff: Account, key: str) -> str:
    return f"staff:{staff.pk}:{key}"[:120]


def reply_already_sent(*, staff: Account, key: str) -> bool:
    """This intent (the same words from the same page, in another tab) was sent: the answer is that first send."""
    return SupportAction.objects.filter(idempotency_key=_scoped_key(staff, key)).exists()


def _generalise(body: str, case: Case, staff: Account) -> str:
    """A saved reply keeps placeholders where this customer's and this agent's names were."""
    text = body
    if case.account is not None and case.account.name:
        text = text.replace(case.account.name, "{name}")
    if staff.name:
        text = text.replace(staff.name, "{staff_name}")
    return text


def save_reply(*, title: str, body: str, staff: Account) -> SavedReply:
    reply, _ = SavedReply.objects.update_or_create(
        title=title.strip()[:100], defaults={"body": body, "created_by": staff, "created_at": timezone.now()})
    return reply

