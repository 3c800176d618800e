"""Support desk actions: signals joining the customer's one open case, contacts, staff actions and replies.

Everything here is safe to run twice and safe to race with automation: joins are keyed by the signal's source,
state changes are conditional UPDATEs, and every staff action is keyed by the click that asked for it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts import services as accounts
from backstop.accounts.models import STEP_PROVIDERS, Account, AccountState, SetupStep, StepName, StepStatus
from backstop.accounts.validation import clean_email, has_control_characters
from backstop.lib.email_identity import email_key
from backstop.lib.errors import InvalidInput
from backstop.notify import services as notify
from backstop.notify.models import Message
from backstop.ratelimits.services import Limit, RateLimited, check_rate_limit
from backstop.support import messages, payments, triage
from backstop.support.models import (
    ActionOutcome,
    AttentionKind,
    AttentionRecord,
    Case,
    CaseState,
    Contact,
    Finding,
    Harm,
    Resolution,
    SavedReply,
    Signal,
    SignalKind,
    SupportAction,
    provider_cause,
)
from backstop.workspaces.models import Workspace

log = logging.getLogger(__name__)

CONTACT_LIMIT = Limit(per_ip=20, per_email=5, window_seconds=3600)
MAX_CONTACT_LENGTH = 5000
MAX_REFERENCE_LENGTH = 100
EXCERPT_LENGTH = 160


class ActionRefused(Exception):
    """The action can't run on this case as asked; the text says why, in words staff can act on."""


# --- Cases and signals ---------------------------------------------------------------------------------

def _open_case(*, customer_key: str, email: str, account: Account | None) -> Case:
    """The customer's open case, opened if there is none, with its version bumped (a signal is joining)."""
    for _ in range(5):
        case = Case.objects.open_for(customer_key)
        if case is None:
            try:
                with transaction.atomic():
                    return Case.objects.create(customer_key=customer_key, email=email, account=account, version=1)
            except IntegrityError:  # another signal opened it at the same moment: join that one
                continue
        # Conditional: if automation resolved the case since we read it, open a new one instead.
        changes: dict[str, Any] = {"version": F("version") + 1, "updated_at": timezone.now()}
        if account is not None and case.account_id is None:
            changes["account"] = account
        if Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(**changes):
            case.refresh_from_db()
            return case
    raise RuntimeError(f"could not open a case for {customer_key}")


def _join(
    *, customer_key: str, email: str, account: Account | None, kind: str, cause: str, harm: int, summary: str,
    detail: dict[str, Any], source: str, attention: AttentionRecord | None = None, message: Message | None = None,
    cleared: str = "",
) -> Signal:
    """Add a signal to the customer's open case; the same source never joins twice while open."""
    existing = Signal.objects.filter(source=source, cleared_at__isnull=True).first()
    if existing is not None:
        return existing
    with transaction.atomic():
        case = _open_case(customer_key=customer_key, email=email, account=account)
        try:
            with transaction.atomic():
                signal = Signal.objects.create(
                    case=case, kind=kind, cause=cause, harm=harm, summary=summary[:500], detail=detail,
                    source=source, attention=attention, message=message,
                    cleared_at=timezone.now() if cleared else None, cleared_how=cleared,
                )
        except IntegrityError:  # the same source joined from another process first
            return Signal.objects.get(source=source, cleared_at__isnull=True)
        refresh_case(case_id=case.pk)
    return signal


def _customer_of(account: Account | None, email: str) -> tuple[str, str]:
    if account is not None:
        return account.email_key, account.email
    return email_key(email), email


def join_attention_record(*, record: AttentionRecord) -> Signal:
    """An attention record raised by accounts or billing joins its customer's case."""
    account = Account.objects.filter(pk=record.account_id).first() if record.account_id else None
    email = str(record.detail.get("email", "")) if account is None else account.email
    if account is None and not email:
        key = f"unmatched:{record.pk}"  # a payment nobody can be matched to: a case of its own
    else:
        key, email = _customer_of(account, email)
    return _join(
        customer_key=key, email=email, account=account, kind=record.kind,
        cause=triage.cause_of_attention(record.kind, record.detail), harm=triage.harm_of(record.kind),
        summary=record.summary, detail=record.detail, source=f"attention:{record.pk}", attention=record,
    )


