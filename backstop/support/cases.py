"""Signals joining the customer's one open case, and the case kept up to date with them.

Safe to run twice and safe to race with automation: joins are keyed by the signal's source, and state changes are
conditional UPDATEs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from backstop.accounts.models import STEP_PROVIDERS, Account, SetupStep
from backstop.attention.models import AttentionRecord, Harm, provider_cause
from backstop.lib.email_identity import email_key
from backstop.notify.models import Message
from backstop.support import messages, triage
from backstop.support.models import (
    Case,
    CaseState,
    Signal,
    SignalKind,
)
from backstop.support.search import index_case

# Called with each signal that has just joined its case (support.wakeups registers the wake-up of a case put aside).
_joined_hooks: list[Callable[[Signal], None]] = []


def on_signal_joined(hook: Callable[[Signal], None]) -> None:
    if hook not in _joined_hooks:
        _joined_hooks.append(hook)


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
        for hook in _joined_hooks:
            hook(signal)
    return signal


def _customer_of(account: Account | None, email: str) -> tuple[str, str]:
    if account is not None:
        return account.email_key, account.email
    return email_key(email), email


def join_attention_record(*, record: AttentionRecord) -> Signal:
    """An attention record raised by accounts or billing joins its customer's case."""
    account = Account.objects.filter(pk=record.account_id).first() if record.account_id else None
    email = str(record.detail.get("email", "")) if account is None else account.email
    if account is None and email:
        # Billing names the buyer by the address they typed at the processor (an unmatched payment, a charge without
        # an order): the account is the one of that email identity, however its case or domain was typed.
        account = Account.objects.filter(email_key=email_key(email)).first()
    if account is None and not email:
        key = f"unmatched:{record.pk}"  # a payment nobody can be matched to: a case of its own
    else:
        key, email = _customer_of(account, email)
    return _join(
        customer_key=key, email=email, account=account, kind=record.kind,
        cause=record.cause, harm=record.harm,
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
    # Every signal that joins or clears passes here: the search box finds the case by what it says now.
    index_case(case_id=case_id)


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