def join_undelivered_message(*, message: Message) -> Signal | None:
    account = Account.objects.filter(pk=message.account_id).first() if message.account_id else None
    if account is None:
        return None
    summary = messages.SIGNAL_MESSAGE_UNDELIVERED.format(
        channel="email" if message.channel == "email" else "SMS", subject=message.subject or message.kind,
        to=message.to, error=message.last_error or "no answer",
    )
    return _join(
        customer_key=account.email_key, email=account.email, account=account, kind=SignalKind.MESSAGE_UNDELIVERED,
        cause=provider_cause(message.channel), harm=Harm.DEGRADED, summary=summary,
        detail={"message_kind": message.kind, "to": message.to, "error": message.last_error},
        source=f"message:{message.pk}", message=message,
    )


def setup_delay_source(account_id: int, step: str) -> str:
    return f"setup:{account_id}:{step}"


def join_setup_delay(*, step: SetupStep, account: Account) -> Signal:
    """A setup step held up by a failing provider: the customer waits, automation retries."""
    provider = STEP_PROVIDERS[step.name]
    label = messages.STEP_NAMES[step.name].capitalize()
    if step.attempts:
        summary = messages.SIGNAL_SETUP_DELAYED.format(
            step=label, provider=messages.provider_name(provider), attempts=step.attempts,
            error=step.last_error or "no answer")
    else:
        summary = messages.SIGNAL_SETUP_DELAYED_NO_ERROR.format(step=label, provider=messages.provider_name(provider))
    return _join(
        customer_key=account.email_key, email=account.email, account=account, kind=SignalKind.SETUP_DELAYED,
        cause=provider_cause(provider), harm=triage.harm_of(SignalKind.SETUP_DELAYED, step=step.name),
        summary=summary, detail={"step": step.name, "attempts": step.attempts, "last_error": step.last_error},
        source=setup_delay_source(account.pk, step.name),
    )


def refresh_case(*, case_id: int) -> None:
    """Recompute the case's harm, kinds, cause and one-line summary from its open signals."""
    open_signals = list(Signal.objects.filter(case_id=case_id, cleared_at__isnull=True).order_by("-harm", "id"))
    causes = {s.cause for s in open_signals}
    if open_signals:
        summary = open_signals[0].summary
        if len(open_signals) > 1:
            summary += messages.CASE_MORE_SIGNALS.format(count=len(open_signals) - 1)
    else:
        summary = messages.CASE_ALL_CLEAR
    # With nothing open the case keeps the harm it had: it is about to resolve, and the record should say how bad.
    harm = {"harm": max(s.harm for s in open_signals)} if open_signals else {}
    Case.objects.filter(pk=case_id).update(
        **harm,
        kinds=sorted({s.kind for s in open_signals}),
        cause=causes.pop() if len(causes) == 1 else "",
        summary=summary[:500], updated_at=timezone.now(),
    )


def clear_signals(*, signal_ids: list[int], how: str) -> int:
    """Mark signals cleared (once) and refresh their cases."""
    case_ids = set(Signal.objects.filter(pk__in=signal_ids, cleared_at__isnull=True).values_list("case_id", flat=True))
    cleared = Signal.objects.filter(pk__in=signal_ids, cleared_at__isnull=True).update(
        cleared_at=timezone.now(), cleared_how=how[:200])
    for case_id in case_ids:
        refresh_case(case_id=case_id)
    return cleared


def clear_fixed_attention(*, case_id: int | None = None) -> int:
    """Clear signals whose attention record was resolved (by the app that raised it, or by an action here)."""
    fixed = Signal.objects.filter(cleared_at__isnull=True, attention__resolved_at__isnull=False)
    if case_id is not None:
        fixed = fixed.filter(case_id=case_id)
    by_how: dict[str, list[int]] = {}
    for pk, resolution in fixed.values_list("pk", "attention__resolution"):
        by_how.setdefault(f"fixed: {resolution}" if resolution else "fixed", []).append(pk)
    return sum(clear_signals(signal_ids=ids, how=how) for how, ids in by_how.items())


# --- The customer writes in -------------------------------------------------------------------------------

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


def receive_contact(*, email: str, text: str, reference: str = "", ip: str) -> ContactResult:
    """A customer wrote in: record it, look them up, fix what automation can fix now, and answer truthfully."""
    email, text, reference = _clean_contact(email, text, reference)
    key = email_key(email)
    check_rate_limit(action="contact", limit=CONTACT_LIMIT, ip=ip, email_key=key)
    account = Account.objects.by_email_key(key)
    our_reference = new_contact_reference()
    with transaction.atomic():
        signal = _join(
            customer_key=key, email=account.email if account else email, account=account, kind=SignalKind.CONTACT,
            cause="", harm=Harm.QUESTION, summary=messages.SIGNAL_CONTACT.format(excerpt=_excerpt(text)),
            detail={"reference": reference, "our_reference": our_reference}, source=f"contact:{our_reference}",
        )
        contact = Contact.objects.create(
            case_id=signal.case_id, email=email, customer_key=key, account=account, text=text, reference=reference,
            our_reference=our_reference, finding="", public_reply="", private_reply="",
        )
    finding, facts = _diagnose_and_fix(contact=contact, account=account, reference=reference)
    return _acknowledge(contact=contact, signal=signal, account=account, finding=finding, facts=facts)


def _diagnose_and_fix(*, contact: Contact, account: Account | None, reference: str) -> tuple[str, dict[str, Any]]:
    money = payments.find_paid_without_access(email=contact.email, account=account, reference=reference)
    if money is not None:
        return _fix_payment(contact=contact, money=money)
    if account is None:
        return Finding.NO_ACCOUNT, {}
    if account.state == AccountState.DISABLED:
        return Finding.DISABLED, {}
    unfinished = list(SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE))
    if unfinished:
        return _fix_setup(contact=contact, account=account, steps=unfinished)
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
    _join(customer_key=contact.customer_key, email=contact.email, account=contact.account,
          kind=SignalKind.PAID_WITHOUT_ACCESS, cause="", harm=Harm.MONEY,
          summary=messages.SIGNAL_PAID_WITHOUT_ACCESS.format(amount=money.amount_text, paid_on=facts["paid_on"],
                                                             payment_id=money.payment_id, error=action.note),
          detail={"payment_id": money.payment_id, "reference": money.reference, "amount_text": money.amount_text},
          source=f"paid:{money.payment_id}")
    return Finding.PAYMENT_NEEDS_HUMAN, facts


# A human reads these; the others were answered completely by automation (a follow-up email is promised and sent
# by the case resolving itself).
NEEDS_HUMAN = frozenset({Finding.NO_ACCOUNT, Finding.ALL_WELL, Finding.SETUP_NEEDS_HUMAN, Finding.EMAIL_UNDELIVERED,
                         Finding.PAYMENT_NEEDS_HUMAN, Finding.DISABLED})


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
        Signal.objects.filter(pk=signal.pk).update(summary=summary[:500], detail={**signal.detail, "finding": finding})
        if not needs_human:
            clear_signals(signal_ids=[signal.pk], how=f"answered automatically: {Finding(finding).label}")
        else:
            refresh_case(case_id=contact.case_id)
        notify.send_soon(ack)
    contact.refresh_from_db()
    return ContactResult(contact=contact, public_reply=public, private_reply=private)


# --- Staff (and automation) actions ----------------------------------------------------------------------

STAFF_ACTIONS = ("retry_setup", "complete_workspace", "send_code_sms", "fulfil_from_charge", "refund", "grant_credit",
                 "merge", "close")


@dataclass(frozen=True)
class ActionResult:
    action: SupportAction
    repeated: bool

    @property
    def outcome(self) -> str:
        return self.action.outcome

    @property
    def note(self) -> str:
        return self.action.note


def snapshot(case_id: int) -> dict[str, Any]:
    """What the audit keeps before and after an action: the case, the account, its setup and its money."""
    case = Case.objects.select_related("account").get(pk=case_id)
    state: dict[str, Any] = {
        "case": {"state": case.state, "harm": case.harm, "kinds": case.kinds, "incident": case.incident_id},
    }
    account = case.account
    if account is not None:
        state["account"] = {"state": account.state, "setup_run": account.setup_run,
                            "email_verified": account.email_verified_at is not None}
        state["steps"] = dict(SetupStep.objects.filter(account=account).values_list("name", "status"))
        state["workspace"] = Workspace.objects.filter(account=account).values_list("external_id", flat=True).first()
    state.update(payments.snapshot(email=case.email, account=account))
    return state


def run_action(
    *, case_id: int, staff: Account | None, action: str, key: str, params: dict[str, Any] | None = None
) -> ActionResult:
    """Run one action once per ``key``, recording who, when, what, and the state before and after."""
    if action not in STAFF_ACTIONS:
        raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
    params = params or {}
    scoped_key = f"staff:{staff.pk}:{key}" if staff is not None else f"auto:{key}"
    try:
        with transaction.atomic():
            record = SupportAction.objects.create(
                idempotency_key=scoped_key[:120], case_id=case_id, staff=staff, action=action, params=params,
                before=snapshot(case_id),
            )
    except IntegrityError:  # a double click, a resent form, or automation's second pass: the first one stands
        return ActionResult(SupportAction.objects.get(idempotency_key=scoped_key[:120]), repeated=True)
    if staff is not None:
        Case.objects.filter(pk=case_id, human_touched_at__isnull=True).update(human_touched_at=timezone.now())
    handler = _HANDLERS[action]
    try:
        outcome, note = handler(Case.objects.select_related("account").get(pk=case_id), staff,
                                params | {"action_key": record.idempotency_key})
    except ActionRefused as refused:
        outcome, note = ActionOutcome.FAILED, str(refused)
    except (RateLimited, payments.PaymentActionFailed) as error:
        outcome, note = ActionOutcome.FAILED, messages.ACTION_FAILED.format(error=error)
    except Exception:
        log.exception("support action #%s (%s on case %s) failed", record.pk, action, case_id)
        outcome, note = ActionOutcome.FAILED, messages.ACTION_BROKE.format(reference=record.pk)
    clear_fixed_attention(case_id=case_id)
    SupportAction.objects.filter(pk=record.pk).update(
        outcome=outcome, note=note[:500], after=snapshot(case_id), finished_at=timezone.now())
    refresh_case(case_id=case_id)
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


Handler = Callable[[Case, Account | None, dict[str, Any]], tuple[str, str]]


def _require_account(case: Case) -> Account:
    if case.account is None:
        raise ActionRefused(messages.ACTION_NOT_AVAILABLE)
    return case.account


def _retry_setup(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    account = _require_account(case)
    text = messages.ACTIONS["retry_setup"]
    if not SetupStep.objects.filter(account=account).exclude(status=StepStatus.DONE).exists():
        return ActionOutcome.ALREADY_DONE, text.already
    who = f"support ({staff.email})" if staff is not None else "support automation"
    accounts.record_event(account, "support_retry", f"Setup retried by {who}.")
    accounts.retry_setup(account=account)
    return ActionOutcome.DONE, text.done


def _complete_workspace(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    """Record a workspace a person created by hand in the provider's console, and activate the account.

    Safe against the setup workflow finishing at the same moment: one workspace per account (unique), and every
    state change below only moves rows that have not moved yet.
    """
    account = _require_account(case)
    text = messages.ACTIONS["complete_workspace"]
    external_id = str(params.get("external_id", "")).strip()
    if not external_id:
        raise ActionRefused(messages.WORKSPACE_ID_REQUIRED)
    now = timezone.now()
    with transaction.atomic():
        if Workspace.objects.filter(account=account).exists():
            return ActionOutcome.ALREADY_DONE, text.already
        try:
            with transaction.atomic():
                Workspace.objects.create(account=account, name=account.company, external_id=external_id)
        except IntegrityError as error:
            if Workspace.objects.filter(account=account).exists():
                return ActionOutcome.ALREADY_DONE, text.already
            raise ActionRefused(messages.WORKSPACE_ID_TAKEN) from error
        SetupStep.objects.filter(account=account, name=StepName.WORKSPACE).exclude(status=StepStatus.DONE).update(
            status=StepStatus.DONE, done_at=now, next_attempt_at=None, last_error="", updated_at=now)
        who = staff.email if staff is not None else "support automation"
        accounts.record_event(account, "workspace_by_hand", f"Workspace {external_id} created by hand by {who}.")
        if Account.objects.filter(pk=account.pk, state__in=(AccountState.SETTING_UP, AccountState.NEEDS_ATTENTION)
                                  ).update(state=AccountState.ACTIVE, activated_at=now):
            accounts.record_event(account, "activated", "Workspace ready: the account is active.")
        AttentionRecord.objects.resolve_for(account=account, kind=AttentionKind.SETUP_STALLED,
                                            how="workspace completed by hand by support")
    return ActionOutcome.DONE, text.done


def _send_code_sms(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    account = _require_account(case)
    text = messages.ACTIONS["send_code_sms"]
    if not account.phone:
        return ActionOutcome.FAILED, text.already
    who = f"support:{staff.pk}" if staff is not None else "support:automation"
    accounts.send_sign_in_code(email=account.email, ip=who)
    return ActionOutcome.DONE, text.done


def _fulfil_from_charge(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["fulfil_from_charge"]
    done = payments.fulfil_from_charge(case=case, staff=staff, payment_id=str(params.get("payment_id", "")))
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _refund(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["refund"]
    done = payments.refund(case=case, staff=staff, reference=str(params.get("reference", "")),
                           reason=str(params.get("reason", "")))
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _grant_credit(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["grant_credit"]
    done = payments.grant_credit(case=case, staff=staff, days=int(params.get("days") or 0),
                                 reason=str(params.get("reason", "")), key=f"support:{params['action_key']}")
    return (ActionOutcome.DONE, text.done) if done else (ActionOutcome.ALREADY_DONE, text.already)


def _merge(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["merge"]
    try:
        target_id = int(str(params.get("target", "")).strip().lstrip("#"))
    except ValueError:
        raise ActionRefused(messages.MERGE_TARGET_INVALID) from None
    if target_id == case.pk:
        raise ActionRefused(messages.MERGE_TARGET_INVALID)
    now = timezone.now()
    with transaction.atomic():
        if not Case.objects.filter(pk=target_id, state=CaseState.OPEN).update(version=F("version") + 1,
                                                                               updated_at=now):
            raise ActionRefused(messages.MERGE_TARGET_INVALID)
        if not Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(
            state=CaseState.RESOLVED, resolution=Resolution.MERGED, merged_into_id=target_id, resolved_at=now,
            resolution_seconds=case.seconds_open(now),
            resolved_by=staff, resolution_note=f"merged into case {target_id}",
        ):
            return ActionOutcome.ALREADY_DONE, text.already
        Signal.objects.filter(case=case).update(case_id=target_id)
        Contact.objects.filter(case=case).update(case_id=target_id)
        refresh_case(case_id=target_id)
    return ActionOutcome.DONE, text.done.format(target=target_id)


def _close(case: Case, staff: Account | None, params: dict[str, Any]) -> tuple[str, str]:
    text = messages.ACTIONS["close"]
    now = timezone.now()
    note = str(params.get("note", "")).strip()
    with transaction.atomic():
        if not Case.objects.filter(pk=case.pk, state=CaseState.OPEN).update(
            state=CaseState.RESOLVED, resolution=Resolution.STAFF, resolved_at=now, resolved_by=staff,
            resolution_seconds=case.seconds_open(now),
            resolution_note=(note or "closed by staff")[:500],
        ):
            resolved_at = Case.objects.filter(pk=case.pk).values_list("resolved_at", flat=True).first()
            return ActionOutcome.ALREADY_DONE, text.already.format(when=f"{resolved_at:%H:%M UTC}")
        open_signals = Signal.objects.filter(case=case, cleared_at__isnull=True)
        AttentionRecord.objects.filter(pk__in=open_signals.exclude(attention=None).values("attention_id"),
                                       resolved_at__isnull=True).update(resolved_at=now, resolution="closed by support")
        open_signals.update(cleared_at=now, cleared_how="closed by staff")
    return ActionOutcome.DONE, text.done


_HANDLERS: dict[str, Handler] = {
    "retry_setup": _retry_setup, "complete_workspace": _complete_workspace, "send_code_sms": _send_code_sms,
    "fulfil_from_charge": _fulfil_from_charge, "refund": _refund, "grant_credit": _grant_credit, "merge": _merge,
    "close": _close,
}


# --- Replies ---------------------------------------------------------------------------------------------

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
    scoped_key = f"staff:{staff.pk}:{key}"[:120]
    try:
        with transaction.atomic():
            record = SupportAction.objects.create(
                idempotency_key=scoped_key, case=case, staff=staff, action="reply",
                params={"subject": subject}, before=snapshot(case_id),
            )
            message = notify.create_email(
                account=case.account, kind="support_reply", key=f"support-reply:{record.pk}", to=to,
                context={"subject": subject.strip() or messages.REPLY_SUBJECT, "text": body},
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
    record.refresh_from_db()
    return ActionResult(record, repeated=False)


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


def contacts_needing_reply(case_id: int) -> int:
    return Signal.objects.filter(case_id=case_id, kind=SignalKind.CONTACT, cleared_at__isnull=True).count()
